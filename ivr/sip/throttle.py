"""Per-source failure throttling: repeated authentication failures get an address ignored.

Pure: time is always passed in (``now`` in seconds).  After ``max_failures`` failures
from one address within ``window`` seconds, the address is banned for ``ban_time``
seconds; while banned, its requests are dropped without an answer.  A success resets
the count.  Memory is bounded: at most ``max_tracked`` addresses are remembered, the
least recently seen forgotten first (a ban is forgotten only after every unbanned entry).

A failure from a *protected* address is not counted at all: the caller says so
(``failure(host, now, protected=True)``) for a trunk's ``allow_from`` address or an
address with a live registration.  A UDP source address is trivially forged, so
otherwise anyone could silence a carrier trunk or a registered phone by sending bad
passwords "from" it (see :class:`ivr.sip.authenticator.DigestGate`).

Behind a SIP proxy (Kamailio in front of a farm) every request comes from the proxy's
address: its ``trusted_proxies`` are never counted or banned themselves, and a request one
of them relayed is counted against the client the proxy recorded, the Via below the
proxy's own (:meth:`Throttle.client_address`: its ``received``, else its sent-by host).
Anyone else's Vias are never read: they are the sender's own words.

Bans are logged once when they start (address, failure count, until) and once when they
are lifted (expired, lifted by the API, or forgotten because the table was full), through
``log``: any ``callable(format, **fields)`` such as a Twisted ``Logger().info``.
"""
from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from itertools import islice
from typing import Callable

from .uri import SipSyntaxError, parse_via


@dataclass(frozen=True)
class Ban:
    address: str
    failures: int   # failed authentications that started the ban
    since: float    # when it started (the clock's seconds)
    until: float    # when it ends

    def to_dict(self) -> dict:
        return {"address": self.address, "failures": self.failures, "since": self.since,
                "until": self.until}


@dataclass
class _Entry:
    failures: deque = field(default_factory=deque)  # times of recent failures
    ban: Ban | None = None


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class Throttle:
    def __init__(self, max_failures: int = 5, window: float = 60.0, ban_time: float = 300.0,
                 max_tracked: int = 10_000, exempt: frozenset[str] | set[str] = frozenset(),
                 log: Callable[..., None] | None = None,
                 trusted_proxies: frozenset[str] | set[str] | tuple = frozenset()):
        if max_failures < 1 or window <= 0 or ban_time <= 0 or max_tracked < 1:
            raise ValueError("Throttle needs positive limits")
        self.max_failures = max_failures
        self.window = window
        self.ban_time = ban_time
        self.max_tracked = max_tracked
        self.trusted_proxies = frozenset(trusted_proxies)
        self.exempt = frozenset(exempt) | self.trusted_proxies  # a proxy is never banned
        self.log = log
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    @classmethod
    def from_settings(cls, security, exempt=frozenset(), log=None) -> "Throttle":
        """From :class:`ivr.config.extensions.SecuritySettings`."""
        return cls(security.max_failures, security.failure_window, security.ban_time,
                   exempt=exempt, log=log,
                   trusted_proxies=getattr(security, "trusted_proxies", ()))

    def client_address(self, host: str, request) -> str:
        """The address ``request`` from source ``host`` is counted and banned as: ``host``
        itself, unless it is a trusted proxy; then the first Via below the top one whose
        address (``received``, else sent-by) is not a trusted proxy, or ``host`` (never
        banned) when there is none (the proxy's own requests, such as OPTIONS probes)."""
        if host not in self.trusted_proxies:
            return host
        try:
            vias = [parse_via(v) for v in request.headers.get_all("Via")[1:]]
        except (SipSyntaxError, ValueError):
            return host
        for via in vias:
            address = via.param("received") or via.host_no_brackets
            if address and address not in self.trusted_proxies:
                return address
        return host

    def is_banned(self, host: str, now: float) -> bool:
        entry = self._entries.get(host)
        if entry is None or entry.ban is None:
            return False
        if now < entry.ban.until:
            return True
        self._lift(host, "expired")  # the ban is over: a clean slate
        return False

    def failure(self, host: str, now: float, protected: bool = False) -> bool:
        """Record a failed authentication; True if ``host`` is (now) banned.

        ``protected``: ``host`` is a trunk's allow_from address or has a live registration,
        so the failure is not counted (it may well come from a forged source address).
        """
        if self.is_banned(host, now):
            return True
        if host in self.exempt or protected:
            return False
        entry = self._entries.pop(host, None) or _Entry()
        self._entries[host] = entry  # most recently seen last
        times = entry.failures
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.max_failures:
            entry.ban = Ban(host, len(times), now, now + self.ban_time)
            times.clear()
            self._say("banning {address} after {failures} failed authentications "
                      "until {until_utc} ({ban_time:g} s)", entry.ban, ban_time=self.ban_time)
        self._evict()
        return entry.ban is not None

    def success(self, host: str, now: float) -> None:
        """A successful authentication forgives earlier failures (not an active ban)."""
        entry = self._entries.get(host)
        if entry is not None and entry.ban is None:
            del self._entries[host]

    def lift(self, host: str, now: float) -> Ban | None:
        """End ``host``'s ban now (the admin's decision); the ban, or None if there was none."""
        if not self.is_banned(host, now):
            return None
        return self._lift(host, "lifted by the API")

    def expire(self, now: float) -> None:
        """Housekeeping: forget ended bans and failures older than the window."""
        for host in list(self._entries):
            entry = self._entries[host]
            if entry.ban is not None:
                if now >= entry.ban.until:
                    self._lift(host, "expired")
            elif not entry.failures or entry.failures[-1] <= now - self.window:
                del self._entries[host]

    def _lift(self, host: str, why: str) -> Ban:
        ban = self._entries.pop(host).ban
        self._say("ban of {address} ({failures} failed authentications, since {since_utc}, "
                  "until {until_utc}) ended: {why}", ban, why=why)
        return ban

    def _say(self, fmt: str, ban: Ban, **extra) -> None:
        if self.log is not None:
            self.log(fmt, address=ban.address, failures=ban.failures, since=ban.since,
                     until=ban.until, since_utc=_utc(ban.since), until_utc=_utc(ban.until),
                     **extra)

    def _evict(self) -> None:
        if len(self._entries) <= self.max_tracked:
            return
        # least recently seen first; bans are kept if an unbanned entry is near the front
        for host in list(islice(self._entries, 64)):
            if len(self._entries) <= self.max_tracked:
                return
            if self._entries[host].ban is None:
                del self._entries[host]
        while len(self._entries) > self.max_tracked:
            host, entry = next(iter(self._entries.items()))
            if entry.ban is not None:
                self._lift(host, "forgotten, the table of addresses is full")
            else:
                del self._entries[host]

    @property
    def tracked(self) -> int:
        return len(self._entries)

    def bans(self, now: float) -> list[Ban]:
        """The bans in force at ``now``, oldest first."""
        out = [e.ban for e in self._entries.values() if e.ban is not None and now < e.ban.until]
        return sorted(out, key=lambda b: (b.since, b.address))

    def banned(self, now: float) -> list[str]:
        return [b.address for b in self.bans(now)]
