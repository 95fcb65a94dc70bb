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

A farm's nodes share their bans and failures (``shared=True``, PostgreSQL mode): the
throttle notes what it decided -- failures counted, bans started, successes -- in a
journal that housekeeping takes (:meth:`Throttle.take_journal`) and writes through the
database (``ivr/store/bans.py``), which also counts failures farm-wide and bans an address
that failed ``max_failures`` times in ``window`` over all nodes together; the farm's bans
come back and replace the ones held here (:meth:`Throttle.apply_farm`): bans of other nodes
are added, bans lifted or expired elsewhere end here too.  The check on each request stays
in memory; a ban decided on one node holds on every node within a housekeeping round.

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


@dataclass(frozen=True)
class Journal:
    """What a shared throttle decided since housekeeping last took its journal."""
    failures: tuple[tuple[str, float], ...] = ()   # (address, when), counted failures
    bans: tuple[Ban, ...] = ()                     # bans started here
    successes: tuple[tuple[str, float], ...] = ()  # (address, when): failures forgiven

    def __bool__(self) -> bool:
        return bool(self.failures or self.bans or self.successes)


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class Throttle:
    def __init__(self, max_failures: int = 5, window: float = 60.0, ban_time: float = 300.0,
                 max_tracked: int = 10_000, exempt: frozenset[str] | set[str] = frozenset(),
                 log: Callable[..., None] | None = None,
                 trusted_proxies: frozenset[str] | set[str] | tuple = frozenset(),
                 shared: bool = False):
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
        self.shared = shared   # a farm's node: keep a journal (take_journal, apply_farm)
        self._failures: deque = deque(maxlen=max_tracked * max_failures)
        self._bans: dict[str, Ban] = {}
        self._successes: OrderedDict[str, float] = OrderedDict()

    @classmethod
    def from_settings(cls, security, exempt=frozenset(), log=None,
                      shared: bool = False) -> "Throttle":
        """From :class:`ivr.config.extensions.SecuritySettings`."""
        return cls(security.max_failures, security.failure_window, security.ban_time,
                   exempt=exempt, log=log,
                   trusted_proxies=getattr(security, "trusted_proxies", ()), shared=shared)

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
        if self.shared:
            self._failures.append((host, now))
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.max_failures:
            entry.ban = Ban(host, len(times), now, now + self.ban_time)
            times.clear()
            if self.shared:
                self._bans[host] = entry.ban
            self._say("banning {address} after {failures} failed authentications "
                      "until {until_utc} ({ban_time:g} s)", entry.ban, ban_time=self.ban_time)
        self._evict()
        return entry.ban is not None

    def success(self, host: str, now: float) -> None:
        """A successful authentication forgives earlier failures (not an active ban)."""
        entry = self._entries.get(host)
        if entry is not None and entry.ban is None:
            del self._entries[host]
            if self.shared:   # the farm forgives it too (only if it failed here: bounded)
                self._successes.pop(host, None)
                self._successes[host] = now
                while len(self._successes) > self.max_tracked:
                    self._successes.popitem(last=False)

    # -- a farm's shared bans (housekeeping) ---------------------------------------------
    def take_journal(self) -> Journal:
        """What was decided here since the last call, to write through; emptied."""
        journal = Journal(tuple(self._failures), tuple(self._bans.values()),
                          tuple(self._successes.items()))
        self._failures.clear()
        self._bans.clear()
        self._successes.clear()
        return journal

    def requeue(self, journal: Journal) -> None:
        """The journal could not be written (database down): keep it for the next round."""
        self._failures.extendleft(reversed(journal.failures))
        for ban in journal.bans:
            self._bans.setdefault(ban.address, ban)
        for host, at in journal.successes:
            self._successes.setdefault(host, at)

    def apply_farm(self, bans, now: float) -> None:
        """The farm's bans in force (``(address, failures, since, until)`` rows, read in the
        transaction that wrote the journal taken last): hold them here, and end the bans
        held here that the farm no longer has (lifted or expired on another node), except
        those started since the journal was taken."""
        farm = {}
        for address, failures, since, until in bans:
            if now < until and address not in self.exempt:
                farm[address] = Ban(address, int(failures), float(since), float(until))
        for host, ban in farm.items():
            entry = self._entries.get(host)
            if entry is not None and entry.ban is not None:
                if entry.ban.until < ban.until:
                    entry.ban = ban   # extended elsewhere
                continue
            if entry is None:
                entry = self._entries[host] = _Entry()
            entry.ban = ban
            entry.failures.clear()
            self._say("banning {address} as the farm does ({failures} failed "
                      "authentications) until {until_utc}", ban)
        for host in [h for h, e in self._entries.items() if e.ban is not None]:
            if host not in farm and host not in self._bans:
                self._lift(host, "lifted or expired on another node")
        self._evict()

    def lift(self, host: str, now: float) -> Ban | None:
        """End ``host``'s ban now (the admin's decision); the ban, or None if there was none."""
        self._bans.pop(host, None)   # not to be written to the farm afterwards
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
