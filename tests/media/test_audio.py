"""load_wav/save_wav: every common WAV encoding becomes the same 8 kHz mono int16."""

import struct

import numpy as np
import pytest

from ivr.media.audio import (ArrayLru, AudioFormatError, decode_wav_bytes, load_wav, rms,
                             save_wav, tone)

FREQ = 440.0
SECONDS = 1.0


def wav_bytes(samples: np.ndarray, rate: int, fmt_tag: int, bits: int, extensible=False) -> bytes:
    """Build a WAV image by hand (samples: float in [-1, 1], shape (n,) or (n, channels))."""
    x = samples if samples.ndim == 2 else samples[:, None]
    channels = x.shape[1]
    if fmt_tag == 3:
        raw = x.astype("<f4" if bits == 32 else "<f8").tobytes()
    elif bits == 8:
        raw = np.clip(np.rint(x * 127 + 128), 0, 255).astype(np.uint8).tobytes()
    elif bits == 16:
        raw = np.rint(x * 32767).astype("<i2").tobytes()
    elif bits == 24:
        v = np.rint(x * (2**23 - 1)).astype(np.int32).reshape(-1)
        raw = np.stack([v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF], axis=1).astype(np.uint8).tobytes()
    elif bits == 32:
        raw = np.rint(x * (2**31 - 1)).astype("<i4").tobytes()
    block = channels * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * block, block, bits, 22, bits, 0)
        fmt += struct.pack("<H", fmt_tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    else:
        fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    # a LIST chunk before data, as editors write, and an odd-sized chunk to test padding
    extra = b"LIST" + struct.pack("<I", 3) + b"abc\x00"
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra + b"data" + struct.pack("<I", len(raw)) + raw
    return b"RIFF" + struct.pack("<I", len(body)) + body


def sine(rate, channels=1, amplitude=0.5):
    t = np.arange(int(rate * SECONDS)) / rate
    x = amplitude * np.sin(2 * np.pi * FREQ * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def peak_hz(samples, rate=8000):
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)]


FORMATS = [
    ("16k stereo 16-bit", 16000, 2, 1, 16, False),
    ("44.1k mono 24-bit", 44100, 1, 1, 24, False),
    ("48k mono float32", 48000, 1, 3, 32, False),
    ("8k mono 8-bit", 8000, 1, 1, 8, False),
    ("22.05k mono 32-bit int", 22050, 1, 1, 32, False),
    ("48k stereo float32 extensible", 48000, 2, 3, 32, True),
    ("44.1k 6ch 16-bit extensible", 44100, 6, 1, 16, True),
    ("16k mono float64", 16000, 1, 3, 64, False),
]


@pytest.mark.parametrize("label,rate,channels,tag,bits,ext", FORMATS, ids=[f[0] for f in FORMATS])
def test_formats_load_to_same_8k_mono(tmp_path, label, rate, channels, tag, bits, ext):
    path = tmp_path / "p.wav"
    path.write_bytes(wav_bytes(sine(rate, channels), rate, tag, bits, ext))
    out = load_wav(path)
    assert out.dtype == np.int16 and out.ndim == 1
    assert len(out) == 8000
    assert abs(peak_hz(out) - FREQ) <= 1.0
    # amplitude 0.5 full scale: RMS = 0.5 * 32767 / sqrt(2) ~ 11585 (8-bit quantisation ~1%)
    assert rms(out[200:-200]) == pytest.approx(11585, rel=0.03)


def test_all_formats_agree_sample_by_sample(tmp_path):
    outs = []
    for label, rate, channels, tag, bits, ext in FORMATS:
        outs.append(decode_wav_bytes(wav_bytes(sine(rate, channels), rate, tag, bits, ext)))
    ref = outs[0].astype(np.int32)
    for out in outs[1:]:
        # ignore the resampler's edges; 8-bit quantisation noise is ~128 units
        assert np.max(np.abs(out.astype(np.int32)[100:-100] - ref[100:-100])) < 400


def test_stereo_mixes_down_by_averaging():
    left = np.full(800, 0.5)
    right = np.full(800, -0.25)
    out = decode_wav_bytes(wav_bytes(np.stack([left, right], axis=1), 8000, 1, 16))
    assert np.all(out == round(0.125 * 32767))


def test_full_scale_float_is_clipped_not_wrapped():
    x = np.array([1.5, -1.5, 1.0, -1.0] * 100)
    out = decode_wav_bytes(wav_bytes(x, 8000, 3, 32))
    assert out[:4].tolist() == [32767, -32768, 32767, -32768]


def test_save_and_load_round_trip(tmp_path):
    samples = tone(1000, 0.5)
    path = tmp_path / "sub" / "t.wav"
    save_wav(path, samples)
    assert np.array_equal(load_wav(path), samples)
    assert [p.name for p in path.parent.iterdir()] == ["t.wav"]  # no temp file left


def test_save_wav_at_other_rate_is_resampled_on_load(tmp_path):
    save_wav(tmp_path / "t.wav", tone(440, 1.0, rate=16000), rate=16000)
    out = load_wav(tmp_path / "t.wav")
    assert len(out) == 8000 and abs(peak_hz(out) - 440) <= 1.0


@pytest.mark.parametrize("data", [
    b"", b"RIFF", b"RIFF\x00\x00\x00\x00WAVE", b"not a wav at all, just text",
    b"RIFF\x10\x00\x00\x00WAVEfmt \x02\x00\x00\x00\x01\x00",
])
def test_garbage_raises_audio_format_error(data):
    with pytest.raises(AudioFormatError):
        decode_wav_bytes(data)


def test_unsupported_encoding_is_reported():
    x = wav_bytes(np.zeros(100), 8000, 1, 16).replace(b"\x01\x00\x01\x00@\x1f", b"\x07\x00\x01\x00@\x1f", 1)
    with pytest.raises(AudioFormatError, match="format 7"):
        decode_wav_bytes(x)


def test_truncated_data_chunk_reads_what_is_there():
    data = wav_bytes(sine(8000), 8000, 1, 16)[:-1001]  # cut mid-sample
    assert len(decode_wav_bytes(data)) == 8000 - 501


def test_lru_evicts_least_recently_used_by_bytes():
    lru = ArrayLru(max_bytes=3 * 800)
    for k in "abc":
        lru.put(k, np.zeros(400, np.int16))
    lru.get("a")
    lru.put("d", np.zeros(400, np.int16))
    assert lru.get("b") is None and lru.get("a") is not None and len(lru) == 3
    assert lru.nbytes == 2400
