"""HTTP Digest authentication for SIP (RFC 3261 22, RFC 2617, RFC 7616, RFC 8760).

Pure: header values in, header values / verdicts out.  Time is always passed in
(``now`` in seconds); nothing here reads a clock, touches a socket or imports Twisted.

Algorithms: MD5, SHA-256, SHA-512-256 and their ``-sess`` variants; qop ``auth``,
``auth-int`` and the legacy no-qop form.
"""
from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import os
import re
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Iterable

__all__ = [
    "AuthError", "AuthHeaderError", "UnsupportedChallenge", "Challenge", "Credentials",
    "NonceStatus", "NonceManager", "ALGORITHMS",
    "parse_challenge", "parse_credentials", "format_challenge", "format_credentials",
    "choose_challenge", "compute_ha1", "compute_response", "build_authorization", "verify",
]


class AuthError(ValueError):
    """Base class for authentication problems caused by the peer."""


class AuthHeaderError(AuthError):
    """A WWW-Authenticate / Authorization header value is syntactically garbage."""


class UnsupportedChallenge(AuthError):
    """A well-formed challenge we cannot answer (unknown scheme, algorithm or qop)."""


def _hasher(name: str) -> Callable[[bytes], str]:
    return lambda data: hashlib.new(name, data).hexdigest()


#: Canonical algorithm name -> hex digest function, weakest first.
ALGORITHMS: dict[str, Callable[[bytes], str]] = {
    "MD5": _hasher("md5"),
    "SHA-256": _hasher("sha256"),
}
try:  # RFC 7616 SHA-512/256 (needs OpenSSL's sha512_256)
    hashlib.new("sha512_256", b"")
    ALGORITHMS["SHA-512-256"] = _hasher("sha512_256")
except ValueError:  # pragma: no cover - depends on the OpenSSL build
    pass
_STRENGTH = {name: rank for rank, name in enumerate(ALGORITHMS)}


def _canonical_algorithm(name: str | None) -> str:
    """'md5-Sess' -> 'MD5-sess'; unknown names are returned upper-cased (and rejected later)."""
    if name is None:
        return "MD5"
    base, sess = (name[:-5], True) if name.lower().endswith("-sess") else (name, False)
    base = base.upper()
    return base + "-sess" if sess else base


def _split_algorithm(algorithm: str) -> tuple[Callable[[bytes], str], bool]:
    sess = algorithm.endswith("-sess")
    base = algorithm[:-5] if sess else algorithm
    if base not in ALGORITHMS:
        raise UnsupportedChallenge(f"unsupported digest algorithm {algorithm!r}")
    return ALGORITHMS[base], sess


# ---------------------------------------------------------------- header syntax

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM_RE = re.compile(
    rf"[ \t\r\n]*({_TOKEN})[ \t\r\n]*=[ \t\r\n]*(?:\"((?:[^\"\\]|\\.)*)\"|([^\s,\"]+))[ \t\r\n]*(,|$)", re.S)
_SCHEME_RE = re.compile(rf"[ \t\r\n]*({_TOKEN})(?:[ \t\r\n]+(.*))?$", re.S)
_UNESCAPE_RE = re.compile(r"\\(.)", re.S)


def _parse(value: str) -> tuple[str, str, dict[str, str]]:
    """Split ``Scheme k=v, k="v"`` into (scheme, raw params, {lower-name: value})."""
    if not isinstance(value, str):
        raise TypeError("header value must be str")
    m = _SCHEME_RE.match(value.strip())
    if m is None:
        raise AuthHeaderError(f"no auth scheme in {value!r}")
    scheme, rest = m.group(1), (m.group(2) or "").strip()
    if scheme.lower() != "digest":
        return scheme, rest, {}  # opaque to us: token68 or params we will never interpret
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        pm = _PARAM_RE.match(rest, pos)
        if pm is None:
            raise AuthHeaderError(f"malformed digest parameter at {rest[pos:pos + 30]!r}")
        name = pm.group(1).lower()
        raw = pm.group(2)
        val = _UNESCAPE_RE.sub(r"\1", raw) if raw is not None else pm.group(3)
        if name in params:
            raise AuthHeaderError(f"duplicate digest parameter {name!r}")
        params[name] = val
        pos = pm.end()
        if pm.group(4) == "," and pos >= len(rest):
            raise AuthHeaderError("trailing comma in digest parameters")
    return "Digest", rest, params


def _quote(value: str) -> str:
    if any(c in value for c in "\r\n\x00"):
        raise ValueError(f"header parameter contains CR, LF or NUL: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------- challenges

@dataclass(frozen=True)
class Challenge:
    scheme: str
    realm: str | None = None
    nonce: str | None = None
    opaque: str | None = None
    algorithm: str = "MD5"
    qop_options: tuple[str, ...] = ()
    stale: bool = False
    domain: str | None = None
    raw: str = field(default="", compare=False)  # parameters as received (all of it for other schemes)


def parse_challenge(header_value: str) -> Challenge:
    """Parse a WWW-Authenticate / Proxy-Authenticate value; non-Digest schemes parse opaquely."""
    scheme, rest, p = _parse(header_value)
    if scheme != "Digest":
        return Challenge(scheme=scheme, algorithm="", raw=rest)
    for required in ("realm", "nonce"):
        if required not in p:
            raise AuthHeaderError(f"digest challenge lacks {required}")
    qops = tuple(q.strip().lower() for q in p.get("qop", "").split(",") if q.strip())
    return Challenge("Digest", p["realm"], p["nonce"], p.get("opaque"),
                     _canonical_algorithm(p.get("algorithm")), qops,
                     p.get("stale", "").lower() == "true", p.get("domain"), rest)


def format_challenge(realm: str, nonce: str, *, algorithm: str = "MD5", qop: Iterable[str] | None = ("auth",),
                     opaque: str | None = None, stale: bool = False, domain: str | None = None) -> str:
    """A ``Digest`` challenge value for WWW-Authenticate / Proxy-Authenticate."""
    parts = [f"realm={_quote(realm)}"]
    if domain is not None:
        parts.append(f"domain={_quote(domain)}")
    parts.append(f"nonce={_quote(nonce)}")
    if opaque is not None:
        parts.append(f"opaque={_quote(opaque)}")
    if stale:
        parts.append("stale=TRUE")
    parts.append(f"algorithm={_canonical_algorithm(algorithm)}")
    if qop:
        parts.append(f"qop={_quote(','.join(qop))}")
    return "Digest " + ", ".join(parts)


def choose_challenge(challenges: Iterable[Challenge]) -> Challenge:
    """RFC 8760: answer the strongest Digest algorithm we support (first one on ties)."""
    best: Challenge | None = None
    for ch in challenges:
        if ch.scheme != "Digest":
            continue
        try:
            _split_algorithm(ch.algorithm)
        except UnsupportedChallenge:
            continue
        if ch.qop_options and not {"auth", "auth-int"} & set(ch.qop_options):
            continue
        rank = _STRENGTH[ch.algorithm.removesuffix("-sess")]
        if best is None or rank > _STRENGTH[best.algorithm.removesuffix("-sess")]:
            best = ch
    if best is None:
        raise UnsupportedChallenge("no Digest challenge with an algorithm and qop we support")
    return best


# ---------------------------------------------------------------- credentials

@dataclass(frozen=True)
class Credentials:
    username: str | None
    realm: str | None
    nonce: str | None
    uri: str | None
    response: str | None
    algorithm: str = "MD5"
    cnonce: str | None = None
    nc: int | None = None
    qop: str | None = None
    opaque: str | None = None
    scheme: str = "Digest"
    raw: str = field(default="", compare=False)


def parse_credentials(header_value: str) -> Credentials:
    """Parse an Authorization / Proxy-Authorization value; non-Digest schemes parse opaquely."""
    scheme, rest, p = _parse(header_value)
    if scheme != "Digest":
        return Credentials(None, None, None, None, None, algorithm="", scheme=scheme, raw=rest)
    for required in ("username", "realm", "nonce", "uri", "response"):
        if required not in p:
            raise AuthHeaderError(f"digest credentials lack {required}")
    nc = None
    if "nc" in p:
        if not re.fullmatch(r"[0-9a-fA-F]{8}", p["nc"]):
            raise AuthHeaderError(f"nc must be 8 hex digits, got {p['nc']!r}")
        nc = int(p["nc"], 16)
    qop = p["qop"].lower() if "qop" in p else None
    if qop is not None and (nc is None or "cnonce" not in p):
        raise AuthHeaderError("qop given without cnonce and nc")
    return Credentials(p["username"], p["realm"], p["nonce"], p["uri"], p["response"],
                       _canonical_algorithm(p.get("algorithm")), p.get("cnonce"), nc, qop,
                       p.get("opaque"), "Digest", rest)


def format_credentials(c: Credentials) -> str:
    """An ``Authorization`` value (RFC 2617 quoting: qop, nc and algorithm unquoted)."""
    parts = [f"username={_quote(c.username or '')}", f"realm={_quote(c.realm or '')}",
             f"nonce={_quote(c.nonce or '')}", f"uri={_quote(c.uri or '')}",
             f"response={_quote(c.response or '')}", f"algorithm={c.algorithm}"]
    if c.cnonce is not None:
        parts.append(f"cnonce={_quote(c.cnonce)}")
    if c.opaque is not None:
        parts.append(f"opaque={_quote(c.opaque)}")
    if c.qop is not None:
        parts.append(f"qop={c.qop}")
    if c.nc is not None:
        parts.append(f"nc={c.nc:08x}")
    return "Digest " + ", ".join(parts)


# ---------------------------------------------------------------- the digest itself

def compute_ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """H(username:realm:password) -- what a server stores instead of the password."""
    h, _ = _split_algorithm(_canonical_algorithm(algorithm))
    return h(f"{username}:{realm}:{password}".encode("utf-8"))


def compute_response(*, ha1: str, nonce: str, method: str, uri: str, algorithm: str = "MD5",
                     qop: str | None = None, cnonce: str | None = None, nc: int | None = None,
                     body: bytes = b"") -> str:
    """The request-digest of RFC 7616 3.4.1 / RFC 2617 3.2.2.1, from a precomputed HA1."""
    h, sess = _split_algorithm(_canonical_algorithm(algorithm))
    if sess:
        ha1 = h(f"{ha1}:{nonce}:{cnonce or ''}".encode("utf-8"))
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 += ":" + h(body)
    ha2 = h(a2.encode("utf-8"))
    if qop is None:
        return h(f"{ha1}:{nonce}:{ha2}".encode("utf-8"))
    if qop not in ("auth", "auth-int") or cnonce is None or nc is None:
        raise UnsupportedChallenge(f"cannot compute qop={qop!r} without cnonce and nc")
    return h(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}".encode("utf-8"))


def build_authorization(challenge: Challenge, method: str, uri: str, username: str,
                        password: str | None = None, ha1: str | None = None, *, cnonce: str,
                        nc: int = 1, body: bytes = b"") -> str:
    """Client side: the Authorization / Proxy-Authorization value answering ``challenge``."""
    if (password is None) == (ha1 is None):
        raise TypeError("give exactly one of password or ha1")
    uri = str(uri)  # accept a parsed URI object; the digest covers its exact text form
    if challenge.scheme != "Digest" or challenge.realm is None or challenge.nonce is None:
        raise UnsupportedChallenge(f"cannot answer a {challenge.scheme!r} challenge")
    _split_algorithm(challenge.algorithm)
    if not challenge.qop_options:
        qop = None
    elif "auth" in challenge.qop_options:
        qop = "auth"
    elif "auth-int" in challenge.qop_options:
        qop = "auth-int"
    else:
        raise UnsupportedChallenge(f"no supported qop in {challenge.qop_options}")
    if ha1 is None:
        ha1 = compute_ha1(username, challenge.realm, password, challenge.algorithm)
    sess = challenge.algorithm.endswith("-sess")
    use_cnonce = cnonce if (qop or sess) else None
    response = compute_response(ha1=ha1, nonce=challenge.nonce, method=method, uri=uri,
                                algorithm=challenge.algorithm, qop=qop, cnonce=use_cnonce,
                                nc=nc if qop else None, body=body)
    return format_credentials(Credentials(username, challenge.realm, challenge.nonce, uri, response,
                                          challenge.algorithm, use_cnonce, nc if qop else None, qop,
                                          challenge.opaque))


def verify(credentials: Credentials, method: str, ha1: str, body: bytes = b"") -> bool:
    """Server side: does ``credentials.response`` match?  Constant-time; never raises on peer input.

    ``ha1`` must be H(username:realm:password) in the credentials' algorithm.  Nonce
    freshness and nc replay are separate checks (:class:`NonceManager`).
    """
    c = credentials
    if c.scheme != "Digest" or None in (c.nonce, c.uri, c.response):
        return False
    try:
        expected = compute_response(ha1=ha1, nonce=c.nonce, method=method, uri=c.uri,
                                    algorithm=c.algorithm, qop=c.qop, cnonce=c.cnonce, nc=c.nc, body=body)
    except UnsupportedChallenge:
        return False
    return hmac.compare_digest(expected.encode("ascii"), c.response.lower().encode("utf-8", "replace"))


# ---------------------------------------------------------------- stateless nonces

class NonceStatus(enum.Enum):
    VALID = "valid"
    STALE = "stale"      # ours, but too old: challenge again with stale=TRUE
    INVALID = "invalid"  # not ours (forged, tampered, garbage)


_TS = struct.Struct(">Q")
_SALT_LEN = 8
_MAC_LEN = 16
_NONCE_LEN = _TS.size + _SALT_LEN + _MAC_LEN


class NonceManager:
    """Issues HMAC-signed nonces carrying their issue time, so checking needs no table.

    Replay protection (``check_nc``) does keep a small table: the highest nc seen per
    nonce, dropped once the nonce has expired and capped at ``max_tracked`` entries.
    """

    def __init__(self, secret: bytes, lifetime: float = 300, *, max_tracked: int = 100_000,
                 max_skew: float = 5.0, random: Callable[[int], bytes] = os.urandom):
        if not secret:
            raise ValueError("NonceManager needs a non-empty secret")
        self._secret = bytes(secret)
        self.lifetime = lifetime
        self.max_skew = max_skew
        self._max_tracked = max_tracked
        self._random = random
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()  # nonce -> (issued, last nc)
        self._latest_now = float("-inf")

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_LEN]

    def issue(self, now: float) -> str:
        payload = _TS.pack(max(0, int(now * 1000))) + self._random(_SALT_LEN)
        return base64.urlsafe_b64encode(payload + self._mac(payload)).decode("ascii")

    def _issued_at(self, nonce: str) -> float | None:
        """Issue time in seconds if the nonce is authentically ours, else None."""
        try:
            raw = base64.urlsafe_b64decode(nonce.encode("ascii"))
        except (ValueError, UnicodeEncodeError, AttributeError):
            return None
        if len(raw) != _NONCE_LEN or base64.urlsafe_b64encode(raw).decode("ascii") != nonce:
            return None
        payload, mac = raw[:-_MAC_LEN], raw[-_MAC_LEN:]
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        return _TS.unpack(payload[:_TS.size])[0] / 1000

    def check(self, nonce: str, now: float) -> NonceStatus:
        self._latest_now = max(self._latest_now, now)
        issued = self._issued_at(nonce)
        if issued is None or issued > now + self.max_skew:
            return NonceStatus.INVALID
        return NonceStatus.STALE if now - issued > self.lifetime else NonceStatus.VALID

    def check_nc(self, nonce: str, nc: int | None, now: float | None = None) -> bool:
        """True (and remembered) if ``nc`` is higher than any nc seen before with this nonce."""
        if now is not None:
            self._latest_now = max(self._latest_now, now)
        self._prune()
        issued = self._issued_at(nonce)
        if issued is None or not isinstance(nc, int) or nc < 1:
            return False
        entry = self._seen.get(nonce)
        if entry is not None and nc <= entry[1]:
            return False
        if self._latest_now - issued > self.lifetime:
            return False  # expired: not worth remembering, the request must be re-challenged
        self._seen[nonce] = (issued, nc)
        while len(self._seen) > self._max_tracked:
            self._seen.popitem(last=False)
        return True

    def _prune(self) -> None:
        horizon = self._latest_now - self.lifetime
        while self._seen:
            nonce, (issued, _) = next(iter(self._seen.items()))
            if issued >= horizon:
                break
            del self._seen[nonce]

    @property
    def tracked(self) -> int:
        """How many nonces the replay table currently remembers."""
        return len(self._seen)
