"""Subprocess for the kill -9 test: commit N ended calls, then keep writing until killed.

Usage: python -m tests.store.cdr_writer DB N
Prints "COMMITTED <n>" after each of the first N records' Deferred has fired (so: only
after the commit), then "BUSY" and keeps writing records of calls ending forever.
"""
from __future__ import annotations

import sys

from twisted.internet import reactor, task

from ivr.store.cdr import CdrStore
from ivr.store.db import Database


def cdr(i: int, prefix: str) -> dict:
    return {"leg_id": f"{prefix}-{i}", "session_id": f"s-{i // 2}",
            "role": "agent" if i % 2 == 0 else "customer", "direction": "outbound",
            "from_number": "+12025550100", "to_number": f"+1202555{i % 10000:04d}",
            "setup_at": 1000.0 + i, "answer_at": 1002.0 + i, "end_at": 1030.0 + i,
            "outcome": "answered", "hangup_side": "callee", "route": "click-to-call",
            "digits": ["1", "23"], "rtp_packets_lost": i % 3, "rtp_jitter_ms": 1.5}


def main() -> None:
    path, n = sys.argv[1], int(sys.argv[2])
    store = CdrStore(Database(path))
    done = [0]

    def committed(_):
        done[0] += 1
        print(f"COMMITTED {done[0]}", flush=True)
        if done[0] == n:
            print("BUSY", flush=True)
            busy.start(0.001)

    counter = iter(range(10**9))
    busy = task.LoopingCall(lambda: [store.record(cdr(next(counter), "later"))
                                     for _ in range(20)])
    for i in range(n):
        store.record(cdr(i, "done")).addCallback(committed)
    reactor.run()


if __name__ == "__main__":
    main()
