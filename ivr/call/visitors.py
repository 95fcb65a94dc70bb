"""Anonymous browser callers: who they are, what they may call, how often, and never a trunk.

A *WebRTC visitor* is the caller of an initial INVITE that came over SIP over WebSocket
(``WS``/``WSS``, RFC 7118) without authenticating as an extension: the ``/demo/webrtc``
page, or a site embedding it.  Anyone on the web can be one, so, like the demo API's
visitors (``ivr/api/demo.py``), they are limited (``webrtc:`` in the extensions file,
:class:`ivr.config.webrtc.WebrtcVisitorSettings`):

* only the configured ``targets`` (the Request-URI's user part, compared in E.164 when it
  is a number of the plans' region, else as written): anything else gets ``403 Forbidden``
  (RFC 3261 21.4.4: understood, and refused);
* ``calls_per_minute`` INVITEs per source address (a token bucket: that many at once, then
  one every ``60 / calls_per_minute`` seconds; every INVITE counts, refused or not): beyond
  it ``503 Service Unavailable`` with ``Retry-After`` (RFC 3261 21.5.4 and 20.33, the
  answer SIP has for "not now, retry in N seconds"; SIP's 429 is RFC 3892's "Provide
  Referrer Identity", not RFC 6585's HTTP "Too Many Requests");
* ``max_concurrent_per_visitor`` calls up at once per source address: beyond it
  ``486 Busy Here`` (RFC 3261 21.4.24: not able to take additional calls);
* never a trunk: a ``dial`` step's ``allow_trunk`` does not apply to their calls
  (:func:`may_use_trunks`), they may not transfer (REFER) at all, and an agent bridged to
  one may not transfer them out through a trunk (:func:`is_trunk_route`).

Extensions that authenticated over WebSocket (digest, as any phone) are not visitors.
Refused INVITEs never become call legs (like an authentication refusal): a flood leaves
no CDRs behind; each refusal is logged with the source address.

:class:`VisitorGate` is the user agent's application in front of the dialplans: the
server wires ``ua.serve(VisitorGate(dialplans, VisitorLimits(...)))``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from twisted.logger import Logger

from ..config.webrtc import WebrtcVisitorSettings
from ..sip.address import parse_party
from ..sip.authenticator import CallerKind
from ..sip.routing import host_for_uri
from ..sip.uri import SipSyntaxError, SipUri, parse_uri

log = Logger(namespace="ivr.call.visitors")

#: Transports of SIP over WebSocket (``Source.transport``).
WS_TRANSPORTS = frozenset({"WS", "WSS"})
#: The CDR's ``caller_kind`` of an anonymous browser caller.
WEBRTC = "webrtc"


def is_webrtc_visitor(session) -> bool:
    """Did ``session``'s INVITE come over WS/WSS from someone who is not an extension?"""
    source = getattr(session, "source", None)
    if getattr(source, "transport", None) not in WS_TRANSPORTS:
        return False
    caller = getattr(session, "caller", None)
    return caller is None or caller.kind is CallerKind.ANONYMOUS


def is_visitor_leg(leg) -> bool:
    """Is ``leg`` (a Call) the leg of an anonymous browser caller?"""
    return (getattr(leg, "direction", "inbound") == "inbound"
            and is_webrtc_visitor(getattr(leg, "session", None)))


def may_use_trunks(leg) -> bool:
    """May a ``dial`` step of ``leg``'s plan go out through a trunk at all?  Never for a
    WebRTC visitor's leg, whatever the plan says."""
    return not is_visitor_leg(leg)


def caller_kind(leg) -> str | None:
    """The CDR's ``caller_kind`` of an inbound leg: ``extension``, ``trunk``,
    ``anonymous`` or ``webrtc`` (an anonymous browser caller); None for legs we placed."""
    if getattr(leg, "direction", "inbound") != "inbound":
        return None
    session = getattr(leg, "session", None)
    if session is None or getattr(session, "source", None) is None:
        return None
    if is_webrtc_visitor(session):
        return WEBRTC
    caller = getattr(session, "caller", None)
    return caller.kind.value if caller is not None else CallerKind.ANONYMOUS.value


def source_address(leg) -> str | None:
    """``host:port`` (``[v6]:port``) the leg's INVITE came from; None for legs we placed."""
    if getattr(leg, "direction", "inbound") != "inbound":
        return None
    source = getattr(getattr(leg, "session", None), "source", None)
    if source is None:
        return None
    return f"{host_for_uri(source.host)}:{source.port}"


def is_trunk_route(directory, route) -> bool:
    """Does ``route`` (request URI, destination, credentials; ``CallControl.routes``) go
    to a configured trunk, by its destination or by the host and port of its URI?"""
    trunks = getattr(directory, "trunks", None) or {}
    if not trunks:
        return False
    uri, dest, _ = route
    where = None
    if dest is not None:
        where = (dest.host.lower(), dest.port)
    else:
        try:
            parsed = parse_uri(uri)
        except SipSyntaxError:
            return False
        if isinstance(parsed, SipUri):
            where = (parsed.host_no_brackets.lower(), parsed.port or 5060)
    return where is not None and any(
        (t.host.lower().strip("[]"), t.port) == (where[0].strip("[]"), where[1])
        for t in trunks.values())


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()
    why: str = ""  # for the log


class _Bucket:
    __slots__ = ("tokens", "stamp")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens, self.stamp = tokens, stamp


class VisitorLimits:
    """The limits of :mod:`ivr.call.visitors` for one server.  ``clock``: anything with
    ``seconds()``; ``region``: the plans' default region now (targets that are numbers
    compare in E.164 as the router reads them).  Memory stays bounded: buckets that are
    full again are forgotten once ``max_visitors`` addresses are tracked, and a visitor
    with no call up has no concurrency entry.

    ``share``: in a farm, an :class:`ivr.store.rate_buckets.FarmShare` (anything with
    ``limits(rate, burst)``): the buckets hold this node's share of ``calls_per_minute``,
    so a visitor spreading INVITEs over N nodes gets no more calls than from one."""

    def __init__(self, settings: WebrtcVisitorSettings, clock,
                 region: Callable[[], str] = lambda: "US", max_visitors: int = 100_000,
                 share=None) -> None:
        self.settings = settings
        self.share = share
        self.clock = clock
        self.region = region
        self.max_visitors = max_visitors
        self.rate = settings.calls_per_minute / 60.0
        self.burst = float(settings.calls_per_minute)
        self._buckets: dict[str, _Bucket] = {}
        self._up: dict[str, int] = {}
        self._targets: tuple[str, frozenset[str]] | None = None

    # -- the checks --------------------------------------------------------------------
    def refusal(self, host: str, dialled: str) -> Refusal | None:
        """Why a visitor at ``host`` may not call ``dialled`` (a Request-URI) now, or None.
        Takes one token of ``host``'s bucket whatever the answer."""
        wait = self._take(host)
        if wait:
            retry = max(1, math.ceil(wait))
            return Refusal(503, "Service Unavailable", (("Retry-After", str(retry)),),
                           f"over {self.settings.calls_per_minute} calls per minute")
        if not self.allows_target(dialled):
            return Refusal(403, "Forbidden", (), "not a browser call target")
        if self._up.get(host, 0) >= self.settings.max_concurrent_per_visitor:
            return Refusal(486, "Busy Here", (),
                           f"{self.settings.max_concurrent_per_visitor} call(s) already up")
        return None

    def allows_target(self, dialled: str) -> bool:
        """Is ``dialled`` (a Request-URI or a bare user part) one of the targets?"""
        region = self.region()
        if self._targets is None or self._targets[0] != region:
            self._targets = (region, frozenset(
                self._normalise(t, region) for t in self.settings.targets))
        return self._normalise(dialled, region) in self._targets[1]

    @staticmethod
    def _normalise(text: str, region: str) -> str | None:
        party = parse_party(text, region)
        called = party.called if party is not None else None
        return called.lower() if called else None

    def _take(self, host: str) -> float:
        """Take a token from ``host``'s bucket: 0, or the seconds until one is there."""
        now = self.clock.seconds()
        rate, burst = self._limits()
        bucket = self._buckets.get(host)
        if bucket is None:
            if len(self._buckets) >= self.max_visitors:
                self._prune(now)
            bucket = self._buckets[host] = _Bucket(burst, now)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate

    def _limits(self) -> tuple[float, float]:
        """This node's refill rate and bucket size (its share of the farm's, in a farm)."""
        if self.share is None:
            return self.rate, self.burst
        return self.share.limits(self.rate, self.burst)

    def _prune(self, now: float) -> None:
        """Forget full buckets (they behave exactly like new ones)."""
        rate, burst = self._limits()
        for host in [h for h, b in self._buckets.items()
                     if b.tokens + (now - b.stamp) * rate >= burst]:
            del self._buckets[host]

    # -- calls up ----------------------------------------------------------------------
    def started(self, host: str) -> None:
        self._up[host] = self._up.get(host, 0) + 1

    def ended(self, host: str) -> None:
        left = self._up.get(host, 0) - 1
        if left > 0:
            self._up[host] = left
        else:
            self._up.pop(host, None)

    def calls_up(self, host: str) -> int:
        return self._up.get(host, 0)


class VisitorGate:
    """The user agent's application: WebRTC visitors' INVITEs pass :class:`VisitorLimits`
    first; everything else goes straight to ``app`` (the dialplan service)."""

    def __init__(self, app, limits: VisitorLimits) -> None:
        self.app = app
        self.limits = limits

    def incoming_call(self, session):
        if not is_webrtc_visitor(session):
            return self.app.incoming_call(session)
        source, request = session.source, session.invite
        where = f"{host_for_uri(source.host)}:{source.port}"
        refusal = self.limits.refusal(source.host, str(request.uri))
        if refusal is not None:
            log.info("call {cid} from browser visitor {src} ({t}) to {uri} refused: {s} {r} "
                     "({why})", cid=request.call_id, src=where, t=source.transport.lower(),
                     uri=request.uri, s=refusal.status, r=refusal.reason, why=refusal.why)
            session.reject(refusal.status, refusal.reason, extra=list(refusal.headers))
            return None
        host = source.host
        self.limits.started(host)
        try:
            call = self.app.incoming_call(session)
        except Exception:
            self.limits.ended(host)
            raise
        if call is None:
            self.limits.ended(host)
            return None
        call.when_ended().addBoth(self._ended, host)
        if not call.ended:
            call.log_event("webrtc_visitor", source=where, transport=source.transport.lower())
        return call

    def _ended(self, result, host: str):
        self.limits.ended(host)
        return result
