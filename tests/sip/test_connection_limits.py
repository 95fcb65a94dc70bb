"""ConnectionTable (which SIP/TCP connection to take or evict) and LimitLog, on their own."""
from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from ivr.sip.connection_limits import ConnectionTable, TcpLimits, Verdict
from ivr.sip.limit_log import LimitLog


class Conn:
    def __init__(self, name: str, busy: bool = False) -> None:
        self.name, self.busy = name, busy

    def __repr__(self) -> str:
        return self.name


def table(**limits) -> ConnectionTable[Conn]:
    return ConnectionTable(TcpLimits(**limits), busy=lambda c: c.busy)


def take(t: ConnectionTable, name: str, host: str, busy: bool = False) -> Conn:
    admission = t.admit(host)
    assert admission.accepted, admission
    conn = Conn(name, busy)
    t.add(conn, host)
    return conn


def test_defaults_are_the_documented_ones():
    assert TcpLimits() == TcpLimits(max_connections=1000, max_per_address=50,
                                    message_timeout=10.0)
    with pytest.raises(ValueError):
        TcpLimits(max_per_address=-1)


def test_per_address_cap_refuses_without_evicting_anyone():
    t = table(max_connections=10, max_per_address=2)
    a = take(t, "a", "192.0.2.1")
    take(t, "b", "192.0.2.1")
    assert t.admit("192.0.2.1").verdict is Verdict.REFUSE_ADDRESS_FULL
    assert len(t) == 2
    take(t, "c", "192.0.2.2")  # another address is not affected
    t.forget(a)
    assert t.count("192.0.2.1") == 1
    take(t, "d", "192.0.2.1")  # room again once one closed


def test_full_table_evicts_the_longest_quiet_idle_connection():
    t = table(max_connections=3, max_per_address=3)
    a = take(t, "a", "192.0.2.1")
    b = take(t, "b", "192.0.2.2")
    c = take(t, "c", "192.0.2.3")
    t.touch(a)  # a spoke last: b is now the longest quiet
    admission = t.admit("192.0.2.4")
    assert admission.verdict is Verdict.ACCEPT_AFTER_EVICTING
    assert admission.evict is b
    assert b not in t and t.count("192.0.2.2") == 0 and len(t) == 2
    assert a in t and c in t


def test_busy_connections_are_never_evicted_and_a_full_busy_table_refuses():
    t = table(max_connections=2, max_per_address=5)
    a = take(t, "a", "192.0.2.1", busy=True)  # oldest, but part-way through a message
    b = take(t, "b", "192.0.2.2")
    assert t.admit("192.0.2.3").evict is b
    c = take(t, "c", "192.0.2.3", busy=True)
    admission = t.admit("192.0.2.4")
    assert admission.verdict is Verdict.REFUSE_TABLE_FULL and admission.evict is None
    assert a in t and c in t and len(t) == 2


def test_zero_turns_the_limits_off():
    t = table(max_connections=0, max_per_address=0)
    for i in range(200):
        take(t, str(i), "192.0.2.1")
    assert len(t) == 200


def test_forget_twice_and_touch_unknown_are_harmless():
    t = table(max_connections=2, max_per_address=2)
    a = take(t, "a", "192.0.2.1")
    t.forget(a)
    t.forget(a)
    t.touch(a)
    assert len(t) == 0 and t.count("192.0.2.1") == 0


class FakeLog:
    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []
        self.clock: Clock | None = None

    def warn(self, fmt: str, **fields) -> None:
        self.lines.append((self.clock.seconds(), fmt.format(**fields)))


def test_limit_log_one_line_then_one_summary_per_interval():
    clock, fake = Clock(), FakeLog()
    fake.clock = clock
    limit_log = LimitLog(clock, fake, interval=60.0)
    for _ in range(5):
        limit_log.note("full", "{n} refused", "refused {host}", host="192.0.2.1")
    limit_log.note("deadline", "{n} slow", "slow {peer}", peer="192.0.2.9")
    assert fake.lines == [(0, "refused 192.0.2.1"), (0, "slow 192.0.2.9")]
    clock.advance(59.9)
    limit_log.note("full", "{n} refused", "refused {host}", host="192.0.2.1")
    clock.advance(0.1)
    assert fake.lines[2:] == [(60.0, "5 refused in the last 60 s")]  # "deadline": nothing more
    clock.advance(60.0)  # the window after the summary saw nothing: no line, window closed
    assert len(fake.lines) == 3 and not clock.getDelayedCalls()
    limit_log.note("full", "{n} refused", "refused {host}", host="192.0.2.5")
    assert fake.lines[3] == (120.0, "refused 192.0.2.5")
    limit_log.stop()
    assert not clock.getDelayedCalls()
