"""Per-source failure throttling: repeated authentication failures get an address ignored.

Pure: time is always passed in (``now`` in seconds).  After ``max_failures`` failures
from one address within ``window`` seconds, the address is banned for ``ban_time``
seconds; while banned, its requests are dropped without an answer.  A success resets
the count.  Memory is bounded: at most ``max_tracked`` addresses are remembered, the
least recently seen forgotten first (a ban is forgotten only after every unbanned entry).
"""
from __future__ import annotations

from collections import OrderedDict, deque
from itertools import islice
from dataclasses import dataclass, field


@dataclass
class _Entry:
    failures: deque = field(default_factory=deque)  # times of recent failures
    banned_until: float | None = None


class Throttle:
    def __init__(self, max_failures: int = 5, window: float = 60.0, ban_time: float = 300.0,
                 max_tracked: int = 10_000, exempt: frozenset[str] | set[str] = frozenset()):
        if max_failures < 1 or window <= 0 or ban_time <= 0 or max_tracked < 1:
            raise ValueError("Throttle needs positive limits")
        self.max_failures = max_failures
        self.window = window
        self.ban_time = ban_time
        self.max_tracked = max_tracked
        self.exempt = frozenset(exempt)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    @classmethod
    def from_settings(cls, security, exempt=frozenset()) -> "Throttle":
        """From :class:`ivr.config.extensions.SecuritySettings`."""
        return cls(security.max_failures, security.failure_window, security.ban_time, exempt=exempt)

    def is_banned(self, host: str, now: float) -> bool:
        entry = self._entries.get(host)
        if entry is None or entry.banned_until is None:
            return False
        if now < entry.banned_until:
            return True
        del self._entries[host]  # the ban is over: a clean slate
        return False

    def failure(self, host: str, now: float) -> bool:
        """Record a failed authentication; True if ``host`` is (now) banned."""
        if host in self.exempt:
            return False
        if self.is_banned(host, now):
            return True
        entry = self._entries.pop(host, None) or _Entry()
        self._entries[host] = entry  # most recently seen last
        times = entry.failures
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.max_failures:
            times.clear()
            entry.banned_until = now + self.ban_time
        self._evict()
        return entry.banned_until is not None

    def success(self, host: str, now: float) -> None:
        """A successful authentication forgives earlier failures (not an active ban)."""
        entry = self._entries.get(host)
        if entry is not None and entry.banned_until is None:
            del self._entries[host]

    def expire(self, now: float) -> None:
        """Housekeeping: forget ended bans and failures older than the window."""
        for host in list(self._entries):
            entry = self._entries[host]
            if entry.banned_until is not None:
                if now >= entry.banned_until:
                    del self._entries[host]
            elif not entry.failures or entry.failures[-1] <= now - self.window:
                del self._entries[host]

    def _evict(self) -> None:
        if len(self._entries) <= self.max_tracked:
            return
        # least recently seen first; bans are kept if an unbanned entry is near the front
        for host in list(islice(self._entries, 64)):
            if len(self._entries) <= self.max_tracked:
                return
            if self._entries[host].banned_until is None:
                del self._entries[host]
        while len(self._entries) > self.max_tracked:
            self._entries.popitem(last=False)

    @property
    def tracked(self) -> int:
        return len(self._entries)

    def banned(self, now: float) -> list[str]:
        return [h for h, e in self._entries.items() if e.banned_until is not None and now < e.banned_until]
