"""PromptCache: convert once, cache on disk and in memory, re-convert edited files."""

import os

import numpy as np
import pytest
from twisted.internet import defer
from twisted.trial import unittest

from ivr.media.audio import load_wav, save_wav, tone
from ivr.media.prompts import PromptCache, PromptError, PromptNotFound
from tests.media.test_audio import peak_hz, sine, wav_bytes


def sync_thread(fn, *args):
    return defer.maybeDeferred(fn, *args)


@pytest.fixture
def dirs(tmp_path):
    prompts, cache = tmp_path / "prompts", tmp_path / "cache"
    prompts.mkdir()
    (prompts / "menus").mkdir()
    (prompts / "welcome.wav").write_bytes(wav_bytes(sine(44100, 2), 44100, 1, 16))
    (prompts / "menus" / "main.wav").write_bytes(wav_bytes(sine(48000), 48000, 3, 32))
    return prompts, cache


def test_get_converts_to_8k_mono(dirs):
    pc = PromptCache(*dirs)
    for name in ("welcome", "welcome.wav", "menus/main", "menus/main.wav"):
        out = pc.get(name)
        assert out.dtype == np.int16 and len(out) == 8000 and abs(peak_hz(out) - 440) <= 1
    assert pc.conversions == 2


def test_arrays_are_read_only_and_shared(dirs):
    pc = PromptCache(*dirs)
    a = pc.get("welcome")
    assert pc.get("welcome.wav") is a
    with pytest.raises(ValueError):
        a[0] = 1


def test_disk_cache_used_by_a_new_instance(dirs):
    prompts, cache = dirs
    first = PromptCache(prompts, cache).get("welcome")
    entries = list(cache.iterdir())
    assert len(entries) == 1 and np.array_equal(load_wav(entries[0]), first)
    second = PromptCache(prompts, cache)
    assert np.array_equal(second.get("welcome"), first)
    assert second.conversions == 0


def test_edited_prompt_is_reconverted(dirs):
    prompts, cache = dirs
    pc = PromptCache(prompts, cache)
    assert abs(peak_hz(pc.get("welcome")) - 440) <= 1
    path = prompts / "welcome.wav"
    before = path.stat().st_mtime_ns
    save_wav(path, tone(1000, 0.5, rate=16000), rate=16000)
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))
    out = pc.get("welcome")
    assert len(out) == 4000 and abs(peak_hz(out) - 1000) <= 2
    assert pc.conversions == 2
    assert PromptCache(prompts, cache).get("welcome").tolist() == out.tolist()


def test_cached_is_memory_only(dirs):
    pc = PromptCache(*dirs)
    assert pc.cached("welcome") is None
    a = pc.get("welcome")
    assert pc.cached("welcome") is a and pc.cached("welcome.wav") is a
    assert pc.cached("nope") is None


@pytest.mark.parametrize("name", ["../secret", "/etc/passwd", "menus/../../x", "", "a\0b"])
def test_names_outside_prompts_dir_are_rejected(dirs, name):
    pc = PromptCache(*dirs)
    assert not pc.exists(name)
    with pytest.raises(PromptNotFound):
        pc.get(name)


def test_exists_and_missing(dirs):
    pc = PromptCache(*dirs)
    assert pc.exists("welcome") and pc.exists("menus/main.wav")
    assert not pc.exists("missing")
    with pytest.raises(PromptNotFound):
        pc.get("missing")


def test_unreadable_prompt_is_a_prompt_error(dirs):
    prompts, cache = dirs
    (prompts / "bad.wav").write_bytes(b"this is not audio")
    with pytest.raises(PromptError):
        PromptCache(prompts, cache).get("bad")


class LoadTests(unittest.TestCase):
    def setUp(self):
        root = self.mktemp()
        os.makedirs(root)
        self.prompts = os.path.join(root, "prompts")
        os.makedirs(self.prompts)
        with open(os.path.join(self.prompts, "hello.wav"), "wb") as f:
            f.write(wav_bytes(sine(16000), 16000, 1, 24))
        self.cache = os.path.join(root, "cache")

    @defer.inlineCallbacks
    def test_load_with_injected_runner(self):
        calls = []

        def runner(fn, *args):
            calls.append(args)
            return defer.maybeDeferred(fn, *args)
        pc = PromptCache(self.prompts, self.cache, run_in_thread=runner)
        out = yield pc.load("hello")
        self.assertEqual(len(out), 8000)
        self.assertEqual(calls, [("hello",)])

    @defer.inlineCallbacks
    def test_load_in_the_reactor_thread_pool(self):
        import threading
        from twisted.internet import reactor
        main = threading.current_thread()
        seen = []
        pc = PromptCache(self.prompts, self.cache, reactor=reactor)
        real_get = pc.get
        pc.get = lambda name: (seen.append(threading.current_thread()), real_get(name))[1]
        out = yield pc.load("hello.wav")
        self.assertEqual(len(out), 8000)
        self.assertEqual(len(seen), 1)
        self.assertIsNot(seen[0], main)

    @defer.inlineCallbacks
    def test_load_missing_errbacks(self):
        pc = PromptCache(self.prompts, self.cache, run_in_thread=sync_thread)
        with self.assertRaises(PromptNotFound):
            yield pc.load("missing")
