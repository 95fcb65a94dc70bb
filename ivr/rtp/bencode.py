"""Bencode (the BitTorrent encoding rtpengine's ng protocol speaks), both ways, pure.

Four types: byte strings ``4:spam``, integers ``i42e``, lists ``l...e`` and dictionaries
``d...e`` whose keys are byte strings in sorted order.  :func:`encode` takes ``bytes``,
``str`` (UTF-8), ``int`` (not ``bool``), lists/tuples and dicts with ``str``/``bytes`` keys;
:func:`decode` gives ``bytes``, ``int``, ``list`` and ``dict`` with ``bytes`` keys, and
raises :class:`BencodeError` for anything that is not exactly one well-formed value (a
peer's garbage never raises anything else).  Nesting is capped so a hostile datagram cannot
exhaust the stack.
"""
from __future__ import annotations

__all__ = ["BencodeError", "decode", "encode", "MAX_DEPTH"]

MAX_DEPTH = 32


class BencodeError(ValueError):
    """The bytes are not one well-formed bencoded value (or a value cannot be encoded)."""


def encode(value) -> bytes:
    out: list[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)


def _encode(value, out: list, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BencodeError("nested too deep")
    if isinstance(value, (bytes, bytearray)):
        out.append(b"%d:" % len(value))
        out.append(bytes(value))
    elif isinstance(value, str):
        _encode(value.encode("utf-8"), out, depth)
    elif isinstance(value, bool):
        raise BencodeError("bencode has no booleans")
    elif isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, (list, tuple)):
        out.append(b"l")
        for item in value:
            _encode(item, out, depth + 1)
        out.append(b"e")
    elif isinstance(value, dict):
        keys = {}
        for key, item in value.items():
            raw = key.encode("utf-8") if isinstance(key, str) else key
            if not isinstance(raw, bytes):
                raise BencodeError(f"dictionary key {key!r} is not a string")
            if raw in keys:
                raise BencodeError(f"dictionary key {key!r} given twice")
            keys[raw] = item
        out.append(b"d")
        for raw in sorted(keys):
            _encode(raw, out, depth + 1)
            _encode(keys[raw], out, depth + 1)
        out.append(b"e")
    else:
        raise BencodeError(f"cannot bencode {type(value).__name__}")


def decode(data: bytes):
    """The one value ``data`` holds; BencodeError when it holds anything else."""
    if not isinstance(data, (bytes, bytearray)):
        raise BencodeError("bencode is bytes")
    data = bytes(data)
    value, end = _decode(data, 0, 0)
    if end != len(data):
        raise BencodeError(f"{len(data) - end} bytes after the value")
    return value


def _decode(data: bytes, i: int, depth: int):
    if depth > MAX_DEPTH:
        raise BencodeError("nested too deep")
    if i >= len(data):
        raise BencodeError("truncated")
    c = data[i]
    if c == 0x69:  # i
        end = data.find(b"e", i + 1)
        if end < 0:
            raise BencodeError("unterminated integer")
        text = data[i + 1:end]
        if not _is_integer(text):
            raise BencodeError(f"bad integer {text[:20]!r}")
        return int(text), end + 1
    if c == 0x6C:  # l
        items = []
        i += 1
        while True:
            if i >= len(data):
                raise BencodeError("unterminated list")
            if data[i] == 0x65:
                return items, i + 1
            item, i = _decode(data, i, depth + 1)
            items.append(item)
    if c == 0x64:  # d
        result: dict = {}
        i += 1
        while True:  # keys in any order (be liberal), but never one twice
            if i >= len(data):
                raise BencodeError("unterminated dictionary")
            if data[i] == 0x65:
                return result, i + 1
            if not 0x30 <= data[i] <= 0x39:
                raise BencodeError("dictionary key is not a string")
            key, i = _decode(data, i, depth + 1)
            if key in result:
                raise BencodeError(f"dictionary key {key[:20]!r} given twice")
            result[key], i = _decode(data, i, depth + 1)
    if 0x30 <= c <= 0x39:
        colon = data.find(b":", i)
        if colon < 0 or colon - i > 10:
            raise BencodeError("bad string length")
        text = data[i:colon]
        if not text.isdigit() or (len(text) > 1 and text[0] == 0x30):
            raise BencodeError(f"bad string length {text!r}")
        start = colon + 1
        end = start + int(text)
        if end > len(data):
            raise BencodeError("truncated string")
        return data[start:end], end
    raise BencodeError(f"unexpected byte {bytes([c])!r} at {i}")


def _is_integer(text: bytes) -> bool:
    digits = text[1:] if text[:1] == b"-" else text
    if not digits.isdigit() or len(digits) > 20:
        return False
    if digits[:1] == b"0" and (len(digits) > 1 or text[:1] == b"-"):
        return False  # i03e and i-0e are not canonical
    return True
