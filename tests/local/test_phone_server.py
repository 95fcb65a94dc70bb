"""``ivr phone`` against our own server's ``echo`` line: over the network (a real ``ivr serve``
process) and in-process (no --server: the phone starts the server on the local dialplans)."""
from __future__ import annotations

import numpy as np
import pytest

from ivr.media.audio import load_wav, save_wav, silence, tone

from ..interop.conftest import start_server
from .conftest import ROOT, ivr
from .test_phone import FREQ, band_fraction, peak_hz


# The echo line first speaks a ~3 s prompt ("Echo test. Speak, and you will hear
# yourself.") and only then echoes, so the tone starts after it.
ECHO_STARTS = 4.0


@pytest.fixture
def tone_wav(tmp_path):
    path = tmp_path / "tone.wav"
    save_wav(path, np.concatenate([silence(ECHO_STARTS), tone(FREQ, 1.5, amplitude=0.4),
                                   silence(0.5)]))
    return path


def assert_heard_tone(heard: np.ndarray) -> None:
    assert len(heard) / 8000 > ECHO_STARTS + 2.0
    prompt, echoed = heard[: int(3.0 * 8000)], heard[int((ECHO_STARTS - 0.3) * 8000):]
    assert np.sqrt(np.mean(prompt.astype(float) ** 2)) > 300, "the echo prompt was not heard"
    loud = np.nonzero(np.abs(echoed) > 4000)[0]
    assert len(loud), "nothing came back"
    assert loud[0] / 8000 < 1.0 and 1.2 < (loud[-1] - loud[0]) / 8000 < 1.8
    assert abs(peak_hz(echoed) - FREQ) < 5 and band_fraction(echoed, FREQ) > 0.8


def test_phone_calls_the_echo_line_of_a_running_server(tmp_path, no_device_env, tone_wav):
    server = start_server(tmp_path)
    try:
        heard = tmp_path / "heard.wav"
        r = ivr(["phone", "echo", "--server", server.sip, "--input-file", str(tone_wav), "--no-speaker",
                 "--record", str(heard), "--duration", "8", "--digits", "12"], no_device_env)
        assert r.returncode == 0, r.stdout + r.stderr + server.log()[-3000:]
        assert "[answered]" in r.stdout and "RFC 4733 DTMF" in r.stdout
        assert "digits so far: 12" in r.stdout
        assert_heard_tone(load_wav(heard))
    finally:
        server.stop()


def test_phone_without_server_starts_one_in_process(tmp_path, no_device_env, tone_wav):
    heard = tmp_path / "heard.wav"
    r = ivr(["phone", "echo", "--dialplans", str(ROOT / "dialplans"), "--prompts", str(ROOT / "prompts"),
             "--data", str(tmp_path / "data"), "--input-file", str(tone_wav), "--no-speaker",
             "--record", str(heard), "--duration", "8"], no_device_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[answered]" in r.stdout
    assert_heard_tone(load_wav(heard))
