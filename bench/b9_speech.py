"""B9 speech input (#19): how well and how fast the offline recogniser hears spoken commands.

1. Accuracy on the generated set (tests/media/speech_corpus.py): espeak-ng in several voices
   and speeds, band-limited to 300-3400 Hz at 8 kHz, clean and with white noise at 20 and
   10 dB SNR; each utterance is decoded by the PocketSphinx engine exactly as a worker does
   (grammar from the menu's words).  Also the engine's CPU per second of speech.
2. Load: ``calls`` callers speaking at once into SpeechListeners on a real RecognizerPool
   (worker processes) in a child process, fed in real time by one 20 ms LoopingCall (the
   media clock's shape): end-of-speech-to-result (SpeechResult.latency_ms, from the VAD's
   end-of-speech decision), accuracy under load, the workers' CPU per concurrent recogniser
   and RSS per worker, and the 20 ms tick's pacing on that same reactor with and without
   the speech load (the reactor that carries the pool's pipes is the one that paces media).

``python -m bench.b9_speech --load N`` runs part 2 alone and prints its JSON.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGETS = {"accuracy_percent_20db": ">= 95", "latency_p95_ms": "<= 300",
           "load_calls": "50 concurrent speech gathers, pacing unbroken"}
HINTS = ("sales", "support", "operator")
QUICK_VOICES = ("en-us", "en-us+f3", "en-us+m3")


def accuracy(voices, speeds) -> dict:
    from ivr.media.recognizer import match_hint
    from ivr.media.sphinx_engine import SphinxEngine
    from tests.media.speech_corpus import COMMANDS, padded, spoken, with_noise
    engine = SphinxEngine()
    engine.warm()
    out, cpu, speech_s = {}, 0.0, 0.0
    for label, snr in (("clean", None), ("20db", 20), ("10db", 10)):
        right = total = 0
        wrong = []
        for i, (voice, speed, word) in enumerate(
                (v, s, w) for v in voices for s in speeds for w in COMMANDS):
            clean = spoken(word, voice, speed)
            audio = padded(clean, 0.3, 0.6)  # what the listener sends: pre-roll .. end
            if snr is not None:
                audio = with_noise(audio, snr, clean, seed=i)
            began = time.process_time()
            utterance = engine.start(HINTS)
            for at in range(0, len(audio), 160):
                utterance.feed(audio[at:at + 160])
            text, _confidence = utterance.finish()
            cpu += time.process_time() - began
            speech_s += len(audio) / 8000
            total += 1
            if match_hint(text, HINTS) == word:
                right += 1
            else:
                wrong.append(f"{word}/{voice}/{speed} -> {text!r}")
        out[label] = {"right": right, "total": total,
                      "percent": round(100 * right / total, 1), "wrong": wrong}
    out["engine_cpu_ms_per_speech_second"] = round(1000 * cpu / speech_s, 1)
    return out


# ---- part 2, in a child process (its own reactor) -------------------------------------

def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pacing(times: list[float]) -> dict:
    iv = np.diff(np.asarray(times)) * 1000
    if not len(iv):
        return {}
    dev = np.abs(iv - 20)
    return {"ticks": int(len(iv)), "p99_dev_ms": round(float(np.percentile(dev, 99)), 2),
            "max_interval_ms": round(float(iv.max()), 2),
            "late_over_10ms": int(np.sum(dev > 10))}


def load(calls: int, workers: int) -> dict:
    from twisted.internet import defer, reactor, task

    from ivr.call.speech import SpeechListener
    from ivr.media.asr_worker import RecognizerPool
    from tests.media.speech_corpus import COMMANDS, padded, spoken, with_noise

    class Rtp:
        def __init__(self):
            self.listeners = []

        def add_audio_listener(self, cb):
            self.listeners.append(cb)

        def remove_audio_listener(self, cb):
            if cb in self.listeners:
                self.listeners.remove(cb)

    class Caller:
        def __init__(self, n, audio):
            self.call_id, self.clock, self.rtp = f"b9-{n}", reactor, Rtp()
            self.audio, self.at, self.ended = audio, 0, defer.Deferred()

        def _ensure_rtp(self):
            return self.rtp

        def when_ended(self):
            return self.ended

        def log_event(self, *a, **k):
            pass

    voices, speeds = ("en-us", "en-us+f3", "en-us+m3", "en-us+f2"), (140, 175)
    callers, expected = [], []
    for n in range(calls):
        word = COMMANDS[n % len(COMMANDS)]
        clean = spoken(word, voices[n % len(voices)], speeds[(n // 3) % len(speeds)])
        lead = 0.5 + (n % 25) * 0.08  # the ends spread over 2 s, as real callers' do
        audio = with_noise(padded(clean, lead, 1.5), 20, clean, seed=n)
        callers.append(Caller(n, audio))
        expected.append(word)
    pool = RecognizerPool(reactor, workers=workers, timeout=10.0)
    ticks_idle, ticks_load, results = [], [], {}
    state = {"phase": "idle"}

    def tick(count):
        now = time.monotonic()
        (ticks_idle if state["phase"] == "idle" else ticks_load).append(now)
        if state["phase"] != "load":
            return
        for _ in range(count):
            for c in callers:
                if c.at < len(c.audio):
                    frame = c.audio[c.at:c.at + 160]
                    c.at += 160
                    for cb in list(c.rtp.listeners):
                        cb(frame)

    clock = task.LoopingCall.withCount(tick)

    @defer.inlineCallbacks
    def main():
        yield pool.start()
        clock.start(0.02, now=True)
        yield task.deferLater(reactor, 3.0, lambda: None)  # pacing with nothing to recognise
        pids = [w.pid for w in pool.workers]
        cpu0 = {p: _cpu_s(p) for p in pids}
        parent0 = time.process_time()
        wall0 = time.monotonic()
        listeners = [SpeechListener(c, pool, HINTS, speech_timeout=0.6) for c in callers]
        waits = [l.next_result() for l in listeners]
        state["phase"] = "load"
        got = yield defer.DeferredList(waits, consumeErrors=True)
        wall = time.monotonic() - wall0
        clock.stop()
        cpu = {p: _cpu_s(p) - cpu0[p] for p in pids}
        results.update(
            outcomes=[(ok, r if ok else str(r.value)) for ok, r in got], wall=wall, cpu=cpu,
            parent_cpu=time.process_time() - parent0, rss={p: _rss_kb(p) for p in pids})
        for l in listeners:
            l.close()
        yield pool.close()
        reactor.stop()

    reactor.callWhenRunning(lambda: main().addErrback(lambda f: (f.printTraceback(),
                                                                 reactor.stop())))
    reactor.run()
    latencies, right, failed = [], 0, 0
    for (ok, r), word in zip(results["outcomes"], expected):
        if not ok:
            failed += 1
            continue
        latencies.append(r.latency_ms)
        right += r.text == word
    worker_cpu = sum(results["cpu"].values())
    speech_wall = results["wall"]
    return {
        "calls": calls, "workers": workers, "results": len(latencies), "failed": failed,
        "accuracy_percent": round(100 * right / calls, 1),
        "latency_ms": {"p50": round(float(np.percentile(latencies, 50)), 1),
                       "p95": round(float(np.percentile(latencies, 95)), 1),
                       "max": round(float(np.max(latencies)), 1)} if latencies else {},
        "wall_s": round(speech_wall, 2),
        "worker_cpu_s": round(worker_cpu, 2),
        # all callers speak for the whole window: the share of a core each costs
        "cpu_percent_per_concurrent_recogniser": round(100 * worker_cpu / speech_wall / calls, 2),
        "listener_cpu_percent_per_call": round(100 * results["parent_cpu"] / speech_wall / calls, 2),
        "worker_rss_mb": [round(v / 1024, 1) for v in results["rss"].values()],
        "pacing_idle": _pacing(ticks_idle), "pacing_under_load": _pacing(ticks_load),
    }


def run(work: Path, mode: str, context: dict) -> dict:
    quick = mode == "quick"
    from tests.media.speech_corpus import VOICES
    acc = accuracy(QUICK_VOICES if quick else VOICES, (140, 175) if quick else (130, 160, 190))
    calls = context.get("b9_calls") or (10 if quick else 50)
    proc = subprocess.run([sys.executable, "-m", "bench.b9_speech", "--load", str(calls)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if proc.returncode != 0:
        raise RuntimeError(f"B9 load run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    figures = {
        "accuracy_percent_clean": acc["clean"]["percent"],
        "accuracy_percent_20db": acc["20db"]["percent"],
        "accuracy_percent_10db": acc["10db"]["percent"],
        "utterances_per_condition": acc["20db"]["total"],
        "engine_cpu_ms_per_speech_second": acc["engine_cpu_ms_per_speech_second"],
        "latency_p95_ms": loaded["latency_ms"].get("p95"),
        "load_calls": loaded["calls"],
        "load_accuracy_percent": loaded["accuracy_percent"],
        "cpu_percent_per_concurrent_recogniser": loaded["cpu_percent_per_concurrent_recogniser"],
        "worker_rss_mb": max(loaded["worker_rss_mb"]) if loaded["worker_rss_mb"] else None,
        "pacing_p99_dev_ms_idle_vs_load": (loaded["pacing_idle"].get("p99_dev_ms"),
                                           loaded["pacing_under_load"].get("p99_dev_ms")),
        "accuracy": acc, "load": loaded,
    }
    return {"figures": figures, "targets": TARGETS}


if __name__ == "__main__" and sys.argv[1:2] == ["--load"]:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    n = int(sys.argv[2])
    print(json.dumps(load(n, workers=int(sys.argv[3]) if len(sys.argv) > 3 else 2)))
