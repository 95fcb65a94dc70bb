"""Who is calling: digest authentication of extensions, trunk sources, anonymous callers.

:class:`DigestGate` is the server side of RFC 3261 22 / RFC 8760 shared by the registrar
(401 / WWW-Authenticate) and INVITE authentication (407 / Proxy-Authenticate).  It never
tells an existing extension from a non-existent one: both get the same challenge (same
realm, algorithms, one nonce manager), and an answer for an unknown user is checked
against a dummy HA1 -- the same hash work as a real one -- and refused with the same 403
as a wrong password.  Failures are counted per source address (:mod:`ivr.sip.throttle`),
except from a *protected* address -- a trunk's ``allow_from`` or an address with a live
registration in ``location`` -- whatever the username: a UDP source is easily forged, and
counting those failures would let anyone get a carrier or a registered phone banned.  This
includes the registered user's own name: extension numbers are few and guessable, so
counting them would hand a forger the same weapon; the address is an ordinary one again
(and counted) as soon as its last registration ends.

Policy for initial INVITEs (:class:`InviteAuthenticator`):

* from a trunk's ``allow_from`` address: a trunk call, no digest;
* carrying Proxy-Authorization, or with a From that claims to be ours: the caller must
  authenticate as an extension (407 challenge), and then runs its extension's context.
  A From claims to be ours when its host is the realm or a configured ``domains`` entry
  (any user, any port); or one of the server's own addresses with our SIP port (any
  user); or one of our own addresses with any other port or none, and a user that is a
  configured extension (phones put their AOR in From without a port, so a server that is
  not on 5060 would otherwise take its own extensions for anonymous callers);
* anyone else: an anonymous caller, allowed to reach the routed DIDs (carriers that
  deliver by IP), unless ``require_trusted_sources: true`` (then 403);
* dialling out through a trunk needs an authenticated extension listing that trunk
  (:meth:`InviteAuthenticator.may_use_trunk`) *and* a plan that routes there.

No Twisted: the clock is any object with ``seconds()``.
"""
from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass

from .directory import Directory, Extension, Trunk

from .auth import AuthHeaderError, NonceManager, NonceStatus, compute_ha1, format_challenge, \
    parse_credentials, verify
from .message import Request, Response, make_response
from .throttle import Throttle
from .uri import SipSyntaxError, SipUri


class Outcome(enum.Enum):
    OK = "ok"                # authenticated as ``Verdict.extension``
    CHALLENGE = "challenge"  # no usable credentials, unknown nonce or replayed nc: challenge again
    STALE = "stale"          # right password, expired nonce: challenge with stale=TRUE
    FORBIDDEN = "forbidden"  # wrong password or unknown user (indistinguishable): 403


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    extension: Extension | None = None


CHALLENGE_HEADER = {"Authorization": "WWW-Authenticate", "Proxy-Authorization": "Proxy-Authenticate"}
CHALLENGE_STATUS = {"Authorization": 401, "Proxy-Authorization": 407}


class DigestGate:
    def __init__(self, config: Directory, nonces: NonceManager,
                 throttle: Throttle | None = None, location=None):
        self.config = config
        self.nonces = nonces
        self.throttle = throttle
        self.location = location  # ivr.sip.registrar.LocationService: who is registered where
        secret = secrets.token_hex(16)
        self._dummy_ha1 = {a: compute_ha1("\x00unknown", config.realm, secret, a)
                           for a in config.algorithms}

    def algorithms_for(self, request: Request | None) -> tuple[str, ...]:
        """The configured algorithms, or only MD5 for a client listed in md5_only_user_agents
        (decided by the request's User-Agent alone, so it says nothing about the user)."""
        agent = request.headers.get("User-Agent") if request is not None else None
        if agent and "MD5" in self.config.algorithms and any(
                p.search(agent) for p in self.config.md5_only_user_agents):
            return ("MD5",)
        return self.config.algorithms

    def challenges(self, now: float, stale: bool = False, request: Request | None = None) -> list[str]:
        """One challenge per algorithm, strongest first, sharing one nonce."""
        nonce = self.nonces.issue(now)
        return [format_challenge(self.config.realm, nonce, algorithm=a, qop=("auth",), stale=stale)
                for a in self.algorithms_for(request)]

    def check(self, request: Request, header: str, now: float, host: str) -> Verdict:
        """Verify ``header`` (Authorization / Proxy-Authorization) of ``request``."""
        creds = None
        for value in request.headers.get_all(header):
            try:
                c = parse_credentials(value)
            except AuthHeaderError:
                continue
            if c.scheme == "Digest" and c.realm == self.config.realm:
                creds = c
                break
        if (creds is None or creds.algorithm not in self.config.algorithms or creds.qop != "auth"
                or not isinstance(creds.nonce, str)):
            return Verdict(Outcome.CHALLENGE)
        status = self.nonces.check(creds.nonce, now)
        if status is NonceStatus.INVALID:
            return Verdict(Outcome.CHALLENGE)
        # The same work whether or not the user exists: one dict lookup, one digest.
        extension = self.config.extensions.get(creds.username or "")
        ha1 = extension.ha1.get(creds.algorithm) if extension is not None else None
        if ha1 is None:
            extension, ha1 = None, self._dummy_ha1[creds.algorithm]
        good = verify(creds, request.method, ha1, request.body)
        if not good or extension is None:
            # Also for stale nonces: otherwise stale=TRUE vs not would be a password oracle.
            if self.throttle is not None:
                self.throttle.failure(host, now, self.protected(host, now))
            return Verdict(Outcome.FORBIDDEN)
        if status is NonceStatus.STALE:
            return Verdict(Outcome.STALE, extension)
        if not self.nonces.check_nc(creds.nonce, creds.nc, now):
            return Verdict(Outcome.CHALLENGE)  # replayed (or reordered) nc: a fresh nonce
        if self.throttle is not None:
            self.throttle.success(host, now)
        return Verdict(Outcome.OK, extension)

    def protected(self, host: str, now: float) -> bool:
        """Is ``host`` a trunk's allow_from address or the source of a live registration?
        Failures from it are not counted towards a ban (see the module docstring)."""
        if self.config.trunk_for_source(host) is not None:
            return True
        return self.location is not None and bool(self.location.registered_from(host, now))

    def refusal(self, request: Request, verdict: Verdict, header: str, now: float,
                to_tag: str | None = None) -> Response:
        """The 401/407 (or 403) for a verdict that is not OK."""
        tag = to_tag or secrets.token_hex(6)
        if verdict.outcome is Outcome.FORBIDDEN:
            return make_response(request, 403, to_tag=tag)
        stale = verdict.outcome is Outcome.STALE
        extra = [(CHALLENGE_HEADER[header], v) for v in self.challenges(now, stale, request)]
        return make_response(request, CHALLENGE_STATUS[header], to_tag=tag, extra=extra)


# -- INVITE ------------------------------------------------------------------------------------

class CallerKind(enum.Enum):
    EXTENSION = "extension"  # authenticated; runs ``extension.context``
    TRUNK = "trunk"          # from a trunk's allow_from address
    ANONYMOUS = "anonymous"  # anyone else: may reach routed DIDs only


@dataclass(frozen=True)
class Caller:
    kind: CallerKind
    extension: Extension | None = None
    trunk: Trunk | None = None

    @property
    def context(self) -> str | None:
        """The dialplan flow an extension's calls run in; None: route by the dialled number."""
        return self.extension.context if self.extension is not None else None


@dataclass(frozen=True)
class AuthResult:
    caller: Caller | None = None      # go ahead with this caller
    response: Response | None = None  # else send this (401/407/403) ...
    drop: bool = False                # ... or nothing at all (a banned source)


class InviteAuthenticator:
    """Decides who an initial (out-of-dialog) INVITE is from; see the module docstring."""

    def __init__(self, config: Directory, nonces: NonceManager, clock,
                 throttle: Throttle | None = None, local_hosts=(), gate: DigestGate | None = None,
                 local_port: int = 5060):
        self.config = config
        self.clock = clock
        self.throttle = throttle
        self.gate = gate or DigestGate(config, nonces, throttle)
        self.local_domains = frozenset(h.lower().strip("[]") for h in (config.realm, *config.domains))
        self.local_hosts = frozenset(h.lower().strip("[]") for h in local_hosts)
        self.local_port = local_port

    def claims_local(self, request: Request) -> bool:
        try:
            uri = request.from_.uri
        except SipSyntaxError:
            return False
        if not isinstance(uri, SipUri):
            return False
        host = uri.host_no_brackets.lower()
        if host in self.local_domains:
            return True
        if host not in self.local_hosts:
            return False
        # One of our addresses with our SIP port names us, whoever the user is.
        if (uri.port or 5060) == self.local_port:
            return True
        # With another port or none, it names us only for a user who is one of our
        # extensions: phones put their AOR in From without a port (sip:2001@10.0.0.1)
        # whatever port the server is on, while a foreign phone on the same host naming
        # itself (sip:me@its-own-ip[:its-port]) is not an extension and stays anonymous.
        return uri.user_unescaped in self.config.extensions

    def check(self, request: Request, source) -> AuthResult:
        now = self.clock.seconds()
        client = (source.host if self.throttle is None  # behind a trusted proxy: the phone
                  else self.throttle.client_address(source.host, request))
        if self.throttle is not None and self.throttle.is_banned(client, now):
            return AuthResult(drop=True)
        trunk = self.config.trunk_for_source(source.host)
        if trunk is not None:
            return AuthResult(caller=Caller(CallerKind.TRUNK, trunk=trunk))
        if "Proxy-Authorization" in request.headers or self.claims_local(request):
            verdict = self.gate.check(request, "Proxy-Authorization", now, client)
            if verdict.outcome is Outcome.OK:
                return AuthResult(caller=Caller(CallerKind.EXTENSION, extension=verdict.extension))
            return AuthResult(response=self.gate.refusal(request, verdict, "Proxy-Authorization", now))
        if self.config.security.require_trusted_sources:
            return AuthResult(response=make_response(request, 403, to_tag=secrets.token_hex(6)))
        return AuthResult(caller=Caller(CallerKind.ANONYMOUS))

    def may_use_trunk(self, caller: Caller | None, trunk_name: str) -> bool:
        """Only an authenticated extension that lists the trunk may call out through it."""
        return (caller is not None and caller.kind is CallerKind.EXTENSION
                and caller.extension is not None and trunk_name in caller.extension.trunks
                and trunk_name in self.config.trunks)
