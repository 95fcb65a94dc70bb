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


def test_concurrent_utterances_share_one_decoder():
    # a worker holds many callers' utterances at once; only the final search needs a
    # decoder, so one is loaded (each costs ~0.4 s and memory), whatever the grammars
    engine = SphinxEngine()
    said = [("sales", HINTS), ("support", HINTS), ("billing", ("billing", "sales"))]
    utterances = [engine.start(hints) for _, hints in said]
    audio = [padded(spoken(word), 0.3, 0.5) for word, _ in said]
    for i in range(0, max(map(len, audio)), 160):
        for u, a in zip(utterances, audio):
            if i < len(a):
                u.feed(a[i:i + 160])
    heard = [match_hint(u.finish()[0], hints) for u, (_, hints) in zip(utterances, said)]
    assert heard == [word for word, _ in said]
    assert engine.decoders_made == 1
    again = engine.start(HINTS)
    again.feed(padded(spoken("operator"), 0.3, 0.5))
    assert again.finish()[0] == "operator"  # the grammar is set back for this one
    assert engine.decoders_made == 1


def test_words_on_a_clean_line_are_recognised(engine):
    # no noise at all, digital silence around the word (G.711 silence decodes to zeros):
    # without a noise floor under it the model heard 10 in 36 and "support" as "operator"
    right = total = 0
    for voice in ("en-us", "en-us+f3", "en-us+m3"):
        for speed in (140, 175):
            for word in COMMANDS:
                total += 1
                right += match_hint(recognise(engine, padded(spoken(word, voice, speed))
                                              )[0], HINTS) == word
    assert right >= total - 1, f"{right}/{total} on a clean line"


def test_the_noise_floor_is_telephone_band_and_below_the_speech():
    from ivr.media.sphinx_engine import fill_noise_floor
    word = padded(spoken("sales"), 0.5, 1.0)
    filled = fill_noise_floor(word)
    assert np.array_equal(filled, fill_noise_floor(word))  # deterministic
    noise = filled.astype(np.float64) - word
    speech = word.astype(np.float64)[word != 0]
    snr = 10 * np.log10(np.mean(speech ** 2) / np.mean(noise ** 2))
    assert 20 < snr < 30
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise), 1 / 8000)
    assert spectrum[(freqs < 250) | (freqs > 3450)].sum() < 1e-4 * spectrum.sum()  # int16 rounding only
    assert np.array_equal(fill_noise_floor(np.zeros(800, np.int16)), np.zeros(800, np.int16))
