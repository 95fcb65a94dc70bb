"""G.711 against a scalar transcription of the reference g711.c and the ITU-T code points."""
import numpy as np
import pytest

from ivr.media import g711


# --- scalar reference (Sun Microsystems g711.c, 16-bit linear in) -----------------
def ref_linear2ulaw(pcm: int) -> int:
    BIAS, CLIP = 0x84, 32635
    sign = 0x80 if pcm < 0 else 0
    mag = min(-pcm if pcm < 0 else pcm, CLIP) + BIAS
    exponent = 7
    for e in range(8):
        if mag < (1 << (e + 8)):
            exponent = e
            break
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def ref_ulaw2linear(u: int) -> int:
    u = ~u & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return (0x84 - t) if (u & 0x80) else (t - 0x84)


def ref_linear2alaw(pcm: int) -> int:
    pcm >>= 3
    if pcm >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm = -pcm - 1
    seg_end = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]
    seg = next((i for i, e in enumerate(seg_end) if pcm <= e), 8)
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    aval |= (pcm >> 1) & 0x0F if seg < 2 else (pcm >> seg) & 0x0F
    return aval ^ mask


def ref_alaw2linear(a: int) -> int:
    a ^= 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t += 0x108
        t <<= seg - 1
    return t if (a & 0x80) else -t


ALL = np.arange(-32768, 32768, dtype=np.int64).astype(np.int16)


def test_ulaw_code_points():
    enc = g711.ulaw_encode(np.array([0, -1, 32767, -32768, 1, -2], dtype=np.int16))
    assert list(enc) == [0xFF, 0x7F, 0x80, 0x00, 0xFF, 0x7F]
    dec = g711.ulaw_decode(bytes([0x00, 0x80, 0xFF, 0x7F, 0x7E, 0xFE]))
    assert list(dec) == [-32124, 32124, 0, 0, -8, 8]
    assert g711.ULAW_SILENCE == 0xFF


def test_alaw_code_points():
    enc = g711.alaw_encode(np.array([0, -1, 32767, -32768, 16, -17], dtype=np.int16))
    assert list(enc) == [0xD5, 0x55, 0xAA, 0x2A, 0xD4, 0x54]
    dec = g711.alaw_decode(bytes([0xD5, 0x55, 0xAA, 0x2A, 0x80, 0x00]))
    assert list(dec) == [8, -8, 32256, -32256, 5504, -5504]
    assert g711.ALAW_SILENCE == 0xD5


def test_ulaw_matches_reference_for_every_sample():
    want = np.array([ref_linear2ulaw(int(x)) for x in ALL], dtype=np.uint8)
    assert np.array_equal(g711.ulaw_encode(ALL), want)
    want_dec = np.array([ref_ulaw2linear(u) for u in range(256)], dtype=np.int16)
    assert np.array_equal(g711.ulaw_decode(np.arange(256, dtype=np.uint8)), want_dec)


def test_alaw_matches_reference_for_every_sample():
    want = np.array([ref_linear2alaw(int(x)) for x in ALL], dtype=np.uint8)
    assert np.array_equal(g711.alaw_encode(ALL), want)
    want_dec = np.array([ref_alaw2linear(a) for a in range(256)], dtype=np.int16)
    assert np.array_equal(g711.alaw_decode(np.arange(256, dtype=np.uint8)), want_dec)


@pytest.mark.parametrize("enc,dec", [(g711.ulaw_encode, g711.ulaw_decode),
                                     (g711.alaw_encode, g711.alaw_decode)])
def test_round_trip_error_bounds(enc, dec):
    out = dec(enc(ALL)).astype(np.int64)
    err = np.abs(out - ALL.astype(np.int64))
    big = np.abs(ALL.astype(np.int64)) > 256
    # logarithmic quantiser: relative error under ~6.3% (half a 16-step segment) above 256 ...
    assert np.all(err[big] <= np.abs(ALL.astype(np.int64))[big] * 0.0625 + 16)
    # ... and a small absolute error near zero
    assert err[~big].max() <= 16
    # every code is a fixed point of decode->encode (tables are mutually consistent)
    codes = np.arange(256, dtype=np.uint8)
    again = enc(dec(codes))
    fixed = dec(again)
    assert np.array_equal(fixed, dec(codes))


def test_monotonic_decode():
    for dec, enc in ((g711.ulaw_decode, g711.ulaw_encode), (g711.alaw_decode, g711.alaw_encode)):
        values = dec(enc(ALL)).astype(np.int64)
        assert np.all(np.diff(values) >= 0)


def test_encode_keeps_shape_and_needs_int16():
    frame = np.zeros((2, 160), dtype=np.int16)
    assert g711.ulaw_encode(frame).shape == (2, 160)
    assert g711.ulaw_encode(frame).tobytes() == b"\xff" * 320
    with pytest.raises(TypeError):
        g711.ulaw_encode(np.zeros(160, dtype=np.float32))
    with pytest.raises(TypeError):
        g711.alaw_decode(np.zeros(4, dtype=np.int16))


def test_codec_lookup():
    assert g711.encoder_for("PCMU") is g711.ulaw_encode
    assert g711.encoder_for("pcma/8000") is g711.alaw_encode
    assert g711.decoder_for("ulaw") is g711.ulaw_decode
    assert g711.decoder_for("PCMA") is g711.alaw_decode
    assert g711.silence_byte("PCMA") == 0xD5
    with pytest.raises(g711.UnknownCodec):
        g711.encoder_for("opus")


def test_tables_are_read_only():
    with pytest.raises(ValueError):
        g711._ULAW_ENC[0] = 1
