"""Recogniser workers: speech engines in separate processes, fed the caller's audio as it
arrives, so that decoding never runs on the reactor.

Shaped like the TTS worker (``tts_worker.py``): each worker is a child process spoken to
over stdin/stdout in frames of a 4-byte length, a JSON header and an optional raw payload.
The parent sends ``start`` (an utterance id, the hints, the language), ``audio`` (int16
8 kHz samples, as they come) and ``end`` or ``abort``; the worker answers each ``end`` with
the text heard and its confidence, or an error.  A pool of ``workers`` processes takes the
utterances, each to the worker with the fewest open ones.

Failure is never a stuck call: a worker that dies, sends garbage or does not answer an
``end`` within ``timeout`` seconds is killed (restarted on the next utterance), every
utterance it held fails with :class:`RecognizerError` and a log line says why; an engine
that cannot load its model answers ``start`` with an error the same way.
"""
from __future__ import annotations

import json
import os
import struct
import sys
import time
from pathlib import Path

import numpy as np
from twisted.internet import defer, protocol
from twisted.logger import Logger

from ivr.media.recognizer import RecognizerError
from ivr.media.worker_frames import FrameError, FrameReader, frame

log = Logger(namespace="ivr.media.speech")

BATCH_SAMPLES = 8 * 160  # audio to a worker in 160 ms messages

ENGINES = {"pocketsphinx": ("ivr.media.sphinx_engine", "SphinxEngine")}




def load_engine(name: str, model_dir: str | None = None):
    if name not in ENGINES:
        raise RecognizerError(f"unknown speech engine {name!r} (known: {', '.join(ENGINES)})")
    import importlib
    module, cls = ENGINES[name]
    return getattr(importlib.import_module(module), cls)(model_dir)


# ---- the worker process ------------------------------------------------------------

def worker_main(engine_name: str, model_dir: str | None) -> None:
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    stdin = sys.stdin.buffer
    engine, engine_error = None, None
    try:
        engine = load_engine(engine_name, model_dir)
    except Exception as e:
        engine_error = str(e)
    open_: dict = {}
    while True:
        size = stdin.read(4)
        if len(size) < 4:
            return
        header = json.loads(stdin.read(struct.unpack(">I", size)[0]))
        payload = stdin.read(header.get("nbytes", 0)) if header.get("nbytes") else b""
        op, sid = header.get("op"), header.get("sid")
        reply = None
        try:
            if op == "warm":
                if engine is None:
                    raise RecognizerError(engine_error)
                engine.warm()
                reply = {"sid": None, "ok": True, "ready": True}
            elif op == "start":
                if engine is None:
                    raise RecognizerError(engine_error)
                open_[sid] = engine.start(header["hints"], header.get("language") or "en-us")
            elif op == "audio":
                if sid in open_:
                    open_[sid].feed(np.frombuffer(payload, "<i2"))
            elif op == "end":
                utterance = open_.pop(sid, None)
                if utterance is None:
                    raise RecognizerError("utterance was never started")
                began = time.perf_counter()
                text, confidence = utterance.finish()
                reply = {"sid": sid, "ok": True, "text": text, "confidence": confidence,
                         "decode_ms": (time.perf_counter() - began) * 1000}
            elif op == "abort":
                utterance = open_.pop(sid, None)
                if utterance is not None:
                    utterance.close()
        except Exception as e:
            open_.pop(sid, None)
            message = str(e) if isinstance(e, RecognizerError) else f"{type(e).__name__}: {e}"
            reply = {"sid": sid, "ok": False, "error": message}
        if reply is not None:
            out.write(frame(reply))
            out.flush()


# ---- the parent side -----------------------------------------------------------------

class _WorkerProtocol(protocol.ProcessProtocol):
    def __init__(self, worker: "_Worker"):
        self.worker = worker
        self.frames = FrameReader()
        self.ended = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        try:
            for header, _ in self.frames.feed(data):
                self.worker.reply(header)
        except FrameError as e:
            self.worker.failed(f"sent garbage ({e})")

    def errReceived(self, data: bytes) -> None:
        log.warn("speech worker: {text}", text=data.decode("utf-8", "replace").rstrip())

    def processEnded(self, reason) -> None:
        self.worker.failed(f"died ({reason.getErrorMessage()})", ended=True)
        self.ended.callback(None)


class _Worker:
    def __init__(self, pool: "RecognizerPool", index: int) -> None:
        self.pool, self.index = pool, index
        self.proto: _WorkerProtocol | None = None
        self.streams: dict[int, "Utterance"] = {}
        self.ready: defer.Deferred | None = None  # fires when a "warm" is answered

    def ensure(self) -> None:
        if self.proto is not None:
            return
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            filter(None, [root, os.environ.get("PYTHONPATH")])))
        args = [self.pool.python, "-m", "ivr.media.asr_worker", "--worker", self.pool.engine]
        if self.pool.model_dir:
            args.append(self.pool.model_dir)
        proto = _WorkerProtocol(self)
        self.pool.reactor.spawnProcess(proto, self.pool.python, args, env=env,
                                       childFDs={0: "w", 1: "r", 2: "r"})
        self.proto = proto
        self.pool.starts += 1
        self.pool.live.add(proto)
        proto.ended.addBoth(lambda _: self.pool.live.discard(proto))

    def send(self, header: dict, payload: bytes = b"") -> None:
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.write(frame(header, payload))

    @property
    def pid(self):
        return self.proto.transport.pid if self.proto and self.proto.transport else None

    def reply(self, header: dict) -> None:
        if header.get("sid") is None:  # the answer to "warm"
            ready, self.ready = self.ready, None
            if not header.get("ok"):
                log.error("speech worker {n} cannot recognise: {error}", n=self.index,
                          error=header.get("error"))
            if ready is not None:
                ready.callback(bool(header.get("ok")))
            return
        stream = self.streams.pop(header.get("sid"), None)
        if stream is None:
            return
        if header.get("ok"):
            stream.resolved(header["text"], float(header["confidence"]),
                            float(header.get("decode_ms", 0.0)))
        else:
            log.error("speech recognition failed: {error}", error=header.get("error"))
            stream.failed(RecognizerError(header.get("error") or "worker error"))

    def failed(self, why: str, ended: bool = False) -> None:
        proto, self.proto = self.proto, None
        if proto is None:
            return
        if not ended:
            kill(proto)
        streams, self.streams = self.streams, {}
        ready, self.ready = self.ready, None
        if ready is not None:
            ready.callback(False)
        if streams or not ended or not self.pool.closing:
            log.error("speech worker {n} {why}: {count} utterance(s) fail, gathers fall back "
                      "to DTMF", n=self.index, why=why, count=len(streams))
        for stream in streams.values():
            stream.failed(RecognizerError(f"speech worker {why}"))


def kill(proto) -> None:
    if proto.transport is not None:
        try:
            proto.transport.signalProcess("KILL")
        except Exception:
            pass
        proto.transport.loseConnection()


class Utterance:
    """One utterance on its way to a worker: ``feed`` audio as it comes, then ``finish``
    (a Deferred of ``(text, confidence, decode_ms)``) or ``abort``."""

    def __init__(self, worker: _Worker, sid: int) -> None:
        self.worker, self.sid = worker, sid
        self.result = defer.Deferred()
        self._timer = None
        self.done = False
        self._pending: list[bytes] = []
        self._pending_samples = 0

    def feed(self, pcm: np.ndarray) -> None:
        """Audio goes to the worker in batches of ``BATCH_SAMPLES`` (the search runs at the
        end): one message per 20 ms frame was 2,500 pipe writes a second for 50 callers and
        put seconds between their end of speech and their result on a busy 2-core box."""
        if not self.done:
            self._pending.append(np.asarray(pcm, dtype="<i2").tobytes())
            self._pending_samples += len(pcm)
            if self._pending_samples >= BATCH_SAMPLES:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            self.worker.send({"op": "audio", "sid": self.sid}, b"".join(self._pending))
            self._pending, self._pending_samples = [], 0

    def finish(self) -> defer.Deferred:
        if not self.done and self._timer is None:
            self._flush()
            self.worker.send({"op": "end", "sid": self.sid})
            pool = self.worker.pool
            self._timer = pool.reactor.callLater(pool.timeout, self._timed_out)
        return self.result

    def abort(self) -> None:
        if not self.done:
            self.worker.streams.pop(self.sid, None)
            self.worker.send({"op": "abort", "sid": self.sid})
            self._settle()

    def _timed_out(self) -> None:
        self._timer = None
        if not self.done:
            self.worker.failed(f"gave no result within {self.worker.pool.timeout} s")

    def _settle(self) -> bool:
        if self.done:
            return False
        self.done = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        return True

    def resolved(self, text: str, confidence: float, decode_ms: float) -> None:
        if self._settle():
            self.result.callback((text, confidence, decode_ms))

    def failed(self, error: Exception) -> None:
        if self._settle():
            self.result.errback(error)


class RecognizerPool:
    """``workers`` recogniser processes running ``engine``; :meth:`open` starts an
    utterance.  Processes start on first use and after a failure."""

    def __init__(self, reactor, engine: str = "pocketsphinx", workers: int = 2,
                 timeout: float = 5.0, model_dir: str | None = None,
                 python: str = sys.executable) -> None:
        if engine not in ENGINES:
            raise RecognizerError(f"unknown speech engine {engine!r} (known: {', '.join(ENGINES)})")
        self.reactor, self.engine, self.timeout = reactor, engine, timeout
        self.model_dir, self.python = model_dir, python
        self.workers = [_Worker(self, i) for i in range(max(1, workers))]
        self.live: set = set()
        self.starts = 0
        self.closing = False
        self._next_sid = 0

    def open(self, hints, language: str = "en-us") -> Utterance:
        """An utterance on the least busy worker; RecognizerError when no worker can run."""
        worker = min(self.workers, key=lambda w: (len(w.streams), w.index))
        try:
            worker.ensure()
        except Exception as e:
            log.error("speech worker cannot start: {e}", e=e)
            raise RecognizerError(f"cannot start speech worker: {e}") from None
        self._next_sid += 1
        utterance = Utterance(worker, self._next_sid)
        worker.streams[utterance.sid] = utterance
        worker.send({"op": "start", "sid": utterance.sid, "hints": list(hints),
                     "language": language})
        return utterance

    def start(self) -> defer.Deferred:
        """Start every worker now and have it load its model, so that the first caller's
        word does not wait for a process start and a model load (~1-3 s).  Fires with the
        number of workers ready; a worker that cannot start or load is logged and started
        again on first use, as after any failure."""
        waits = []
        for worker in self.workers:
            try:
                worker.ensure()
            except Exception as e:
                log.error("speech worker cannot start: {e}", e=e)
                continue
            if worker.ready is None:
                worker.ready = defer.Deferred()
                worker.send({"op": "warm", "sid": None})
            waits.append(worker.ready)

        def ready(results):
            log.info("speech recognition ({engine}): {n} of {m} worker(s) ready",
                     engine=self.engine, n=sum(results), m=len(self.workers))
            return sum(results)
        return defer.gatherResults(waits).addCallback(ready)

    def close(self, grace: float = 3.0) -> defer.Deferred:
        self.closing = True
        for worker in self.workers:
            if worker.proto is not None and worker.proto.transport is not None:
                worker.proto.transport.closeStdin()
        waits = [p.ended for p in self.live]
        if not waits:
            return defer.succeed(None)
        stuck = self.reactor.callLater(grace, lambda: [kill(p) for p in list(self.live)])

        def exited(_):
            if stuck.active():
                stuck.cancel()
        return defer.gatherResults(waits).addCallback(exited)


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    worker_main(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
