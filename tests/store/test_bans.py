"""SIP failure bans a farm shares (ivr/store/bans.py with ivr/sip/throttle.py's journal), on
SQLite and PostgreSQL: the store alone, then two simulated nodes on one task.Clock sharing
one database -- a ban decided on one node holds on the other after a housekeeping round, a
guesser spreading its attempts over both nodes is banned by the farm's count, and a lift
on one node ends the ban on both."""
from __future__ import annotations

from twisted.internet.task import Clock

from ivr.sip.throttle import Ban, Throttle
from ivr.store.bans import FarmBans

from .test_cdr import result

T0 = 1_700_000_000.0
LIMITS = dict(max_failures=3, window=60.0, ban_time=300.0)


def store(backend, node="a"):
    return FarmBans(backend.open(), node, **LIMITS)


def test_the_store_writes_bans_counts_failures_farm_wide_and_lifts(backend):
    a, b = store(backend, "a"), store(backend, "b")
    ban = Ban("192.0.2.9", 3, T0, T0 + 300)
    assert result(a.exchange(bans=[ban], now=T0)) == [("192.0.2.9", 3, T0, T0 + 300)]
    assert result(b.bans(T0 + 1)) == [("192.0.2.9", 3, T0, T0 + 300)]
    # two failures on a, one on b: the farm has three -> banned by whoever writes the third
    assert result(a.exchange(failures=[("198.51.100.1", T0), ("198.51.100.1", T0 + 1)],
                             now=T0 + 1)) == [("192.0.2.9", 3, T0, T0 + 300)]
    got = result(b.exchange(failures=[("198.51.100.1", T0 + 2)], now=T0 + 2))
    assert got == [("192.0.2.9", 3, T0, T0 + 300), ("198.51.100.1", 3, T0 + 2, T0 + 302)]
    # old failures are forgotten; a success forgives the farm's failures
    result(a.exchange(failures=[("203.0.113.5", T0)], now=T0 + 2))
    result(b.exchange(failures=[("203.0.113.5", T0 + 61)], now=T0 + 61))
    assert [r[0] for r in result(a.exchange(failures=[("203.0.113.5", T0 + 62)],
                                            now=T0 + 62))] == ["192.0.2.9", "198.51.100.1"]
    result(a.exchange(successes=[("203.0.113.5", T0 + 63)], now=T0 + 63))
    assert "203.0.113.5" not in [r[0] for r in result(
        b.exchange(failures=[("203.0.113.5", T0 + 64)], now=T0 + 64))]
    # a ban written again is only lengthened, never shortened
    result(b.exchange(bans=[Ban("192.0.2.9", 5, T0 + 10, T0 + 100)], now=T0 + 64))
    assert result(a.bans(T0 + 64))[0] == ("192.0.2.9", 3, T0, T0 + 300)
    # lifted farm-wide; expired bans are gone
    assert result(b.lift("192.0.2.9", T0 + 65)) == ("192.0.2.9", 3, T0, T0 + 300)
    assert result(b.lift("192.0.2.9", T0 + 65)) is None
    assert result(a.bans(T0 + 65)) == [("198.51.100.1", 3, T0 + 2, T0 + 302)]
    assert result(a.exchange(now=T0 + 302)) == []


class Node:
    """One node's throttle and its housekeeping round, on the shared clock."""

    def __init__(self, bans: FarmBans, clock: Clock) -> None:
        self.bans, self.clock = bans, clock
        self.throttle = Throttle(**LIMITS, shared=True)

    def housekeep(self) -> None:
        journal = self.throttle.take_journal()
        rows = result(self.bans.exchange(journal.failures, journal.bans, journal.successes,
                                         now=self.clock.seconds()))
        self.throttle.apply_farm(rows, self.clock.seconds())

    def fail(self, host: str) -> bool:
        return self.throttle.failure(host, self.clock.seconds())

    def banned(self, host: str) -> bool:
        return self.throttle.is_banned(host, self.clock.seconds())


def two_nodes(backend):
    clock = Clock()
    clock.advance(T0)
    return Node(store(backend, "a"), clock), Node(store(backend, "b"), clock), clock


def test_a_ban_on_one_node_holds_on_the_other_within_a_round(backend):
    a, b, clock = two_nodes(backend)
    assert [a.fail("192.0.2.7") for _ in range(3)] == [False, False, True]
    assert not b.banned("192.0.2.7")          # not yet: b has not had its round
    a.housekeep()
    clock.advance(2.0)
    b.housekeep()
    assert b.banned("192.0.2.7") and a.banned("192.0.2.7")
    assert b.throttle.bans(clock.seconds()) == [Ban("192.0.2.7", 3, T0, T0 + 300)]
    clock.advance(298.0)                       # it ends everywhere when it ends
    a.housekeep(), b.housekeep()
    assert not a.banned("192.0.2.7") and not b.banned("192.0.2.7")


def test_a_guesser_spreading_attempts_over_the_nodes_is_banned_everywhere(backend):
    a, b, clock = two_nodes(backend)
    guesser = "198.51.100.66"
    assert not a.fail(guesser) and not b.fail(guesser)
    assert not a.fail(guesser) and not b.fail(guesser)   # 2 each: no node alone bans
    a.housekeep()
    b.housekeep()                               # the farm counts 4 >= 3: banned
    assert b.banned(guesser)
    a.housekeep()
    assert a.banned(guesser)


def test_a_lift_on_one_node_ends_the_ban_on_every_node(backend):
    a, b, clock = two_nodes(backend)
    for _ in range(3):
        a.fail("192.0.2.8")
    a.housekeep(), b.housekeep()
    assert b.banned("192.0.2.8")
    # DELETE /v1/security/bans/192.0.2.8 on b: the farm's row, then b's own copy
    assert result(b.bans.lift("192.0.2.8", clock.seconds()))[0] == "192.0.2.8"
    b.throttle.lift("192.0.2.8", clock.seconds())
    assert not b.banned("192.0.2.8") and a.banned("192.0.2.8")
    clock.advance(2.0)
    a.housekeep(), b.housekeep()
    assert not a.banned("192.0.2.8") and not b.banned("192.0.2.8")


def test_a_ban_started_after_the_journal_was_taken_is_not_lifted(backend):
    a, _, clock = two_nodes(backend)
    journal = a.throttle.take_journal()
    for _ in range(3):
        a.fail("192.0.2.10")                   # while the round's exchange is under way
    rows = result(a.bans.exchange(journal.failures, journal.bans, journal.successes,
                                  now=clock.seconds()))
    a.throttle.apply_farm(rows, clock.seconds())
    assert a.banned("192.0.2.10")
    a.housekeep()                              # written in the next round
    assert result(a.bans.bans(clock.seconds()))[0][0] == "192.0.2.10"


def test_a_journal_not_written_is_kept_for_the_next_round():
    throttle = Throttle(**LIMITS, shared=True)
    for _ in range(3):
        throttle.failure("192.0.2.11", T0)
    journal = throttle.take_journal()
    assert len(journal.failures) == 3 and [b.address for b in journal.bans] == ["192.0.2.11"]
    assert not throttle.take_journal()
    throttle.requeue(journal)
    assert throttle.take_journal() == journal


def test_a_single_node_throttle_keeps_no_journal():
    throttle = Throttle(**LIMITS)
    for _ in range(3):
        throttle.failure("192.0.2.12", T0)
    throttle.success("192.0.2.13", T0)
    assert not throttle.take_journal()
