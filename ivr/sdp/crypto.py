"""SDES: the SDP ``a=crypto`` attribute (RFC 4568) that carries SRTP master keys, and the
media encryption policy.

Pure: text in, frozen dataclasses out, text back; the only impure call is
:func:`new_key`, which draws a fresh master key and salt from ``secrets``.

``a=crypto:<tag> <suite> <key-params> [<session-params>]``, key-params being one or more
``inline:<base64(key||salt)>[|<lifetime>][|<mki>:<length>]`` joined by ``;`` (RFC 4568
section 9.2; lifetime is ``2^N`` or a decimal count of packets; a field with a colon is
the MKI).  :func:`parse_crypto` reads any suite (an unknown one is kept, so an offer can
be read whole and the line skipped); :meth:`CryptoAttribute.value` writes it back.  A
malformed line raises :class:`CryptoError` (an :class:`~ivr.sdp.session.SdpError`, 488
with Warning 306 "Attribute not understood").

What we can use (:meth:`CryptoAttribute.usable`): a suite of :data:`SUITES` with exactly one
key of the suite's length, no MKI (the SRTP binding keys a stream with one master key, so a
peer writing MKIs into its packets could not be read), and no session parameter other than
``WSH`` (a window-size hint), ``FEC_ORDER`` (we send no FEC) or one marked ignorable with a
leading ``-`` (RFC 4568 6.3).  ``KDR``, ``UNENCRYPTED_SRTP``/``SRTCP``,
``UNAUTHENTICATED_SRTP`` and ``FEC_KEY`` make the line unusable: the answerer then picks
another line, or refuses the stream (RFC 4568 7.1.2).

Key objects never print their keys (``repr`` hides them): SDP bodies are logged, keys must
not be.
"""
from __future__ import annotations

import base64
import binascii
import enum
import re
import secrets
from dataclasses import dataclass, field
from typing import NamedTuple

from .session import SdpError

__all__ = [
    "CryptoError", "Suite", "SUITES", "DEFAULT_SUITES", "KeyParam", "CryptoAttribute",
    "SrtpKeys", "MediaEncryption", "parse_crypto", "crypto_attributes", "new_key",
    "offer_lines", "SECURE_PROTOS", "PLAIN_PROTOS",
]

#: RTP profiles that carry SRTP (RFC 3711 / RFC 5124) and their plain twins.
SECURE_PROTOS = frozenset({"RTP/SAVP", "RTP/SAVPF"})
PLAIN_PROTOS = frozenset({"RTP/AVP", "RTP/AVPF"})


class CryptoError(SdpError):
    """An ``a=crypto`` line we cannot read (the peer's fault): 488, Warning 306."""

    status = 488
    warn_code = 306  # RFC 3261 20.43: Attribute not understood


class Suite(NamedTuple):
    name: str
    key_length: int   # master key, bytes
    salt_length: int  # master salt, bytes

    @property
    def inline_length(self) -> int:
        return self.key_length + self.salt_length


#: The SRTP crypto suites we negotiate (RFC 4568 6.2, RFC 7714 12), in our preference
#: order for offers.  Names as SDP writes them.
SUITES: dict[str, Suite] = {s.name: s for s in (
    Suite("AES_CM_128_HMAC_SHA1_80", 16, 14),
    Suite("AES_CM_128_HMAC_SHA1_32", 16, 14),
    Suite("AEAD_AES_128_GCM", 16, 12),
    Suite("AEAD_AES_256_GCM", 32, 12),
)}
#: What we offer by default: the two suites every SDES phone has.
DEFAULT_SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")

_IGNORABLE_PARAMS = ("WSH=", "FEC_ORDER=")
_TAG = re.compile(r"[0-9]{1,9}")
_SUITE = re.compile(r"[A-Za-z0-9_]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_LIFETIME = re.compile(r"2\^([0-9]{1,2})|([0-9]{1,20})")  # 2^N (N < 100) or a count
_MKI = re.compile(r"([0-9]{1,20}):([0-9]{1,3})")


class MediaEncryption(str, enum.Enum):
    """Per extension / trunk policy (issue #15): what a call leg's media may be."""

    REQUIRED = "required"  # SRTP only: a plain offer gets 488; we offer RTP/SAVP only
    OPTIONAL = "optional"  # either: we answer what is offered; we offer plain unless told
    OFF = "off"            # plain only: an RTP/SAVP offer gets 488

    @classmethod
    def of(cls, value: "MediaEncryption | str") -> "MediaEncryption":
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"media_encryption must be one of "
                             f"{', '.join(m.value for m in cls)}, not {value!r}") from None


@dataclass(frozen=True)
class KeyParam:
    """One ``inline:`` key: master key || master salt, optional lifetime and MKI."""

    key_salt: bytes = field(repr=False)
    lifetime: str | None = None          # as written: "2^20" or "1066"
    mki: tuple[int, int] | None = None   # (value, length in bytes)

    @property
    def lifetime_packets(self) -> int | None:
        if self.lifetime is None:
            return None
        power, count = _LIFETIME.fullmatch(self.lifetime).groups()
        return 2 ** int(power) if power is not None else int(count)

    def text(self) -> str:
        out = "inline:" + base64.b64encode(self.key_salt).decode("ascii")
        if self.lifetime is not None:
            out += "|" + self.lifetime
        if self.mki is not None:
            out += f"|{self.mki[0]}:{self.mki[1]}"
        return out


@dataclass(frozen=True)
class CryptoAttribute:
    """One ``a=crypto`` line (its value, after ``crypto:``)."""

    tag: int
    suite: str
    keys: tuple[KeyParam, ...]
    session_params: tuple[str, ...] = ()

    def value(self) -> str:
        """The attribute's value as SDP writes it (``a=crypto:`` + this)."""
        parts = [str(self.tag), self.suite, ";".join(k.text() for k in self.keys)]
        return " ".join(parts + list(self.session_params))

    @property
    def key_salt(self) -> bytes:
        return self.keys[0].key_salt

    def usable(self) -> str | None:
        """Why we cannot use this line (None: we can).  See the module docstring."""
        suite = SUITES.get(self.suite)
        if suite is None:
            return f"crypto suite {self.suite} is not supported"
        if len(self.keys) != 1:
            return "more than one master key (MKI) is not supported"
        key = self.keys[0]
        if len(key.key_salt) != suite.inline_length:
            return (f"{self.suite} needs a {suite.inline_length}-byte key and salt, "
                    f"not {len(key.key_salt)}")
        if key.mki is not None:
            return "an MKI is not supported"
        for param in self.session_params:
            if not param.startswith("-") and not param.startswith(_IGNORABLE_PARAMS):
                return f"session parameter {param} is not supported"
        return None


@dataclass(frozen=True)
class SrtpKeys:
    """What offer/answer agreed for one stream: the suite and both directions' keys."""

    suite: str
    tag: int
    local_key: bytes = field(repr=False)   # ours: protects what we send
    remote_key: bytes = field(repr=False)  # theirs: checks and decrypts what we receive


def _key_param(text: str, line: str) -> KeyParam:
    method, sep, info = text.partition(":")
    if method != "inline" or not sep:
        raise CryptoError(f"a=crypto key method {method!r} is not inline: {line!r}")
    key_text, *fields = info.split("|")
    if len(fields) > 2 or _BASE64.fullmatch(key_text) is None:
        raise CryptoError(f"malformed a=crypto key: {line!r}")
    try:
        key = base64.b64decode(key_text + "=" * (-len(key_text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise CryptoError(f"a=crypto key is not base64: {line!r}") from None
    lifetime = mki = None
    for i, f in enumerate(fields):
        m = _MKI.fullmatch(f)
        if m is not None:
            if i != len(fields) - 1:
                raise CryptoError(f"a=crypto MKI must come last: {line!r}")
            value, length = int(m.group(1)), int(m.group(2))
            if not 1 <= length <= 128 or value.bit_length() > 8 * length:
                raise CryptoError(f"a=crypto MKI out of range: {line!r}")
            mki = (value, length)
        elif _LIFETIME.fullmatch(f) is not None and i == 0:
            lifetime = f
        else:
            raise CryptoError(f"malformed a=crypto lifetime or MKI {f!r}: {line!r}")
    return KeyParam(key, lifetime, mki)


def parse_crypto(value: str | None) -> CryptoAttribute:
    """Parse an ``a=crypto`` value (what follows ``crypto:``); :class:`CryptoError` if malformed."""
    line = f"a=crypto:{value}"
    parts = (value or "").split()
    if len(parts) < 3:
        raise CryptoError(f"a=crypto needs a tag, a suite and a key: {line!r}")
    tag, suite, keys, *params = parts
    if _TAG.fullmatch(tag) is None:
        raise CryptoError(f"a=crypto tag must be 1-9 digits: {line!r}")
    if _SUITE.fullmatch(suite) is None:
        raise CryptoError(f"malformed a=crypto suite: {line!r}")
    return CryptoAttribute(int(tag), suite, tuple(_key_param(k, line) for k in keys.split(";")),
                           tuple(params))


def crypto_attributes(attributes) -> list[CryptoAttribute | CryptoError]:
    """Every ``a=crypto`` of a media section, in order; a malformed one as its error (an
    answerer skips it and may still use another line)."""
    out: list[CryptoAttribute | CryptoError] = []
    for name, value in attributes:
        if name == "crypto":
            try:
                out.append(parse_crypto(value))
            except CryptoError as e:
                out.append(e)
    return out


def new_key(suite: str) -> bytes:
    """A fresh master key and salt for ``suite`` (from the OS's CSPRNG)."""
    return secrets.token_bytes(SUITES[suite].inline_length)


def offer_lines(suites=DEFAULT_SUITES) -> tuple[CryptoAttribute, ...]:
    """Fresh ``a=crypto`` lines for an offer, tags 1, 2, ... in ``suites``' order."""
    unknown = [s for s in suites if s not in SUITES]
    if unknown or not suites:
        raise ValueError(f"unsupported crypto suite(s) {unknown or 'none'}; choose from {sorted(SUITES)}")
    return tuple(CryptoAttribute(tag, s, (KeyParam(new_key(s)),))
                 for tag, s in enumerate(suites, start=1))
