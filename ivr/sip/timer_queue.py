"""Many timers with few distinct delays on one reactor timer: the transaction layer's timers.

Every SIP transaction keeps a timer running for its whole life, and most of that life is a
fixed wait: Timers J and L (64*T1 = 32 s) keep a finished transaction around to absorb
retransmissions, Timer I waits T4.  At a few hundred calls per second that is tens of
thousands of pending timers.  As Twisted ``DelayedCall``s each costs a heap entry and half a
dozen objects (the call, bound methods for cancel/reset, argument tuples), and a cancelled
one stays in the heap until its time would have come; the cyclic garbage collector then
walks all of them on every full collection (a pause that grows with the call rate;
bench/README.md has the figures).

Timers of one delay expire in the order they were started (the clock only moves forward), so
each distinct delay gets a FIFO queue, and a single ``callLater`` waits for the earliest head
of all queues.  A timer is one small object; starting and cancelling are O(1) (a cancelled
timer is dropped when it reaches the head of its queue).  The few distinct delays of RFC 3261
(T1 doublings up to T2, T4, 64*T1) keep the number of queues small.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Any, Callable

from twisted.logger import Logger

__all__ = ["TimerQueue", "QueuedTimer"]

# A timer is due when the clock is within this much (or a few ulps) of its deadline.
_EPSILON = 1e-9
_log = Logger()


class QueuedTimer:
    """One pending timer; ``active()`` and ``cancel()`` like a DelayedCall's."""

    __slots__ = ("deadline", "subject", "name", "owner")

    def __init__(self, deadline: float, subject: Any, name: Any, owner: "TimerQueue") -> None:
        self.deadline = deadline
        self.subject = subject
        self.name = name
        self.owner = owner

    def active(self) -> bool:
        return self.subject is not None

    def cancel(self) -> None:
        if self.subject is not None:
            self.subject = None  # dropped lazily from its queue
            self.owner._cancelled()


class TimerQueue:
    """``start(delay, subject, name)`` calls ``fire(subject, name)`` after ``delay`` seconds
    of ``clock`` (an IReactorTime: the reactor, or ``task.Clock`` in tests)."""

    def __init__(self, clock, fire: Callable[[Any, Any], Any]) -> None:
        self.clock = clock
        self._fire = fire
        self._queues: dict[float, deque[QueuedTimer]] = {}
        self._wakeup = None      # the one DelayedCall
        self._wakeup_at: float | None = None
        self._active = 0

    def start(self, delay: float, subject: Any, name: Any) -> QueuedTimer:
        timer = QueuedTimer(self.clock.seconds() + delay, subject, name, self)
        self._active += 1
        queue = self._queues.get(delay)
        if queue is None:
            queue = self._queues[delay] = deque()
        queue.append(timer)
        if self._wakeup_at is None or timer.deadline < self._wakeup_at:
            self._schedule(timer.deadline)
        return timer

    def __len__(self) -> int:
        """Timers still pending (cancelled ones not counted)."""
        return self._active

    def _cancelled(self) -> None:
        self._active -= 1
        if self._active == 0:  # nothing left to wait for: no reactor timer either
            self.stop()

    def _schedule(self, deadline: float) -> None:
        if self._wakeup is not None and self._wakeup.active():
            self._wakeup.cancel()
        self._wakeup_at = deadline
        now = self.clock.seconds()
        delay = max(0.0, deadline - now)
        while delay > 0.0 and now + delay > deadline:  # never an ulp late: a clock advanced
            delay = math.nextafter(delay, 0.0)          # to exactly the deadline fires it
        self._wakeup = self.clock.callLater(delay, self._run)

    def _run(self) -> None:
        self._wakeup = self._wakeup_at = None
        now = self.clock.seconds()
        due_by = now + max(_EPSILON, 4 * math.ulp(now))
        due: list[QueuedTimer] = []
        for queue in self._queues.values():
            while queue and (queue[0].subject is None or queue[0].deadline <= due_by):
                timer = queue.popleft()
                if timer.subject is not None:
                    due.append(timer)
        due.sort(key=lambda t: t.deadline)  # across queues, in deadline order
        for timer in due:
            subject = timer.subject
            if subject is None:  # cancelled by an earlier one's callback
                continue
            timer.subject = None
            self._active -= 1
            try:
                self._fire(subject, timer.name)
            except Exception:  # one failing callback must not lose the others' timers
                _log.failure("timer {name} of {subject!r} failed", name=timer.name,
                             subject=subject)
        self._reschedule()

    def _reschedule(self) -> None:
        heads = [q[0].deadline for q in self._queues.values() if q]
        for delay in [d for d, q in self._queues.items() if not q]:
            del self._queues[delay]  # empty queues go (a doubling timer makes a few)
        if heads and (self._wakeup_at is None or min(heads) < self._wakeup_at):
            self._schedule(min(heads))

    def stop(self) -> None:
        """Cancel everything (shutdown)."""
        for queue in self._queues.values():
            for timer in queue:
                timer.subject = None
        self._queues.clear()
        self._active = 0
        if self._wakeup is not None and self._wakeup.active():
            self._wakeup.cancel()
        self._wakeup = self._wakeup_at = None
