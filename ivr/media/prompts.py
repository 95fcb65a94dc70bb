"""Recorded prompts: each WAV under ``prompts_dir`` converted once to 8 kHz mono int16.

Three levels: an in-memory LRU of loaded arrays, a disk cache of converted 8 kHz WAVs
in ``cache_dir`` (named by sha256 of source path + mtime + size, so an edited file gets
a new entry and is re-converted), and the source file itself.

``get`` is blocking (file I/O, resampling) and is what tests call directly. On the
reactor use ``load``, which runs ``get`` through an injected ``run_in_thread(fn, *args)
-> Deferred`` (by default the reactor's thread pool), and ``cached`` for a same-tick,
memory-only lookup. Orphaned disk entries of edited files are left in place (they are
small; delete ``cache_dir`` to reclaim).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ivr.media.audio import RATE, ArrayLru, AudioFormatError, frozen, load_wav, save_wav

CACHE_FORMAT = "ivr-prompt/1"  # bump when the conversion changes to invalidate every entry


class PromptNotFound(LookupError):
    """No such prompt file (or a name that escapes the prompts directory)."""


class PromptError(Exception):
    """The prompt file exists but cannot be read as audio."""


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def cache_key(path: Path, stamp: tuple[int, int]) -> str:
    text = f"{CACHE_FORMAT}\0{path.resolve()}\0{stamp[0]}\0{stamp[1]}"
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def convert_prompt(source: Path, cache_dir: Path, stamp: tuple[int, int] | None = None) -> np.ndarray:
    """Return ``source`` as 8 kHz mono int16, converting at most once per (path, mtime, size)."""
    stamp = stamp or _stamp(source)
    cached = cache_dir / (cache_key(source, stamp) + ".wav")
    if cached.is_file():
        try:
            return load_wav(cached)
        except (OSError, AudioFormatError):
            pass  # a damaged cache entry is rebuilt below
    try:
        samples = load_wav(source)
    except AudioFormatError as e:
        raise PromptError(f"{source}: {e}") from e
    save_wav(cached, samples, RATE)
    return samples


def default_run_in_thread(reactor=None) -> Callable:
    from twisted.internet import threads

    if reactor is None:
        from twisted.internet import reactor  # only when nothing was injected
    return lambda fn, *args: threads.deferToThreadPool(reactor, reactor.getThreadPool(), fn, *args)


class PromptCache:
    def __init__(self, prompts_dir: str | os.PathLike, cache_dir: str | os.PathLike, *,
                 run_in_thread: Callable | None = None, reactor=None,
                 max_bytes: int = 64 * 1024 * 1024):
        self.prompts_dir = Path(prompts_dir)
        self.cache_dir = Path(cache_dir)
        self._run_in_thread = run_in_thread
        self._reactor = reactor
        self._memory = ArrayLru(max_bytes)
        self.conversions = 0  # source files converted (disk cache misses)

    def path(self, name: str) -> Path:
        """The source file for ``name`` ("welcome", "welcome.wav", "menus/main")."""
        if not isinstance(name, str) or not name or "\0" in name:
            raise PromptNotFound(f"bad prompt name {name!r}")
        rel = name if name.lower().endswith(".wav") else name + ".wav"
        root = self.prompts_dir.resolve()
        path = (root / rel).resolve()
        if root != path and root not in path.parents:
            raise PromptNotFound(f"prompt name {name!r} escapes {self.prompts_dir}")
        return path

    def exists(self, name: str) -> bool:
        try:
            return self.path(name).is_file()
        except PromptNotFound:
            return False

    def get(self, name: str) -> np.ndarray:
        """Blocking: the prompt as a read-only 8 kHz mono int16 array."""
        path = self.path(name)
        try:
            stamp = _stamp(path)
        except OSError as e:
            raise PromptNotFound(f"no prompt {name!r} ({path})") from e
        entry = self._memory.get(_norm(name))
        if entry is not None and entry[0] == stamp:
            return entry[1]
        key_file = self.cache_dir / (cache_key(path, stamp) + ".wav")
        if not key_file.is_file():
            self.conversions += 1
        try:
            samples = frozen(convert_prompt(path, self.cache_dir, stamp))
        except OSError as e:
            raise PromptError(f"{path}: {e}") from e
        self._memory.put(_norm(name), _Entry(stamp, samples))
        return samples

    def cached(self, name: str) -> np.ndarray | None:
        """Memory only, no file access: the last loaded version of ``name`` or None."""
        entry = self._memory.get(_norm(name)) if isinstance(name, str) else None
        return None if entry is None else entry[1]

    def load(self, name: str):
        """Deferred firing with ``get(name)`` computed off the reactor thread."""
        if self._run_in_thread is None:
            self._run_in_thread = default_run_in_thread(self._reactor)
        return self._run_in_thread(self.get, name)


def _norm(name: str) -> str:
    name = os.path.normpath(name)
    return name[:-4] if name.lower().endswith(".wav") else name


class _Entry(tuple):
    """(stamp, samples) with the ``nbytes`` the LRU sizes by."""

    def __new__(cls, stamp, samples):
        return super().__new__(cls, (stamp, samples))

    @property
    def nbytes(self) -> int:
        return self[1].nbytes
