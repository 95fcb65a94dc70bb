"""The registrar (RFC 3261 10.3) and the location service it fills.

A REGISTER is authenticated with digest (:class:`~ivr.sip.authenticator.DigestGate`, 401
with SHA-256 and MD5 challenges), then its Contacts become :class:`Binding` s of the
extension.  Each binding remembers where the REGISTER came from (``received``: transport,
address and port as seen by us), which is where requests for it are sent, so phones
behind NAT are reached at their public mapping rather than their private Contact.

No Twisted and no sockets: ``clock`` is any object with ``seconds()``.
"""
from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass, replace

from .directory import Directory

from .auth import NonceManager
from .authenticator import DigestGate, Outcome
from .message import Request, Response, make_response
from .path import BadPath, first_hop, path_of, wants_path_back
from .throttle import Throttle
from .uri import MAX_UINT32, NameAddr, SipSyntaxError, SipUri, is_digits, parse_uri


@dataclass(frozen=True)
class Binding:
    aor: str                   # the extension number
    contact: NameAddr          # as registered, without its expires parameter
    expires_at: float          # absolute time (``inf`` for static contacts)
    received: object | None    # transport Source the REGISTER came from (None: static)
    call_id: str = ""
    cseq: int = 0
    q: float | None = None
    updated_at: float = 0.0
    static: bool = False
    path: tuple[str, ...] = ()  # RFC 3327 Path of the REGISTER: the route set towards it
    node: str = ""              # the farm node that took the REGISTER ("": this one)

    @property
    def uri(self) -> str:
        """The Request-URI to use when calling this binding."""
        return str(self.contact.uri)

    def remaining(self, now: float) -> int:
        return 0 if self.expires_at <= now else math.ceil(self.expires_at - now)

    def target(self) -> tuple[str, str, int] | None:
        """(transport, host, port) to send to: the first Path hop (a proxy such as
        Kamailio in front of the farm), else where the phone registered from."""
        if self.path:
            return first_hop(self.path[0])
        if self.received is None:
            return None
        return self.received.transport, self.received.host, self.received.port


def contact_key(uri) -> tuple:
    """RFC 3261 19.1.4-ish comparison key: scheme, user, host (no case), port, transport."""
    if isinstance(uri, SipUri):
        return (uri.scheme, uri.user, uri.host.lower(), uri.port, (uri.param("transport") or "").lower())
    return (str(uri),)


class LocationService:
    """AOR (extension) -> its bindings.  Pure: ``now`` is passed in."""

    def __init__(self) -> None:
        self._bindings: dict[str, dict[tuple, Binding]] = {}
        # source host -> (aor, contact key) of the bindings registered from it
        self._by_host: dict[str, set[tuple[str, tuple]]] = {}
        # connection (flow) the REGISTER came over -> (aor, contact key) of its bindings
        self._by_flow: dict[object, set[tuple[str, tuple]]] = {}
        # Contact URI text -> (aor, contact key): the route set a request to it takes
        self._by_uri: dict[str, set[tuple[str, tuple]]] = {}

    def _index(self, binding: Binding, add: bool) -> None:
        entry = (binding.aor, contact_key(binding.contact.uri))
        for index, name in ((self._by_host, _host_key(binding.received)),
                            (self._by_flow, _flow(binding.received)),
                            (self._by_uri, str(binding.contact.uri))):
            if name is None:
                continue
            if add:
                index.setdefault(name, set()).add(entry)
                continue
            keys = index.get(name)
            if keys is not None:
                keys.discard(entry)
                if not keys:
                    del index[name]

    def on_flow(self, connection) -> list[Binding]:
        """The bindings whose REGISTER came over ``connection`` (a stream or WebSocket
        connection: the ``connection`` of the binding's ``received`` source)."""
        out = []
        for aor, key in self._by_flow.get(connection, ()):
            binding = self._bindings.get(aor, {}).get(key)
            if binding is not None:
                out.append(binding)
        return out

    def route_set_for(self, uri: str) -> tuple[str, ...]:
        """The Path (RFC 3327) of the binding whose Contact is ``uri``: the Route set a
        request to it carries, so it goes through the proxy that relayed the REGISTER."""
        for aor, key in self._by_uri.get(uri, ()):
            binding = self._bindings.get(aor, {}).get(key)
            if binding is not None and binding.path:
                return binding.path
        return ()

    def registered_from(self, host: str, now: float) -> frozenset[str]:
        """The AORs with an unexpired binding registered from source address ``host``."""
        out = set()
        for aor, key in self._by_host.get(_host_key_of(host), ()):
            binding = self._bindings.get(aor, {}).get(key)
            if binding is not None and binding.expires_at > now:
                out.add(aor)
        return frozenset(out)

    def bindings(self, aor: str, now: float) -> list[Binding]:
        """Unexpired bindings, highest q first, then most recently refreshed."""
        out = [b for b in self._bindings.get(aor, {}).values() if b.expires_at > now]
        return sorted(out, key=lambda b: (-(b.q if b.q is not None else 1.0), -b.updated_at))

    def get(self, aor: str, key: tuple) -> Binding | None:
        return self._bindings.get(aor, {}).get(key)

    def put(self, binding: Binding, max_contacts: int) -> list[Binding]:
        """Add or replace a binding; returns the oldest ones evicted beyond ``max_contacts``."""
        table = self._bindings.setdefault(binding.aor, {})
        key = contact_key(binding.contact.uri)
        old = table.get(key)
        if old is not None:
            self._index(old, False)
        table[key] = binding
        self._index(binding, True)
        evicted = []
        while len(table) > max_contacts:
            oldest = min(table, key=lambda k: table[k].updated_at)
            evicted.append(table.pop(oldest))
            self._index(evicted[-1], False)
        return evicted

    def remove(self, aor: str, key: tuple) -> Binding | None:
        table = self._bindings.get(aor)
        if not table:
            return None
        binding = table.pop(key, None)
        if binding is not None:
            self._index(binding, False)
        if not table:
            del self._bindings[aor]
        return binding

    def clear(self, aor: str) -> list[Binding]:
        gone = list(self._bindings.pop(aor, {}).values())
        for binding in gone:
            self._index(binding, False)
        return gone

    def expire(self, now: float) -> list[Binding]:
        """Drop expired bindings; returns them."""
        gone = []
        for aor in list(self._bindings):
            table = self._bindings[aor]
            for key in [k for k, b in table.items() if b.expires_at <= now]:
                gone.append(table.pop(key))
                self._index(gone[-1], False)
            if not table:
                del self._bindings[aor]
        return gone

    def __len__(self) -> int:
        return sum(len(t) for t in self._bindings.values())


class _Reject(Exception):
    def __init__(self, status: int, reason: str | None = None, extra=()):
        super().__init__(status)
        self.status, self.reason, self.extra = status, reason, list(extra)


class Registrar:
    """Answers REGISTER requests.  ``handle`` returns the response, or None when the
    source is banned (drop it: send nothing)."""

    def __init__(self, config: Directory, nonces: NonceManager, location: LocationService,
                 clock, throttle: Throttle | None = None, gate: DigestGate | None = None):
        self.config = config
        self.location = location
        self.clock = clock
        self.throttle = throttle
        self.gate = gate or DigestGate(config, nonces, throttle, location)

    def handle(self, request: Request, source) -> Response | None:
        now = self.clock.seconds()
        client = (source.host if self.throttle is None  # behind a trusted proxy: the phone
                  else self.throttle.client_address(source.host, request))
        if self.throttle is not None and self.throttle.is_banned(client, now):
            return None
        tag = secrets.token_hex(6)
        try:
            aor_uri = request.to.uri
        except SipSyntaxError:
            return make_response(request, 400, "Bad To", to_tag=tag)
        if not isinstance(aor_uri, SipUri) or aor_uri.user is None:
            # validate.py answers non-SIP To; a To without a user names no extension.
            # Challenge first anyway so this answer says nothing about our extensions.
            aor = None
        else:
            aor = aor_uri.user_unescaped
        verdict = self.gate.check(request, "Authorization", now, client)
        if verdict.outcome is not Outcome.OK:
            return self.gate.refusal(request, verdict, "Authorization", now, tag)
        if aor is None or verdict.extension.number != aor:
            return make_response(request, 403, "Username does not match the AOR", to_tag=tag)
        try:
            self._apply(aor, request, source, now)
        except _Reject as exc:
            return make_response(request, exc.status, exc.reason, to_tag=tag, extra=exc.extra)
        extra = [("Contact", self._format(b, now)) for b in self.location.bindings(aor, now)]
        if wants_path_back(request):
            extra += [("Path", p) for p in request.headers.get_all("Path")]  # RFC 3327 5.3
        extra += [("Supported", "path"), ("Date", _http_date(now))]
        return make_response(request, 200, to_tag=tag, extra=extra)

    def route_set_for(self, uri: str) -> tuple[str, ...]:
        """The Route set pre-loaded on a request to the registered Contact ``uri``."""
        return self.location.route_set_for(uri)

    def lookup(self, extension: str) -> list[Binding]:
        """Where to reach ``extension`` now: its registrations, then its static contacts."""
        now = self.clock.seconds()
        out = self.location.bindings(extension, now)
        ext = self.config.extensions.get(extension)
        for text in ext.static_contacts if ext is not None else ():
            out.append(Binding(extension, NameAddr(parse_uri(text)), math.inf, None, static=True))
        return out

    def expire(self, now: float | None = None) -> list[Binding]:
        """Housekeeping: drop expired bindings (run it every minute or so)."""
        return self.location.expire(self.clock.seconds() if now is None else now)

    def connection_closed(self, connection) -> list[Binding]:
        """The connection (TCP, TLS, WS or WSS) ``connection`` has closed: drop the
        bindings registered over it that cannot be reached any other way, and return them.

        We cannot connect to a browser (WebSocket), and a phone over TCP/TLS is reached at
        the address its REGISTER came from, an ephemeral port nobody listens on once that
        connection is gone: calls to such a binding would fail (503) until it expired, and
        ring groups and queues would keep ringing it.  A stream binding whose Contact is
        that very address (a phone that connects from the port it listens on) is kept: a
        new connection reaches it.  Expiry and later REGISTERs go on as before."""
        gone = []
        for binding in self.location.on_flow(connection):
            if binding.received.transport in ("TCP", "TLS") and _contact_is_source(binding):
                continue
            if self.location.remove(binding.aor, contact_key(binding.contact.uri)) is not None:
                gone.append(binding)
        return gone

    # -- RFC 3261 10.3 steps 6-8 -----------------------------------------------------------
    def _expires_header(self, request: Request) -> int | None:
        value = request.headers.get("Expires")
        if value is None:
            return None
        if not is_digits(value.strip()):
            raise _Reject(400, "Bad Expires")
        return min(int(value.strip()), MAX_UINT32)

    def _apply(self, aor: str, request: Request, source, now: float) -> None:
        settings = self.config.registrar
        try:
            contacts = request.contacts
            call_id = request.call_id or ""
            cseq = request.cseq[0]
        except SipSyntaxError:
            raise _Reject(400) from None
        header_expires = self._expires_header(request)
        try:
            path = path_of(request)
        except BadPath:
            raise _Reject(400, "Bad Path") from None
        if not contacts:
            return  # a query: 200 with the current bindings
        if any(c.wildcard for c in contacts):
            if len(contacts) != 1 or header_expires != 0:
                raise _Reject(400, "Contact: * needs Expires: 0 and no other Contact")
            for binding in self.location.bindings(aor, now):
                if binding.call_id == call_id and cseq <= binding.cseq:
                    continue  # out of order (10.3 step 6): keep it
                self.location.remove(aor, contact_key(binding.contact.uri))
            return
        plan = []
        for contact in contacts:
            raw = contact.param("expires")
            expires = settings.default_expires if header_expires is None and raw is None else (
                min(int(raw), MAX_UINT32) if raw is not None and is_digits(raw) else header_expires)
            if expires is None:
                raise _Reject(400, "Bad Contact expires")
            if 0 < expires < settings.min_expires:
                raise _Reject(423, extra=[("Min-Expires", str(settings.min_expires))])
            plan.append((contact, min(expires, settings.max_expires)))
        ext = self.config.extensions[aor]
        for contact, expires in plan:
            key = contact_key(contact.uri)
            old = self.location.get(aor, key)
            if old is not None and old.call_id == call_id and cseq <= old.cseq:
                continue  # an older REGISTER of the same client arrived late: ignore it
            if expires == 0:
                self.location.remove(aor, key)
                continue
            q = _qvalue(contact.param("q"))
            kept = tuple((k, v) for k, v in contact.params if k.lower() != "expires")
            self.location.put(Binding(aor, replace(contact, params=kept), now + expires, source,
                                      call_id, cseq, q, now, path=path), ext.max_contacts)

    @staticmethod
    def _format(binding: Binding, now: float) -> str:
        return f"{binding.contact};expires={binding.remaining(now)}"


def _host_key_of(host: str) -> str:
    return host.strip("[]").lower()


def _host_key(source) -> str | None:
    host = getattr(source, "host", None)
    return _host_key_of(host) if isinstance(host, str) else None


def _flow(source):
    """The connection a source's messages came over (None: UDP, or a static contact)."""
    return getattr(source, "connection", None)


def _contact_is_source(binding: Binding) -> bool:
    """Whether the binding's Contact names the address and port its REGISTER came from."""
    uri, source = binding.contact.uri, binding.received
    if not isinstance(uri, SipUri):
        return False
    secure = uri.scheme == "sips" or (uri.param("transport") or "").lower() == "tls"
    port = uri.port or (5061 if secure else 5060)
    return _host_key_of(uri.host) == _host_key_of(source.host) and port == source.port


def _qvalue(text: str | None) -> float | None:
    try:
        q = float(text) if text else None
    except ValueError:
        return None
    return q if q is not None and 0.0 <= q <= 1.0 else None


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _http_date(now: float) -> str:
    """RFC 3261 20.17 Date (always GMT), from the injected clock's time."""
    t = time.gmtime(now)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")
