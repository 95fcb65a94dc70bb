"""Per-queue statistics and the estimated wait time (EWT).  Pure: times are passed in.

EWT formula (documented for the announcements)::

    H    = mean of the last ``ewt_samples`` handle times in this queue, where a handle
           time is talk time (answer -> call_ended) plus the queue's wrap-up
    n    = agents of the queue logged in (reachable and not paused), at least 1
    free = agents of the queue that could be rung right now, plus callers of the queue
           already ringing an agent (each about to be served)
    ahead = max(0, position - free)        # callers that still need an agent to free up
    EWT  = ahead * H / n     # seconds; 0 if ahead == 0, else None until a call was handled

So a caller at position 1 with an idle agent hears 0, and with two agents busy on
three-minute calls the caller at position 4 hears 4 * 180 / 2 = 360 s.  Like Asterisk's
``holdtime`` the estimate only uses calls this queue really handled; ``holdtime`` itself
(Asterisk's running average of waits, ``new = (3 * old + wait) / 4``) is kept for reports.
"""
from __future__ import annotations

from collections import deque


class QueueStats:
    def __init__(self, samples: int):
        self.handle_times: deque[float] = deque(maxlen=samples)
        self.holdtime: float | None = None
        self.answered = 0
        self.abandoned = 0
        self.timeouts = 0
        self.refused = 0

    def record_answer(self, wait: float) -> None:
        self.answered += 1
        self.holdtime = wait if self.holdtime is None else (3 * self.holdtime + wait) / 4

    def record_handle(self, seconds: float) -> None:
        self.handle_times.append(max(0.0, seconds))

    def average_handle(self) -> float | None:
        if not self.handle_times:
            return None
        return sum(self.handle_times) / len(self.handle_times)

    def ewt(self, position: int, free: int, logged_in: int) -> float | None:
        ahead = max(0, position - free)
        if ahead == 0:
            return 0.0
        handle = self.average_handle()
        if handle is None:
            return None
        return ahead * handle / max(1, logged_in)

    def snapshot(self) -> dict:
        return {"answered": self.answered, "abandoned": self.abandoned,
                "timeouts": self.timeouts, "refused": self.refused,
                "holdtime": self.holdtime, "average_handle": self.average_handle()}
