"""G.711 u-law (PCMU) and A-law (PCMA) codecs, table driven and vectorised with numpy.

Pure: no I/O, no clock.  Python 3.13 dropped ``audioop``, so the codec lives here.

The tables are built once at import from the classic ITU-T G.711 bit definitions (as in the
Sun Microsystems reference ``g711.c`` that most stacks copy):

* decode: a 256-entry ``int16`` table indexed by the code byte;
* encode: a 65536-entry ``uint8`` table indexed by the 16-bit sample reinterpreted as ``uint16``,
  so encoding a frame is a single fancy-indexing operation.

``*_encode`` returns a ``numpy.ndarray`` of ``uint8`` (call ``.tobytes()`` for the wire);
``*_decode`` accepts ``bytes``/``bytearray``/``memoryview``/``uint8`` arrays and returns ``int16``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = [
    "ULAW_SILENCE", "ALAW_SILENCE", "ulaw_encode", "ulaw_decode", "alaw_encode", "alaw_decode",
    "encoder_for", "decoder_for", "silence_byte", "UnknownCodec",
]

ULAW_SILENCE = 0xFF  # u-law code of sample 0
ALAW_SILENCE = 0xD5  # A-law code of sample 0

_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635


class UnknownCodec(ValueError):
    """Asked for a codec this module does not implement (our misuse, not the peer's)."""


def _segment(values: np.ndarray, ends: list[int]) -> np.ndarray:
    """Index of the first segment end >= value (len(ends) when above all)."""
    return np.searchsorted(np.asarray(ends), values, side="left")


def _build_ulaw_encode() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int64)
    sign = np.where(pcm < 0, 0x80, 0)
    mag = np.minimum(np.abs(pcm), _ULAW_CLIP) + _ULAW_BIAS
    # exponent = position of the highest set bit among bits 7..14
    exponent = np.floor(np.log2(mag >> 7)).astype(np.int64)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    code = (~(sign | (exponent << 4) | mantissa)) & 0xFF
    table = np.empty(65536, dtype=np.uint8)
    table[pcm.astype(np.int16).view(np.uint16)] = code
    return table


def _build_ulaw_decode() -> np.ndarray:
    code = (~np.arange(256, dtype=np.int64)) & 0xFF
    sign = code & 0x80
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    mag = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(sign != 0, -mag, mag).astype(np.int16)


_ALAW_SEG_END = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]


def _build_alaw_encode() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int64) >> 3  # 13-bit
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = _segment(mag, _ALAW_SEG_END)
    low = np.where(seg < 2, (mag >> 1) & 0x0F, (mag >> np.maximum(seg, 1)) & 0x0F)
    code = np.where(seg >= 8, 0x7F, (seg << 4) | low) ^ mask
    table = np.empty(65536, dtype=np.uint8)
    table[np.arange(-32768, 32768, dtype=np.int64).astype(np.int16).view(np.uint16)] = code
    return table


def _build_alaw_decode() -> np.ndarray:
    a = np.arange(256, dtype=np.int64) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


_ULAW_ENC = _build_ulaw_encode()
_ULAW_DEC = _build_ulaw_decode()
_ALAW_ENC = _build_alaw_encode()
_ALAW_DEC = _build_alaw_decode()
for _t in (_ULAW_ENC, _ULAW_DEC, _ALAW_ENC, _ALAW_DEC):
    _t.setflags(write=False)


def _as_pcm(pcm: np.ndarray) -> np.ndarray:
    arr = np.asarray(pcm)
    if arr.dtype != np.int16:
        raise TypeError(f"G.711 encode needs int16 samples, got {arr.dtype}")
    return arr


def _as_codes(data) -> np.ndarray:
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise TypeError(f"G.711 decode needs uint8 codes, got {data.dtype}")
        return data
    return np.frombuffer(data, dtype=np.uint8)


def ulaw_encode(pcm: np.ndarray) -> np.ndarray:
    """int16 samples -> u-law codes (uint8 array of the same shape)."""
    return _ULAW_ENC[_as_pcm(pcm).view(np.uint16)]


def ulaw_decode(data) -> np.ndarray:
    """u-law codes (bytes or uint8 array) -> int16 samples."""
    return _ULAW_DEC[_as_codes(data)]


def alaw_encode(pcm: np.ndarray) -> np.ndarray:
    """int16 samples -> A-law codes (uint8 array of the same shape)."""
    return _ALAW_ENC[_as_pcm(pcm).view(np.uint16)]


def alaw_decode(data) -> np.ndarray:
    """A-law codes (bytes or uint8 array) -> int16 samples."""
    return _ALAW_DEC[_as_codes(data)]


_CODECS: dict[str, tuple[Callable, Callable, int]] = {
    "PCMU": (ulaw_encode, ulaw_decode, ULAW_SILENCE),
    "PCMA": (alaw_encode, alaw_decode, ALAW_SILENCE),
}
_ALIASES = {"ULAW": "PCMU", "G711U": "PCMU", "MULAW": "PCMU", "ALAW": "PCMA", "G711A": "PCMA"}


def _lookup(codec_name: str) -> tuple[Callable, Callable, int]:
    name = codec_name.upper().split("/")[0]
    name = _ALIASES.get(name, name)
    try:
        return _CODECS[name]
    except KeyError:
        raise UnknownCodec(f"unsupported codec {codec_name!r} (have PCMU, PCMA)") from None


def encoder_for(codec_name: str) -> Callable[[np.ndarray], np.ndarray]:
    """Encoder by SDP name ('PCMU', 'PCMA', also 'PCMU/8000', 'ulaw', 'alaw')."""
    return _lookup(codec_name)[0]


def decoder_for(codec_name: str) -> Callable[[object], np.ndarray]:
    """Decoder by SDP name (see ``encoder_for``)."""
    return _lookup(codec_name)[1]


def silence_byte(codec_name: str) -> int:
    """The code byte for digital silence in this codec."""
    return _lookup(codec_name)[2]
