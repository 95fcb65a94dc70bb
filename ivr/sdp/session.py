"""SDP (RFC 8866): a frozen model, a tolerant parser and a canonical serialiser.

Pure: text in, dataclasses out, bytes back.  No I/O, no clock, no Twisted.

The parser is liberal where real peers are sloppy (LF or CRLF line ends, blank
lines, unknown line types and attributes, session-level lines slightly out of
order, an empty ``s=``) and strict where guessing would be dangerous: a missing
``v=``/``o=``/``s=`` line, a malformed ``o=``/``c=``/``m=``/``t=``/``b=`` line or
a non-numeric port raises :class:`SdpError`.  Unknown line types are dropped (RFC
8866 section 5 asks parsers to ignore what they do not understand), so
``parse(serialize(parse(x))) == parse(x)`` holds for every accepted input.
"""
from __future__ import annotations

import enum
import functools
import ipaddress
import re
from dataclasses import dataclass, field, replace
from typing import NamedTuple

__all__ = [
    "SdpError", "Direction", "Origin", "Connection", "Bandwidth", "Timing",
    "RtpMap", "MediaDescription", "SessionDescription", "STATIC_PAYLOAD_TYPES",
    "parse_sdp", "serialize_sdp",
]


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


# ---------------------------------------------------------------- parsing

def _split(value: str, n: int, what: str, line: str) -> list[str]:
    parts = value.split()
    if len(parts) != n:
        raise SdpError(f"malformed {what} line: {line!r}")
    return parts


def _int(text: str, what: str, line: str, limit: int | None = None) -> int:
    if not (text.isascii() and text.isdigit()):
        raise SdpError(f"non-numeric {what} in {line!r}")
    if len(text) > MAX_DIGITS or (limit is not None and int(text) > limit):
        raise SdpError(f"{what} out of range in {line!r}")
    return int(text)


_FQDN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.?")


def _connection(value: str, line: str) -> Connection:
    """A c= line.  For ``IN IP4`` / ``IN IP6`` the address must be an address of that
    type (with the multicast ``/ttl/count`` suffixes RFC 8866 5.7 allows) or a host
    name; other network and address types are kept for offer/answer to refuse."""
    conn = Connection(*_split(value, 3, "c=", line))
    if conn.nettype == "IN" and conn.addrtype in ("IP4", "IP6"):
        _check_address(conn.addrtype, conn.address)
    return conn


@functools.lru_cache(maxsize=1024)
def _is_address(addrtype: str, host: str) -> bool:
    """Whether ``host`` is an address of that type (pure, so its answers are kept: a
    phone or trunk puts the same address in every offer)."""
    family = ipaddress.IPv4Address if addrtype == "IP4" else ipaddress.IPv6Address
    try:
        family(host)
        return True
    except ValueError:
        return False


def _check_address(addrtype: str, address: str) -> None:
    host, *suffixes = address.split("/")
    if len(suffixes) > (2 if addrtype == "IP4" else 1) or not all(map(_digits, suffixes)):
        raise SdpError(f"c= address {address} has a malformed /ttl/count suffix")
    if _is_address(addrtype, host):
        return
    # A host name is allowed (RFC 8866 5.7), but not one that reads as an address: a
    # top-level label is never all digits (RFC 1123 2.1), and ':' is not in a name.
    top = host.rstrip(".").rpartition(".")[2]
    if _FQDN.fullmatch(host) is None or top.isdigit():
        kind = "an IPv4" if addrtype == "IP4" else "an IPv6"
        raise SdpError(f"c= address {host} is not {kind} address")


def _bandwidth(value: str, line: str) -> Bandwidth:
    bwtype, sep, amount = value.partition(":")
    if not sep or not bwtype:
        raise SdpError(f"malformed b= line: {line!r}")
    return Bandwidth(bwtype, _int(amount.strip(), "bandwidth", line))


def _attribute(value: str) -> Attribute:
    name, sep, rest = value.partition(":")
    return (name, rest if sep else None)


def _media(value: str, line: str) -> list:
    """An m= line as the start of a media section: ``[media, port, proto, formats,
    port_count, attributes, bandwidths, connection, information, key]``; the parser fills
    in the rest and builds the MediaDescription once the section is complete."""
    parts = value.split()
    if len(parts) < 3 or (len(parts) < 4 and parts[1] != "0"):
        raise SdpError(f"malformed m= line: {line!r}")
    port_text, _, count_text = parts[1].partition("/")
    port = _int(port_text, "port", line, 65535)
    count = _int(count_text, "port count", line) if count_text else None
    return [parts[0], port, parts[2], tuple(parts[3:]), count, [], [], None, None, None]


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"parse_sdp wants bytes or str, not {type(data).__name__}")
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return bytes(data).decode("latin-1")  # RFC 8866 a=charset allows ISO-8859-x


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse one session description; raise :class:`SdpError` if it is malformed."""
    text = _decode(data)
    if "\x00" in text:
        raise SdpError("NUL byte in SDP")
    # Lines end in LF or CRLF (the last one may lack it, or end in a lone CR); any other
    # CR is inside a line.
    body = text.replace("\r\n", "\n")
    if body.endswith("\r"):
        body = body[:-1]
    if "\r" in body:
        raise SdpError("bare CR inside an SDP line")
    lines = [ln for ln in body.split("\n") if ln.strip()]
    if not lines or not lines[0].startswith("v="):
        raise SdpError("SDP must start with a v= line")
    session: dict = {"attributes": [], "bandwidths": [], "timing": [], "emails": [], "phones": []}
    media: list[list] = []  # one _media() list per section
    seen: set[str] = set()
    for line in lines:
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha() or not line[0].isascii():
            raise SdpError(f"malformed SDP line: {line!r}")
        kind, value = line[0], line[2:]
        if kind == "m":
            media.append(_media(value, line))
            continue
        if media:  # media-level section
            cur = media[-1]
            if kind == "a":
                cur[5].append(_attribute(value))
            elif kind == "c":
                if cur[7] is None:  # the first c= counts
                    cur[7] = _connection(value, line)
                else:
                    _connection(value, line)  # a malformed later one is still an error
            elif kind == "b":
                cur[6].append(_bandwidth(value, line))
            elif kind == "i":
                if cur[8] is None:
                    cur[8] = value
            elif kind == "k":
                if cur[9] is None:
                    cur[9] = value
            elif kind in "vos":
                raise SdpError(f"{kind}= line inside a media section: {line!r}")
            continue  # unknown media-level line: ignored
        if kind in "vos" and kind in seen:
            raise SdpError(f"duplicate {kind}= line")
        seen.add(kind)
        if kind == "v":
            if value.strip() != "0":
                raise SdpError(f"unsupported SDP version {value!r}")
        elif kind == "o":
            user, sid, sver, net, addr, address = _split(value, 6, "o=", line)
            session["origin"] = Origin(user, sid, _int(sver, "session version", line), net, addr, address)
        elif kind == "s":
            session["session_name"] = value
        elif kind == "c":
            session["connection"] = _connection(value, line)
        elif kind == "t":
            start, stop = _split(value, 2, "t=", line)
            session["timing"].append(Timing(_int(start, "start time", line), _int(stop, "stop time", line)))
        elif kind == "r":
            if not session["timing"]:
                raise SdpError("r= line before any t= line")
            last = session["timing"][-1]
            session["timing"][-1] = replace(last, repeats=last.repeats + (value,))
        elif kind == "a":
            session["attributes"].append(_attribute(value))
        elif kind == "b":
            session["bandwidths"].append(_bandwidth(value, line))
        elif kind == "e":
            session["emails"].append(value)
        elif kind == "p":
            session["phones"].append(value)
        elif kind in "iuzk":
            session[{"i": "information", "u": "uri", "z": "time_zones", "k": "key"}[kind]] = value
        # any other type letter is ignored
    for required in "os":
        if required not in seen:
            raise SdpError(f"SDP lacks the mandatory {required}= line")
    for key in ("attributes", "bandwidths", "timing", "emails", "phones"):
        session[key] = tuple(session[key])
    if not session["timing"]:
        session["timing"] = (Timing(),)  # tolerated: a missing t= means "permanent" anyway
    session["media"] = tuple(
        MediaDescription(name, port, proto, formats, connection, tuple(attributes),
                         tuple(bandwidths), count, information, key)
        for name, port, proto, formats, count, attributes, bandwidths, connection, information, key
        in media
    )
    return SessionDescription(**session)


# ---------------------------------------------------------------- serialising

def _attr_line(attr: Attribute) -> str:
    name, value = attr
    return f"a={name}" if value is None else f"a={name}:{value}"


def _conn_line(c: Connection) -> str:
    return f"c={c.nettype} {c.addrtype} {c.address}"


def serialize_sdp(sd: SessionDescription) -> bytes:
    """Canonical RFC 8866 order (v o s i u e p c b t r z k a, then m i c b k a), CRLF."""
    o = sd.origin
    out = [f"v={sd.version}",
           f"o={o.username} {o.sess_id} {o.sess_version} {o.nettype} {o.addrtype} {o.address}",
           f"s={sd.session_name}"]
    if sd.information is not None:
        out.append(f"i={sd.information}")
    if sd.uri is not None:
        out.append(f"u={sd.uri}")
    out += [f"e={e}" for e in sd.emails] + [f"p={p}" for p in sd.phones]
    if sd.connection is not None:
        out.append(_conn_line(sd.connection))
    out += [f"b={b.bwtype}:{b.bandwidth}" for b in sd.bandwidths]
    for t in sd.timing or (Timing(),):
        out.append(f"t={t.start} {t.stop}")
        out += [f"r={r}" for r in t.repeats]
    if sd.time_zones is not None:
        out.append(f"z={sd.time_zones}")
    if sd.key is not None:
        out.append(f"k={sd.key}")
    out += [_attr_line(a) for a in sd.attributes]
    for m in sd.media:
        port = f"{m.port}/{m.port_count}" if m.port_count is not None else str(m.port)
        out.append(" ".join([f"m={m.media}", port, m.proto, *m.formats]))
        if m.information is not None:
            out.append(f"i={m.information}")
        if m.connection is not None:
            out.append(_conn_line(m.connection))
        out += [f"b={b.bwtype}:{b.bandwidth}" for b in m.bandwidths]
        if m.key is not None:
            out.append(f"k={m.key}")
        out += [_attr_line(a) for a in m.attributes]
    for line in out:
        if "\r" in line or "\n" in line or "\x00" in line:
            raise ValueError(f"SDP field contains a line break or NUL: {line!r}")
    return ("\r\n".join(out) + "\r\n").encode("utf-8")
