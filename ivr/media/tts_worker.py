"""The text-to-speech worker: espeak-ng through pyttsx3 in ONE separate process.

Why a process and not a thread: pyttsx3/libespeak-ng is not thread-safe (concurrent
renders crash the process with a double free), espeak can be initialised only once per
process, and its C code runs inside our address space. In a child process a crash or a
hang costs one prompt (the request errbacks with TtsError, the worker is killed and
restarted on the next request) instead of every call on the server. Rendering a short
prompt takes ~10-20 ms, so one worker fed one request at a time is plenty; the IPC adds
well under a millisecond. The worker speaks a tiny framed protocol on stdin/stdout
(4-byte length + JSON header [+ raw int16 payload]) and is driven by the reactor with
``spawnProcess``: no threads in the parent.  The caches in front are in ``tts.py``.

Inside the worker each render runs in a forked child of the initialised engine
(``espeak.py`` says why): the audio depends on the request only, never on what the worker
rendered before, and a crash in espeak costs the child, not the worker.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from collections import deque
from pathlib import Path

import numpy as np
from twisted.internet import defer, protocol
from twisted.logger import Logger

# The renderer lives in espeak.py; its public names are re-exported from here and tts.py.
from ivr.media.espeak import (CACHE_FORMAT, MIN_RMS, EspeakRenderer, TtsError, Voice,  # noqa: F401
                              check_output, engine_id, resolve_voice)
from ivr.media.worker_frames import FrameError, FrameReader, frame

FALLBACK_TEXT = "Sorry, please hold."
MAX_TEXT = 5000

log = Logger(namespace="ivr.media.tts")


# ---- the worker process ------------------------------------------------------------



def worker_main() -> None:
    """Serve render requests on stdin/stdout until stdin closes (run with --worker)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # nothing the libraries print may corrupt the reply stream
    stdin = sys.stdin.buffer
    renderer = EspeakRenderer()
    while True:
        size = stdin.read(4)
        if len(size) < 4:
            return
        req = json.loads(stdin.read(struct.unpack(">I", size)[0]))
        try:
            if req["op"] == "voices":
                reply = frame({"ok": True, "voices": [list(v.__dict__.values()) for v in renderer.voices()]})
            else:
                pcm = renderer.render(req["text"], req.get("voice"), req.get("language"), req.get("rate"))
                reply = frame({"ok": True}, pcm.astype("<i2").tobytes())
        except Exception as e:  # every failure goes back to the parent as a message
            reply = frame({"ok": False, "error": str(e) if isinstance(e, TtsError) else f"{type(e).__name__}: {e}"})
        out.write(reply)
        out.flush()


class _WorkerProtocol(protocol.ProcessProtocol):
    def __init__(self, owner: "TtsWorkerProcess"):
        self.owner = owner
        self.frames = FrameReader()
        self.ended = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        try:
            for header, payload in self.frames.feed(data):
                self.owner._reply(self, header, payload)
        except FrameError as e:
            self.owner._garbled(self, e)

    def errReceived(self, data: bytes) -> None:
        log.warn("tts worker: {text}", text=data.decode("utf-8", "replace").rstrip())

    def processEnded(self, reason) -> None:
        self.owner._ended(self, reason)
        self.ended.callback(None)


class TtsWorkerProcess:
    """One espeak worker process; requests are sent one at a time in FIFO order."""

    def __init__(self, reactor, timeout: float = 15.0, python: str = sys.executable):
        self._reactor = reactor
        self.timeout = timeout
        self._python = python
        self._proto: _WorkerProtocol | None = None
        self._queue: deque = deque()
        self._current = None  # (request, deferred, timeout call)
        self._live: set[_WorkerProtocol] = set()  # started and not yet ended (incl. killed)
        self.requests = 0  # requests sent to the worker process (for tests and metrics)
        self.starts = 0

    def render(self, text, voice=None, language=None, rate=None) -> defer.Deferred:
        d = self._submit({"op": "render", "text": text, "voice": voice, "language": language, "rate": rate})
        return d.addCallback(lambda pcm: np.frombuffer(pcm, "<i2").astype(np.int16))

    def list_voices(self) -> defer.Deferred:
        return self._submit({"op": "voices"})

    def _submit(self, req: dict) -> defer.Deferred:
        d = defer.Deferred()
        self._queue.append((req, d))
        self._next()
        return d

    def _start(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        proto = _WorkerProtocol(self)
        self.starts += 1
        self._reactor.spawnProcess(proto, self._python, [self._python, "-m", "ivr.media.tts_worker", "--worker"],
                                   env=env, childFDs={0: "w", 1: "r", 2: "r"})
        self._proto = proto
        self._live.add(proto)

    def _next(self) -> None:
        if self._current is not None or not self._queue:
            return
        if self._proto is None:
            try:
                self._start()
            except Exception as e:  # cannot spawn: fail what is waiting rather than hang
                waiting, self._queue = list(self._queue), deque()
                for _, d in waiting:
                    d.errback(TtsError(f"cannot start tts worker: {e}"))
                return
        req, d = self._queue.popleft()
        timer = self._reactor.callLater(self.timeout, self._timed_out, self._proto)
        self._current = (req, d, timer)
        self.requests += 1
        body = json.dumps(req).encode()
        self._proto.transport.write(struct.pack(">I", len(body)) + body)

    def _finish(self, outcome) -> None:
        req, d, timer = self._current
        self._current = None
        if timer.active():
            timer.cancel()
        self._next()  # queue the next request before the callbacks run
        if isinstance(outcome, Exception):
            d.errback(outcome)
        else:
            d.callback(outcome)

    def _reply(self, proto, header: dict, payload: bytes) -> None:
        if proto is not self._proto or self._current is None:
            return
        if not header.get("ok"):
            self._finish(TtsError(header.get("error", "worker error")))
        elif "voices" in header:
            self._finish([Voice(i, n, tuple(langs)) for i, n, langs in header["voices"]])
        else:
            self._finish(payload)

    def _timed_out(self, proto) -> None:
        if proto is self._proto and self._current is not None:
            self._kill()
            self._finish(TtsError(f"tts worker timed out after {self.timeout} s"))

    def _garbled(self, proto, error) -> None:
        if proto is self._proto:
            log.error("tts worker sent garbage ({error}); restarting it", error=error)
            self._kill()
            if self._current is not None:
                self._finish(TtsError(f"tts worker sent garbage: {error}"))

    def _ended(self, proto, reason) -> None:
        self._live.discard(proto)
        if proto is not self._proto:
            return
        self._proto = None
        if self._current is not None:
            log.error("tts worker died: {reason}", reason=reason.getErrorMessage())
            self._finish(TtsError(f"tts worker died: {reason.getErrorMessage()}"))

    def _kill(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None:
            self._kill_one(proto)

    @staticmethod
    def _kill_one(proto) -> None:
        if proto.transport is not None:
            try:
                proto.transport.signalProcess("KILL")
            except Exception:  # already gone
                pass
            proto.transport.loseConnection()  # and close our pipe ends, in case a grandchild holds them

    def close(self, grace: float = 5.0) -> defer.Deferred:
        """Stop the worker (killed after ``grace`` s); fires when every worker process has exited."""
        if self._proto is not None:
            self._proto.transport.closeStdin()  # the worker exits on EOF
        waits = [p.ended for p in self._live]
        if not waits:
            return defer.succeed(None)
        stuck = self._reactor.callLater(grace, lambda: [self._kill_one(p) for p in list(self._live)])

        def exited(_):
            if stuck.active():
                stuck.cancel()
        return defer.gatherResults(waits).addCallback(exited)



if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    worker_main()

