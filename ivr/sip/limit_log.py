"""Logging a limit that bites, without a line per hit.

The first hit is logged at once; further hits of the same kind within ``interval``
seconds are counted and reported in one line when the interval ends (and counting goes
on while the limit keeps biting), so a flood of refused connections costs a line a
minute.  The reactor (only ``callLater``) and the logger are passed in.
"""
from __future__ import annotations

LIMIT_LOG_INTERVAL = 60.0


class LimitLog:
    """One line when a limit first bites, then at most one line per ``interval`` with
    how many more times it bit (so a flood of refused connections is not a flood of
    log lines)."""

    def __init__(self, reactor, log, interval: float = LIMIT_LOG_INTERVAL) -> None:
        self.reactor = reactor
        self.log = log
        self.interval = interval
        self._windows: dict[str, list] = {}  # kind -> [suppressed count, summary, timer]

    def note(self, kind: str, summary: str, first: str, **fields) -> None:
        window = self._windows.get(kind)
        if window is not None:
            window[0] += 1
            return
        self.log.warn(first, **fields)
        self._open(kind, summary)

    def _open(self, kind: str, summary: str) -> None:
        self._windows[kind] = [0, summary,
                               self.reactor.callLater(self.interval, self._close, kind)]

    def _close(self, kind: str) -> None:
        count, summary, _timer = self._windows.pop(kind)
        if count:
            self.log.warn(summary + " in the last {s:g} s", n=count, s=self.interval)
            self._open(kind, summary)  # still biting: keep counting

    def stop(self) -> None:
        for _count, _summary, timer in self._windows.values():
            if timer.active():
                timer.cancel()
        self._windows.clear()
