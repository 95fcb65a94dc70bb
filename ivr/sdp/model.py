"""The SDP model (RFC 8866): a session description and its media lines as frozen
dataclasses, with what a media line says (codecs by RFC 3551 static type or a=rtpmap,
fmtp, ptime, direction, the RFC 3264 hold forms), and :class:`SdpError`.

Pure: no I/O, no clock, no Twisted.  :mod:`.session` reads and writes it as text (and
re-exports it).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import NamedTuple


class SdpError(ValueError):
    """The peer sent a session description we cannot make sense of.

    ``status`` is the SIP answer to an offer that raised it (400: the description is
    malformed) and ``warn_code`` the RFC 3261 20.43 Warning code naming the problem
    (399 miscellaneous unless a subclass or the raiser knows better); ``str(error)``
    is the Warning's text.
    """

    status = 400
    warn_code = 399

    def __init__(self, message: str, warn_code: int | None = None) -> None:
        super().__init__(message)
        if warn_code is not None:
            self.warn_code = warn_code


class Direction(str, enum.Enum):
    """Media direction attribute (RFC 8866 6.7), from the describing side's view."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def from_flags(cls, sends: bool, receives: bool) -> "Direction":
        if sends and receives:
            return cls.SENDRECV
        if sends:
            return cls.SENDONLY
        if receives:
            return cls.RECVONLY
        return cls.INACTIVE

    def reverse(self) -> "Direction":
        """The direction seen from the other end (sendonly <-> recvonly)."""
        return Direction.from_flags(self.receives, self.sends)

    def intersect(self, other: "Direction") -> "Direction":
        return Direction.from_flags(self.sends and other.sends, self.receives and other.receives)


_DIRECTIONS = {d.value for d in Direction}


class RtpMap(NamedTuple):
    encoding: str
    clock: int
    channels: int = 1


#: RFC 3551 static payload types an endpoint may use without an a=rtpmap line.
STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    0: RtpMap("PCMU", 8000), 3: RtpMap("GSM", 8000), 4: RtpMap("G723", 8000),
    5: RtpMap("DVI4", 8000), 6: RtpMap("DVI4", 16000), 7: RtpMap("LPC", 8000),
    8: RtpMap("PCMA", 8000), 9: RtpMap("G722", 8000), 10: RtpMap("L16", 44100, 2),
    11: RtpMap("L16", 44100), 12: RtpMap("QCELP", 8000), 13: RtpMap("CN", 8000),
    14: RtpMap("MPA", 90000), 15: RtpMap("G728", 8000), 16: RtpMap("DVI4", 11025),
    17: RtpMap("DVI4", 22050), 18: RtpMap("G729", 8000), 25: RtpMap("CelB", 90000),
    26: RtpMap("JPEG", 90000), 28: RtpMap("nv", 90000), 31: RtpMap("H261", 90000),
    32: RtpMap("MPV", 90000), 33: RtpMap("MP2T", 90000), 34: RtpMap("H263", 90000),
}

Attribute = tuple[str, "str | None"]


@dataclass(frozen=True)
class Origin:
    username: str
    sess_id: str
    sess_version: int
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"


@dataclass(frozen=True)
class Connection:
    nettype: str
    addrtype: str
    address: str

    @property
    def is_null(self) -> bool:
        """The RFC 2543 hold address 0.0.0.0 (or its IPv6 twin ::)."""
        return self.address in ("0.0.0.0", "::")


@dataclass(frozen=True)
class Bandwidth:
    bwtype: str
    bandwidth: int


@dataclass(frozen=True)
class Timing:
    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()


#: Longest number we read from SDP (a 64-bit o= version has 20 digits): int() of a few
#: thousand digits raises ValueError, and nothing legitimate is that long.
MAX_DIGITS = 20


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS


def _find(attributes: tuple[Attribute, ...], name: str) -> list[str | None]:
    return [v for n, v in attributes if n == name]


def _direction_attr(attributes: tuple[Attribute, ...]) -> Direction | None:
    found = None
    for name, _ in attributes:
        if name in _DIRECTIONS:
            found = Direction(name)
    return found


@dataclass(frozen=True)
class MediaDescription:
    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: Connection | None = None
    attributes: tuple[Attribute, ...] = ()
    bandwidths: tuple[Bandwidth, ...] = ()
    port_count: int | None = None
    information: str | None = None
    key: str | None = None

    def attribute(self, name: str) -> str | None:
        """Value of the first ``a=name:value`` (None if absent or valueless)."""
        values = _find(self.attributes, name)
        return values[0] if values else None

    def has_attribute(self, name: str) -> bool:
        return any(n == name for n, _ in self.attributes)

    @property
    def rejected(self) -> bool:
        """Port 0 marks a rejected or disabled stream (RFC 3264 section 6)."""
        return self.port == 0

    @property
    def payload_types(self) -> tuple[int, ...]:
        return tuple(int(f) for f in self.formats if _digits(f) and int(f) < 128)

    @property
    def rtpmap(self) -> dict[int, RtpMap]:
        """Explicit ``a=rtpmap`` lines, pt -> (encoding, clock, channels); malformed ones skipped."""
        out: dict[int, RtpMap] = {}
        for value in _find(self.attributes, "rtpmap"):
            pt, _, rest = (value or "").partition(" ")
            parts = rest.strip().split("/")
            if not _digits(pt) or len(parts) < 2 or not _digits(parts[1]):
                continue
            channels = int(parts[2]) if len(parts) > 2 and _digits(parts[2]) else 1
            out.setdefault(int(pt), RtpMap(parts[0], int(parts[1]), channels))
        return out

    @property
    def codecs(self) -> dict[int, RtpMap]:
        """Every offered payload type we can name: a=rtpmap first, else the RFC 3551 static table."""
        explicit = self.rtpmap
        out: dict[int, RtpMap] = {}
        for pt in self.payload_types:
            known = explicit.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
            if known is not None:
                out.setdefault(pt, known)
        return out

    @property
    def fmtp(self) -> dict[int, str]:
        out: dict[int, str] = {}
        for value in _find(self.attributes, "fmtp"):
            pt, _, params = (value or "").partition(" ")
            if _digits(pt):
                out.setdefault(int(pt), params.strip())
        return out

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in whole milliseconds (None if absent or unusable)."""
        value = self.attribute("ptime")
        try:
            ms = round(float(value or ""))
        except (ValueError, OverflowError):  # "abc", "nan"; "inf"
            return None
        return ms if 0 < ms <= 1000 else None

    def direction(self, session: "SessionDescription | None" = None) -> Direction:
        """Media-level direction, else the session-level one, else sendrecv."""
        found = _direction_attr(self.attributes)
        if found is None and session is not None:
            found = _direction_attr(session.attributes)
        return found or Direction.SENDRECV

    def effective_connection(self, session: "SessionDescription") -> Connection | None:
        return self.connection or session.connection

    def remote_address(self, session: "SessionDescription") -> str | None:
        """Where to send this stream's media: media-level c= else session-level c=."""
        conn = self.effective_connection(session)
        return conn.address.split("/")[0] if conn else None

    def is_hold(self, session: "SessionDescription") -> bool:
        """RFC 3264 section 8.4 hold: sendonly/inactive, or the legacy c=0.0.0.0."""
        conn = self.effective_connection(session)
        if conn is not None and conn.is_null:
            return True
        return self.direction(session) in (Direction.SENDONLY, Direction.INACTIVE)

    def with_direction(self, direction: Direction) -> "MediaDescription":
        attrs = tuple(a for a in self.attributes if a[0] not in _DIRECTIONS)
        return replace(self, attributes=attrs + ((direction.value, None),))


@dataclass(frozen=True)
class SessionDescription:
    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    timing: tuple[Timing, ...] = (Timing(),)
    media: tuple[MediaDescription, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    bandwidths: tuple[Bandwidth, ...] = ()
    version: int = 0
    information: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    time_zones: str | None = None
    key: str | None = None

    def attribute(self, name: str) -> str | None:
        values = _find(self.attributes, name)
        return values[0] if values else None

    @property
    def direction(self) -> Direction:
        """Session-level direction (default sendrecv)."""
        return _direction_attr(self.attributes) or Direction.SENDRECV
