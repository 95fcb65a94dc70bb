"""The queue engine's farm mode (ivr/queue/farm.py): two nodes, each with its own engine and
dialer on one task.Clock, sharing the real queue state (ivr/store/queue_state.py) on one
SQLite database (PostgreSQL adds the row locks; tests/store/test_queue_state.py covers
those): callers answered in farm-wide arrival order by the node that holds them, an agent
offered one call at a time across nodes, positions counting both nodes' callers."""
from __future__ import annotations

from twisted.internet.task import Clock

from ivr.queue import OutcomeKind, QueueConfig
from ivr.queue.farm import FarmQueueEngine
from ivr.store.db import Database
from ivr.store.queue_state import QueueState

from .fakes import FakeDialer

POLL = 0.5


class Node:
    def __init__(self, name, clock, db, agents, reachable, **cfg):
        self.dialer = FakeDialer(clock)
        self.state = QueueState(db, name)
        config = QueueConfig(name="support", agents=agents, **cfg)
        self.engine = FarmQueueEngine(clock, self.dialer, [config], shared=self.state,
                                      poll=POLL, is_reachable=lambda a: a in reachable)


def farm(tmp_path, agents=("2001",), **cfg):
    clock = Clock()
    clock.advance(1000)
    db = Database(tmp_path / "farm.sqlite3", threaded=False)
    reachable = set(agents)
    cfg.setdefault("announce_position_every", None)
    a = Node("a", clock, db, list(agents), reachable, **cfg)
    b = Node("b", clock, db, list(agents), reachable, **cfg)
    return clock, a, b, reachable


def pending(*nodes):
    return [(n, att) for n in nodes for att in n.dialer.pending()]


def test_the_oldest_caller_of_the_farm_is_answered_first_by_the_node_holding_it(tmp_path):
    clock, a, b, reachable = farm(tmp_path, wrapup=3.0)
    reachable.clear()                                         # nobody logged in yet
    clock.advance(POLL)
    first = b.engine.enqueue("support", "+15550001", join_empty=True)
    clock.advance(1.0)
    second = a.engine.enqueue("support", "+15550002", join_empty=True)
    assert (first.position, second.position) == (1, 2)       # A counts B's caller
    reachable.add("2001")
    clock.advance(POLL)
    [(node, ring)] = pending(a, b)
    assert node is b and ring.entry is first                 # B rings for its caller
    clock.advance(POLL * 4)
    assert len(pending(a, b)) == 1                           # never a second offer
    ring.answer("leg-1")
    assert first.outcome.kind is OutcomeKind.ANSWERED and first.outcome.agent == "2001"
    clock.advance(POLL)
    assert second.position == 1 and pending(a, b) == []      # the agent is busy
    b.engine.call_ended("2001")
    clock.advance(2.5)
    assert pending(a, b) == []                               # wrap-up, farm-wide
    clock.advance(1.0)
    [(node, ring)] = pending(a, b)
    assert node is a and ring.entry is second
    ring.answer("leg-2")
    assert second.outcome.kind is OutcomeKind.ANSWERED


def test_an_agent_is_offered_one_call_at_a_time_across_nodes(tmp_path):
    clock, a, b, _ = farm(tmp_path, agents=("2001", "2002"))
    callers = [(a if i % 2 else b).engine.enqueue("support", f"+1555000{i}")
               for i in range(4)]
    clock.advance(POLL)
    clock.advance(POLL)          # A's head caller became the farm's head during B's round
    rings = pending(a, b)
    assert sorted(r.agent for _, r in rings) == ["2001", "2002"]
    assert {r.entry for _, r in rings} == set(callers[:2])   # the two oldest
    for _ in range(6):
        clock.advance(POLL)
        assert len(pending(a, b)) == 2
    assert [c.position for c in callers[2:]] == [1, 2]


def test_a_missed_ring_keeps_the_callers_place_and_rests_the_agent(tmp_path):
    clock, a, b, _ = farm(tmp_path, agents=("2001", "2002"), skip_after_no_answer=30.0)
    first = a.engine.enqueue("support", "+15550001")
    second = b.engine.enqueue("support", "+15550002")
    clock.advance(POLL)
    by_caller = {r.entry: r for _, r in pending(a, b)}
    agent_of_first = by_caller[first].agent
    by_caller[first].reject()
    clock.advance(POLL)
    # the first caller is offered the other agent once that one is free; the one who
    # missed is not offered anything for 30 s
    by_caller[second].answer("leg")
    b.engine.call_ended(by_caller[second].agent)
    clock.advance(5.0 + POLL)                                 # the default 5 s wrap-up
    [(node, ring)] = pending(a, b)
    assert node is a and ring.entry is first and ring.agent != agent_of_first
    ring.reject()                                             # both agents rest now
    clock.advance(23.0)
    assert pending(a, b) == [] and first.position == 1
    clock.advance(POLL * 3)                                   # 30 s after the first miss
    [(node, ring)] = pending(a, b)
    assert ring.entry is first and ring.agent == agent_of_first


def test_a_caller_who_hangs_up_leaves_the_farms_line(tmp_path):
    clock, a, b, reachable = farm(tmp_path)
    reachable.clear()                                         # agent away
    clock.advance(POLL)
    first = a.engine.enqueue("support", "+15550001", join_empty=True)
    second = b.engine.enqueue("support", "+15550002", join_empty=True)
    clock.advance(POLL)
    assert second.position == 2 and pending(a, b) == []
    first.abandon()
    clock.advance(POLL)
    assert second.position == 1
    reachable.add("2001")                                     # back: present again
    clock.advance(POLL)
    [(node, ring)] = pending(a, b)
    assert node is b and ring.entry is second


def test_timeouts_leave_and_the_line_moves_on(tmp_path):
    clock, a, b, reachable = farm(tmp_path, max_wait=5.0)
    reachable.clear()
    clock.advance(POLL)
    first = a.engine.enqueue("support", "+15550001", join_empty=True)
    clock.advance(3.0)
    second = b.engine.enqueue("support", "+15550002", join_empty=True)
    clock.advance(2.0)
    assert first.outcome.kind is OutcomeKind.TIMEOUT
    clock.advance(POLL)
    assert second.position == 1
    reachable.add("2001")
    clock.advance(POLL)
    [(node, ring)] = pending(a, b)
    assert node is b and ring.entry is second


def test_a_database_outage_is_not_logged_again_every_round(caplog):
    """The store logs an outage once; the farm queue's rounds (positions every 0.5 s)
    fail with it meanwhile and must not repeat it.  Other failures are still warned."""
    import logging

    from twisted.python.failure import Failure

    from ivr.queue.farm import _logged
    from ivr.store.db import StoreUnavailable

    with caplog.at_level(logging.DEBUG, logger="ivr.queue.farm"):
        for _ in range(3):
            _logged("positions in support")(Failure(StoreUnavailable("the database is unreachable")))
        _logged("matching in support")(Failure(RuntimeError("deadlock detected")))
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["queue (farm): matching in support failed: deadlock detected"]
