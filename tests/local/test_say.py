"""``ivr say``: to a file, on a real PortAudio device (PipeWire null sink), and with no device."""
from __future__ import annotations

import numpy as np

from ivr.local.say import caller_audio
from ivr.media import g711
from ivr.media.audio import load_wav

from .conftest import Capture, base_env, ivr

TEXT = "Thank you for calling. Press one for sales, or two for support."


def normalised_xcorr_peak(capture: np.ndarray, ref: np.ndarray) -> tuple[float, int]:
    """max over lags of <capture[lag:lag+n], ref> / (|window| |ref|), and that lag."""
    x = capture.astype(np.float64)
    r = ref.astype(np.float64)
    n = len(r)
    size = 1 << int(np.ceil(np.log2(len(x) + n)))
    corr = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(r, size)), size)[:len(x) - n + 1]
    energy = np.concatenate([[0.0], np.cumsum(x * x)])
    window = np.sqrt(np.maximum(energy[n:] - energy[:-n], 1e-9))
    score = corr / (window * np.linalg.norm(r))
    lag = int(np.argmax(score))
    return float(score[lag]), lag


def active_seconds(x: np.ndarray) -> float:
    """Time from the first to the last 20 ms frame louder than 10% of the loudest."""
    frames = x[:len(x) // 160 * 160].astype(np.float64).reshape(-1, 160)
    level = np.sqrt((frames ** 2).mean(axis=1))
    loud = np.nonzero(level > 0.1 * level.max())[0]
    return (loud[-1] - loud[0] + 1) * 0.02


def test_caller_audio_is_the_g711_round_trip():
    x = (np.sin(np.arange(800) / 5) * 12000).astype(np.int16)
    y = caller_audio(x, "PCMA")
    assert np.array_equal(y, g711.alaw_decode(g711.alaw_encode(x)))
    assert not np.array_equal(y, x) and np.corrcoef(x, y)[0, 1] > 0.999


def test_say_output_writes_the_prompt_as_a_caller_hears_it(tmp_path):
    out = tmp_path / "prompt.wav"
    r = ivr(["say", TEXT, "--output", str(out), "--data", str(tmp_path / "data")], base_env())
    assert r.returncode == 0, r.stderr
    audio = load_wav(out)
    assert 2.5 < len(audio) / 8000 < 8.0
    # every sample is a G.711 code point: re-encoding and decoding changes nothing
    assert np.array_equal(caller_audio(audio), audio)
    assert "Traceback" not in r.stderr


def test_say_plays_on_the_device_and_the_monitor_hears_the_prompt(tmp_path, pipewire_env):
    data = str(tmp_path / "data")
    ref_path = tmp_path / "ref.wav"
    r = ivr(["say", TEXT, "--output", str(ref_path), "--data", data], pipewire_env)
    assert r.returncode == 0, r.stderr
    ref = load_wav(ref_path)
    capture = Capture(pipewire_env, len(ref) / 8000 + 3.0, tmp_path / "capture.wav")
    r = ivr(["say", TEXT, "--data", data], pipewire_env)
    heard = capture.wait()
    assert r.returncode == 0, r.stderr
    assert "played" in r.stderr
    peak, lag = normalised_xcorr_peak(heard, ref)
    # Sixths of the prompt, each looked for on its own: an underrun of the null sink on a
    # loaded machine shifts the rest of the playback by a few ms, which spoils the
    # whole-prompt correlation (seen at 0.21-0.63 with the right active length, with the
    # code before and after a change that did not touch `ivr say`) and the one sixth it
    # falls in, not the others.  Silence, noise or another prompt match none of them.
    parts = [normalised_xcorr_peak(heard, part) for part in np.array_split(ref, 6)]
    print(f"correlation {peak:.3f} lag {lag} sixths {[(round(p, 3), l) for p, l in parts]} "
          f"active {active_seconds(heard):.2f} vs {active_seconds(ref):.2f}")
    found = [l for p, l in parts if p > 0.6]
    assert len(found) >= 4, f"correlation of the sixths {parts}"
    assert found == sorted(found) and 0 <= found[0] / 8000 < 3.0  # heard in order
    assert abs(active_seconds(heard) - active_seconds(ref)) < 0.15


def test_say_without_a_device_fails_clearly(tmp_path, no_device_env):
    r = ivr(["say", "hello", "--data", str(tmp_path / "data")], no_device_env)
    assert r.returncode != 0
    assert "no audio output device" in r.stderr and "--output" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_say_lists_voices_and_devices(tmp_path, pipewire_env):
    r = ivr(["say", "--list-voices", "--data", str(tmp_path / "data")], base_env())
    assert r.returncode == 0, r.stderr
    assert any(line.split()[0].endswith("/en") for line in r.stdout.splitlines() if line.strip())
    r = ivr(["say", "--list-devices"], pipewire_env)
    assert r.returncode == 0 and "pipewire" in r.stdout and ">" in r.stdout


def test_say_rejects_an_unknown_device_and_an_unknown_voice(tmp_path, pipewire_env):
    r = ivr(["say", "hi", "--device", "no-such-card"], pipewire_env)
    assert r.returncode == 2 and "no-such-card" in r.stderr and "Traceback" not in r.stderr
    r = ivr(["say", "hi", "--voice", "klingon-xx", "--output", str(tmp_path / "x.wav"),
             "--data", str(tmp_path / "data")], base_env())
    assert r.returncode == 1 and "cannot render" in r.stderr and "Traceback" not in r.stderr
