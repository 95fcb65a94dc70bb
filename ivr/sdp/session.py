"""SDP (RFC 8866): a tolerant parser and a canonical serialiser of the frozen model
in :mod:`.model` (re-exported here, where the code has always imported it from).

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

import functools
import ipaddress
import re
from dataclasses import replace

from .model import (  # noqa: F401
    MAX_DIGITS,
    STATIC_PAYLOAD_TYPES,
    Attribute,
    Bandwidth,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    RtpMap,
    SdpError,
    SessionDescription,
    Timing,
    _digits,
)

__all__ = [
    "SdpError", "Direction", "Origin", "Connection", "Bandwidth", "Timing",
    "RtpMap", "MediaDescription", "SessionDescription", "STATIC_PAYLOAD_TYPES",
    "parse_sdp", "serialize_sdp",
]


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
