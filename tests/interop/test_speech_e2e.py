"""Voice commands end to end (#19): a real softphone (baresip, its microphone an ``aufile``
WAV) calls the bundled toll-free menu on a real ``ivr serve`` and *says* its choice.

The utterances are rendered at test time by espeak-ng (tests/media/speech_corpus.py),
band-limited to telephone audio at 8 kHz, some with white noise at 20 dB SNR.  Each call
starts with the background alone (near-silence, or the noise the utterance carries, as a
real line has it from the first packet); once the server is in the menu step, the test
switches baresip's audio source (``ausrc``) to a file that holds the same background with
the word in it, so the word falls on the menu prompt (barge-in over a real prompt).

Checked per call: the branch taken (path log), the ``speech`` path-log event and the CDR's
``speech`` column and ``extra.path``; silence gives no-input (menu_timeout) and a coughing
fit no-match (menu_invalid with a ``speech`` event not accepted).
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from tests.interop.conftest import start_server
from tests.interop.peers import Baresip, write_wav
from tests.media.speech_corpus import band_limit, cough, spoken

TOLLFREE = "+18005550100"
RATE = 8000


def _background(seconds: float, snr_db: float | None, speech_power: float, seed: int):
    n = int(seconds * RATE)
    if snr_db is None:  # a quiet line: a few LSBs of noise
        return np.random.default_rng(seed).integers(-20, 20, n).astype(np.float64)
    noise = band_limit(np.random.default_rng(seed).standard_normal(n))
    return noise * np.sqrt(speech_power / 10 ** (snr_db / 10) / np.mean(noise ** 2))


def _speech_power(clean: np.ndarray) -> float:
    x = clean.astype(np.float64)
    return float(np.mean(x[np.abs(x) > 0] ** 2))


def _wav(path: Path, x: np.ndarray) -> Path:
    return write_wav(path, np.clip(x, -32768, 32767).astype(np.int16))


def caller_audio(tmp_path: Path, name: str, what: np.ndarray | None, snr_db: float | None,
                 power: float) -> tuple[Path, Path]:
    """(background WAV for the start of the call, WAV with ``what`` 0.3 s in on the same
    background); both long enough that the source never ends during the call."""
    lead = _background(120, snr_db, power, seed=1)
    if what is None:
        return _wav(tmp_path / f"{name}-lead.wav", lead), _wav(tmp_path / f"{name}.wav", lead)
    body = _background(60, snr_db, power, seed=2)
    at = int(0.3 * RATE)
    body[at:at + len(what)] += what
    return _wav(tmp_path / f"{name}-lead.wav", lead), _wav(tmp_path / f"{name}.wav", body)


def coughing_fit() -> np.ndarray:
    """Three coughs 120 ms apart (~1 s): loud and long enough to be an utterance for the
    VAD, but no word."""
    gap = np.zeros(int(0.12 * RATE), np.int16)
    return np.concatenate([cough(3), gap, cough(4), gap, cough(5)])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("speech-server"))
    # the recognisers load at start, so that the first caller's word does not wait for a
    # process start and a model load (it waited 2.8 s)
    srv.wait_for_log("speech recognition (pocketsphinx): 2 of 2 worker(s) ready", timeout=30)
    yield srv
    srv.stop()


def cdr(server, leg_id: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        conn = sqlite3.connect(server.data / "ivr.sqlite3")
        conn.row_factory = sqlite3.Row
        try:
            row = conn.execute("SELECT * FROM cdrs WHERE leg_id = ?", (leg_id,)).fetchone()
        finally:
            conn.close()
        if row is not None:
            return dict(row)
        assert time.monotonic() < deadline, f"no CDR for {leg_id}"
        time.sleep(0.1)


def call_lines(log: str, call_id: str) -> list[str]:
    tag = f"call {call_id} "
    return [line.split(tag, 1)[1] for line in log.splitlines() if tag in line]


def place_call(server, tmp_path: Path, name: str, what, snr_db, power, until: str,
               timeout: float = 30.0):
    """Call the menu, say ``what`` once the menu step runs, wait for ``until`` in the call's
    log; returns (call id, its log lines, its CDR)."""
    lead, utterance = caller_audio(tmp_path, name, what, snr_db, power)
    phone = Baresip(tmp_path, name=f"phone-{name}", source=lead).start()
    try:
        phone.dial(f"sip:{TOLLFREE}@{server.sip}")
        call_id = phone.wait_for_event("CALL_ESTABLISHED", timeout=15)["id"]
        server.wait_for_log(f"call {call_id} step flow='main_menu' verb='menu'", timeout=20)
        said_at = time.monotonic()
        reply = phone.command("ausrc", f"aufile,{utterance}")
        assert reply.get("response") is True, reply
        server.wait_for_log(f"call {call_id} {until}", timeout=timeout)
        elapsed = time.monotonic() - said_at
        phone.hangup()
        server.wait_for_log(f"call {call_id} ended:", timeout=15)
    finally:
        phone.stop()
    return call_id, call_lines(server.log(), call_id), cdr(server, call_id), elapsed


def speech_events(lines: list[str]) -> list[str]:
    return [l for l in lines if l.startswith("speech ")]


@pytest.mark.parametrize("word,voice,snr_db", [
    ("sales", "en-us", None),
    ("support", "en-us+f3", None),
    ("sales", "en-us+m3", 20),
    ("operator", "en-us", 20),
])
def test_a_spoken_word_takes_its_branch(server, tmp_path, word, voice, snr_db):
    clean = spoken(word, voice, 160)
    power = _speech_power(clean)
    call_id, lines, row, elapsed = place_call(
        server, tmp_path, f"{word}-{snr_db}", clean, snr_db, power,
        until=f"step flow='{word}'")
    heard = speech_events(lines)
    assert len(heard) == 1, lines
    assert f"text='{word}'" in heard[0] and "accepted=True" in heard[0], heard
    choice = [l for l in lines if l.startswith("menu_choice ")]
    assert choice and f"speech='{word}'" in choice[0] and f"to='{word}'" in choice[0], lines
    # the word fell on the menu prompt: it stopped it (barge-in), no timeout, no retry
    assert not [l for l in lines if l.startswith(("menu_timeout", "menu_invalid"))], lines
    assert elapsed < 5.0, f"{elapsed:.1f} s from the word to the branch"
    speech = json.loads(row["speech"])
    assert [(s["text"], s["accepted"], s["verb"]) for s in speech] == [(word, True, "menu")]
    assert speech[0]["confidence"] >= 0 and speech[0]["end"] > speech[0]["start"]
    assert speech[0]["latency_ms"] < 1500, speech  # end of speech -> result, loaded machine
    extra = json.loads(row["extra"]) if row.get("extra") else {}
    assert any(p.startswith("speech ") and f"text='{word}'" in p for p in extra.get("path", ())), extra


def test_silence_is_no_input(server, tmp_path):
    call_id, lines, row, _ = place_call(server, tmp_path, "silence", None, None, 1.0,
                                        until="menu_timeout")
    assert speech_events(lines) == [], lines
    assert not [l for l in lines if l.startswith(("menu_invalid", "menu_choice"))], lines
    assert json.loads(row["speech"] or "[]") == []


def test_a_coughing_fit_is_no_match(server, tmp_path):
    fit = coughing_fit()
    call_id, lines, row, _ = place_call(server, tmp_path, "cough", fit, None, 1.0,
                                        until="menu_invalid")
    heard = speech_events(lines)
    assert len(heard) == 1 and "accepted=False" in heard[0] and "text=''" in heard[0], lines
    assert "menu_invalid verb='menu' line=13 digits='?' failures=1" in lines, lines
    assert not [l for l in lines if l.startswith("menu_choice")], lines
    speech = json.loads(row["speech"])
    assert [(s["text"], s["accepted"]) for s in speech] == [("", False)]
