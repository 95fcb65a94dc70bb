"""The recogniser's pure parts (VAD, grammar, hint matching) and the PocketSphinx engine on
generated telephone-band utterances (tests/media/speech_corpus.py)."""
from __future__ import annotations

import numpy as np
import pytest

from ivr.media.recognizer import Vad, VadEvent, jsgf_grammar, match_hint
from ivr.media.sphinx_engine import SphinxEngine
from tests.media.speech_corpus import (COMMANDS, cough, generated_set, padded, spoken,
                                       with_noise)

HINTS = ("sales", "support", "operator")


def events(vad, audio):
    out = []
    for i in range(0, len(audio) - 159, 160):
        e = vad.feed(audio[i:i + 160])
        if e is not None:
            out.append((e, i // 160 + 1))
    return out


def test_vad_finds_start_and_end_of_a_word_in_noise():
    clean = spoken("sales")
    audio = with_noise(padded(clean, 0.5, 1.5), 10, clean)
    vad = Vad(speech_timeout=0.5)
    found = events(vad, audio)
    assert [e for e, _ in found] == [VadEvent.START, VadEvent.END]
    start, end = vad.started_at * 0.02, found[1][1] * 0.02
    assert 0.45 <= start <= 0.65
    assert found[0][1] == vad.started_at + Vad.START_FRAMES  # reported after 60 ms of it
    spoken_end = 0.5 + len(clean) / 8000  # espeak's rendering ends in its own silence
    last_voiced = vad.last_voiced * 0.02
    assert start + 0.3 < last_voiced < spoken_end
    assert end - last_voiced == pytest.approx(0.5)  # speech_timeout after the word
    assert not vad.too_short


def test_vad_ignores_silence_steady_noise_and_clicks():
    rng = np.random.default_rng(1)
    noise = (rng.standard_normal(8000 * 3) * 300).astype(np.int16)
    assert events(Vad(), noise) == []
    assert events(Vad(), np.zeros(8000 * 2, np.int16)) == []
    click = np.zeros(8000, np.int16)
    click[4000:4320] = 20000  # 40 ms
    assert events(Vad(), click) == []


def test_vad_a_cough_is_too_short_to_be_speech():
    vad = Vad(speech_timeout=0.3)
    found = events(vad, padded(cough(), 0.5, 1.0))
    assert [e for e, _ in found] == [VadEvent.START, VadEvent.END]
    assert vad.too_short  # a 250 ms burst opens an utterance, but it is not speech


def test_vad_ends_an_endless_utterance():
    rng = np.random.default_rng(2)
    audio = np.concatenate([np.zeros(800, np.int16),
                            (rng.standard_normal(8000 * 4) * 5000).astype(np.int16)])
    found = events(Vad(max_seconds=1.0), audio)
    assert [e for e, _ in found][:2] == [VadEvent.START, VadEvent.END]
    assert found[1][1] - (found[0][1] - Vad.START_FRAMES) == 50  # 1 s of speech at most


def test_grammar_and_hint_matching():
    assert jsgf_grammar(["Sales", "talk to an agent"]).endswith(
        "public <hint> = sales | talk to an agent;\n")
    with pytest.raises(ValueError):
        jsgf_grammar(["123"])
    hints = ("sales", "talk to an agent", "talk to sales")
    assert match_hint("SALES", hints) == "sales"
    assert match_hint("talk to an", hints) == "talk to an agent"
    assert match_hint("talk to", hints) == ""  # two phrases start so
    assert match_hint("", hints) == ""


@pytest.fixture(scope="module")
def engine():
    return SphinxEngine()


def recognise(engine, audio, hints=HINTS):
    utterance = engine.start(hints)
    for i in range(0, len(audio), 160):
        utterance.feed(audio[i:i + 160])
    return utterance.finish()


@pytest.mark.parametrize("snr", [20, 10])
def test_generated_commands_are_recognised(engine, snr):
    subset = generated_set(snr, voices=("en-us", "en-us+f3", "en-us+m3"), speeds=(140, 175))
    right = sum(match_hint(recognise(engine, audio)[0], HINTS) == text for text, audio in subset)
    assert right >= len(subset) - 1, f"{right}/{len(subset)} at {snr} dB SNR"


def test_silence_and_coughs_are_no_words(engine):
    for seed in range(3):
        burst = cough(seed)
        text, confidence = recognise(engine, with_noise(padded(burst), 20, burst, seed=seed))
        assert match_hint(text, HINTS) == ""
    assert recognise(engine, with_noise(np.zeros(16000, np.int16), 0, np.full(10, 300)))[0] == ""


def test_unknown_language_and_missing_model_are_recogniser_errors(tmp_path):
    from ivr.media.recognizer import RecognizerError
    with pytest.raises(RecognizerError, match="speech model missing"):
        SphinxEngine(str(tmp_path))
    with pytest.raises(RecognizerError, match="language"):
        SphinxEngine().start(["sales"], "fr-fr")
