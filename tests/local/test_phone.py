"""``ivr phone`` against a real SIP peer: SIPp as a UAS that echoes RTP (``-rtp_echo``),
with the speaker on a real PortAudio device (PipeWire null sink) heard through its monitor."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ivr.media.audio import load_wav, save_wav, silence, tone

from ..interop.conftest import free_port, require
from .conftest import ROOT, Capture, ivr

DATA = Path(__file__).resolve().parent / "data"
FREQ = 700.0


def peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.argmax(spectrum) * 8000 / len(x))


def band_fraction(x: np.ndarray, freq: float, width: float = 30.0) -> float:
    """Share of the signal's energy within +-width Hz of freq."""
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    hz = np.fft.rfftfreq(len(x), 1 / 8000)
    return float(spectrum[np.abs(hz - freq) < width].sum() / max(spectrum.sum(), 1e-9))


def even_free_port() -> int:
    while (port := free_port()) % 2:
        pass
    return port


@pytest.fixture
def sipp_echo(tmp_path):
    """Start SIPp answering one call and echoing its RTP; yields (port, proc)."""
    require("sipp")
    procs = []

    def start(scenario: list[str]) -> int:
        port, media = free_port(), even_free_port()
        proc = subprocess.Popen(["sipp", *scenario, "-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1",
                                 "-mp", str(media), "-rtp_echo", "-m", "1", "-nostdin",
                                 "-trace_err", "-error_file", str(tmp_path / "sipp_errors.log")],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(proc)
        time.sleep(0.3)
        assert proc.poll() is None, proc.stderr.read()
        return port
    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.fixture
def tone_wav(tmp_path) -> Path:
    path = tmp_path / "tone.wav"
    save_wav(path, np.concatenate([tone(FREQ, 1.5, amplitude=0.4), silence(0.5)]))
    return path


def test_phone_hears_its_own_input_back_from_an_echo_peer(tmp_path, pipewire_env, sipp_echo, tone_wav):
    port = sipp_echo(["-sn", "uas"])
    heard_path = tmp_path / "heard.wav"
    capture = Capture(pipewire_env, 5.0, tmp_path / "speaker.wav")
    r = ivr(["phone", "echo", "--server", f"127.0.0.1:{port}", "--input-file", str(tone_wav),
             "--record", str(heard_path), "--duration", "3"], pipewire_env)
    speaker = capture.wait()
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    states = [line.split("]")[0] + "]" for line in lines if line.startswith("[")]
    assert states == ["[calling]", "[ringing]", "[answered]", "[ended]"], r.stdout
    assert "PCMU" in r.stdout and "local hangup" in r.stdout
    heard = load_wav(heard_path)
    assert 2.8 < len(heard) / 8000 < 3.2  # 50 packets a second for the whole call
    # the tone came back: starts within the first 200 ms of the call, lasts 1.5 s, at 700 Hz
    loud = np.nonzero(np.abs(heard) > 4000)[0]
    assert loud[0] / 8000 < 0.2 and 1.3 < (loud[-1] - loud[0]) / 8000 < 1.7
    assert abs(peak_hz(heard) - FREQ) < 5 and band_fraction(heard, FREQ) > 0.9
    # and it went through the jitter buffer to the speaker: the sink's monitor heard it too
    assert abs(peak_hz(speaker) - FREQ) < 5 and band_fraction(speaker, FREQ) > 0.8
    loud = np.nonzero(np.abs(speaker) > 0.5 * np.abs(speaker).max())[0]
    assert 1.3 < (loud[-1] - loud[0]) / 8000 < 1.7


def test_phone_sends_typed_digits_as_rfc4733_and_hangs_up_on_q(tmp_path, sipp_echo, no_device_env, tone_wav):
    port = sipp_echo(["-sf", str(DATA / "uas_echo_dtmf.xml")])
    proc = subprocess.Popen([sys.executable, "-m", "ivr.cli", "phone", "echo", "--server", f"127.0.0.1:{port}",
                             "--input-file", str(tone_wav), "--no-speaker", "--record", str(tmp_path / "h.wav")],
                            env=no_device_env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out = []
    try:
        for line in proc.stdout:
            out.append(line)
            if line.startswith("[answered]"):
                proc.stdin.write("4#\n")
                proc.stdin.flush()
            if "digits so far: 4#" in line:
                proc.stdin.write("q")
                proc.stdin.flush()
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(out)
    assert proc.returncode == 0, text + proc.stderr.read()
    assert "RFC 4733 DTMF" in text
    # SIPp echoes the RFC 4733 packets back, so each digit we sent is also received
    assert "sent digit 4" in text and "sent digit #" in text
    assert "received digit 4" in text and "received digit #" in text
    assert "hanging up (q pressed)" in text and "[ended]" in text


def test_phone_reports_a_failed_call(tmp_path, no_device_env, tone_wav):
    port = free_port()  # nobody listens: the INVITE goes unanswered
    r = ivr(["phone", "echo", "--server", f"127.0.0.1:{port}", "--input-file", str(tone_wav),
             "--no-speaker", "--answer-timeout", "1"], no_device_env, timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "no answer in 1 s" in r.stdout and "[ended]" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_phone_without_a_device_names_the_alternatives(tmp_path, no_device_env):
    r = ivr(["phone", "echo", "--server", "127.0.0.1:5060"], no_device_env)
    assert r.returncode == 2
    assert "no audio input device" in r.stderr and "--input-file" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    r = ivr(["phone", "echo", "--server", "127.0.0.1:5060", "--input-file", str(tmp_path / "missing.wav")],
            no_device_env)
    assert r.returncode == 2 and "cannot read --input-file" in r.stderr and "Traceback" not in r.stderr


def test_phone_lists_devices(pipewire_env):
    r = ivr(["phone", "--list-devices"], pipewire_env)
    assert r.returncode == 0 and "pipewire" in r.stdout


def test_phone_microphone_reaches_the_far_end(tmp_path, pipewire_env, sipp_echo):
    """The microphone is the sink's monitor: a prompt played by ``ivr say`` during the call goes
    mic -> RTP -> SIPp echo -> RTP -> recording, and is recognisable there."""
    from .test_say import normalised_xcorr_peak
    data = str(tmp_path / "data")
    text = "Press one for sales."
    r = ivr(["say", text, "--output", str(tmp_path / "ref.wav"), "--data", data], pipewire_env)
    assert r.returncode == 0, r.stderr
    ref = load_wav(tmp_path / "ref.wav")
    port = sipp_echo(["-sn", "uas"])
    heard_path = tmp_path / "heard.wav"
    proc = subprocess.Popen([sys.executable, "-m", "ivr.cli", "phone", "echo", "--server", f"127.0.0.1:{port}",
                             "--no-speaker", "--record", str(heard_path), "--duration", str(len(ref) / 8000 + 3)],
                            env=pipewire_env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out = [proc.stdout.readline() for _ in range(3)]
        assert out[-1].startswith("[answered]"), "".join(out) + proc.stderr.read()
        played = ivr(["say", text, "--data", data], pipewire_env)
        assert played.returncode == 0, played.stderr
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(out) + rest + err
    heard = load_wav(heard_path)
    peak, _ = normalised_xcorr_peak(heard, ref)
    assert peak > 0.6, f"correlation {peak:.2f}"


def test_phone_ends_when_the_far_end_hangs_up(tmp_path, sipp_echo, no_device_env, tone_wav):
    port = sipp_echo(["-sf", str(DATA / "uas_hangup.xml")])  # answers, then BYE after 1.5 s
    started = time.monotonic()
    r = ivr(["phone", "echo", "--server", f"127.0.0.1:{port}", "--input-file", str(tone_wav),
             "--no-speaker", "--duration", "20"], no_device_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[ended] call ended: the far end hung up" in r.stdout and "hanging up" not in r.stdout
    assert time.monotonic() - started < 10
