"""Queue engine behaviour with a fake clock: hand-over order, skips, wrap-up, timeouts."""
import pytest

from ivr.queue import EntryState, OutcomeKind, QueueConfig, UnknownQueueError

from tests.queue.fakes import make, outcomes


def test_two_callers_two_agents_handed_over_in_order():
    clock, dialer, engine = make(QueueConfig("sales", ("a", "b"), strategy="round-robin"))
    e1 = engine.enqueue("sales", "caller-1")
    clock.advance(1)
    e2 = engine.enqueue("sales", "caller-2")
    got1, got2 = outcomes(e1), outcomes(e2)
    # caller 1 is offered first; caller 2 waits behind a ringing head (no autofill)
    assert [(a.agent, a.entry.caller_id) for a in dialer.pending()] == [("a", "caller-1")]
    assert e2.position == 2 and e2.ringing == ()
    clock.advance(2)
    dialer.last("a").answer()
    assert got1[0].kind is OutcomeKind.ANSWERED and got1[0].agent == "a" and got1[0].wait == 3
    assert [(a.agent, a.entry.caller_id) for a in dialer.pending()] == [("b", "caller-2")]
    assert e2.position == 1
    clock.advance(4)
    dialer.last("b").answer()
    assert got2[0].agent == "b" and got2[0].wait == 6
    assert engine.waiting("sales") == []


def test_autofill_rings_second_caller_in_parallel_in_order():
    clock, dialer, engine = make(QueueConfig("sales", ("a", "b"), strategy="round-robin",
                                             autofill=True))
    e1 = engine.enqueue("sales", "caller-1")
    e2 = engine.enqueue("sales", "caller-2")
    assert [(a.agent, a.entry.caller_id) for a in dialer.pending()] == [
        ("a", "caller-1"), ("b", "caller-2")]
    dialer.last("a").answer()
    dialer.last("b").answer()
    assert (e1.outcome.agent, e2.outcome.agent) == ("a", "b")


def test_agent_who_does_not_answer_is_skipped_then_retried_after_skip_period():
    clock, dialer, engine = make(QueueConfig("sales", ("a", "b"), strategy="round-robin",
                                             ring_timeout=10, skip_after_no_answer=30,
                                             wrapup=0))
    e1 = engine.enqueue("sales", "c1")
    clock.advance(10)                            # a never answers
    assert dialer.last("a").cancelled
    assert engine.agent_status("a")["skipped_for"] == 30
    dialer.last("b").answer()
    assert e1.outcome.agent == "b"
    # b busy, a skipped until t=40: the next caller waits, nobody is rung
    e2 = engine.enqueue("sales", "c2")
    clock.advance(29)
    assert dialer.pending() == [] and e2.state is EntryState.WAITING
    clock.advance(1)                             # t=40: a is offered again
    assert [a.agent for a in dialer.pending()] == ["a"]
    assert dialer.last("a").started == 40
    dialer.last("a").answer()
    assert e2.outcome.agent == "a" and e2.outcome.wait == 30


def test_skipped_agent_not_offered_while_another_is_free():
    clock, dialer, engine = make(strategy="round-robin", skip_after_no_answer=60, wrapup=0)
    engine.enqueue("sales", "c1")
    dialer.last("a").reject()
    dialer.last("b").answer()
    engine.call_ended("b")
    e2 = engine.enqueue("sales", "c2")
    assert [a.agent for a in dialer.pending()] == ["c"]
    dialer.last("c").reject()                    # c skipped too; b is next (wraps past a)
    assert [a.agent for a in dialer.pending()] == ["b"]
    assert e2.state is EntryState.WAITING


def test_wrapup_delays_availability_exactly():
    clock, dialer, engine = make(QueueConfig("q", ("a",), wrapup=7))
    e1 = engine.enqueue("q", "c1")
    dialer.last("a").answer()
    clock.advance(20)
    e2 = engine.enqueue("q", "c2")
    assert engine.call_ended("a") is True
    assert engine.call_ended("a") is False       # idempotent
    assert engine.agent_status("a")["state"] == "wrap-up"
    clock.advance(6.999)
    assert dialer.pending() == []
    clock.advance(0.001)
    assert [a.agent for a in dialer.pending()] == ["a"]
    assert dialer.last("a").started == 27
    assert e1.outcome.agent == "a" and e2.state is EntryState.WAITING


def test_max_wait_timeout_at_exact_time_cancels_ringing():
    clock, dialer, engine = make(QueueConfig("q", ("a",), max_wait=45, ring_timeout=60))
    entry = engine.enqueue("q", "c1")
    got = outcomes(entry)
    clock.advance(44.9)
    assert got == []
    clock.advance(0.1)
    assert got[0].kind is OutcomeKind.TIMEOUT and got[0].wait == 45 and got[0].agent is None
    assert dialer.last("a").cancelled
    assert engine.agent_status("a")["state"] == "available"
    assert engine.agent_status("a")["skipped_for"] == 0     # not the agent's fault
    assert entry.position is None and engine.waiting("q") == []


def test_abandon_removes_and_updates_positions():
    clock, dialer, engine = make(QueueConfig("q", ("a",)))
    entries = [engine.enqueue("q", f"c{i}") for i in range(4)]
    assert [e.position for e in entries] == [1, 2, 3, 4]
    got = outcomes(entries[1])
    clock.advance(12)
    assert entries[1].abandon() is True
    assert entries[1].abandon() is False
    assert got[0].kind is OutcomeKind.ABANDONED and got[0].wait == 12
    assert [e.position for e in entries] == [1, None, 2, 3]
    # abandoning the ringing head frees the agent for the next caller at once
    head_attempt = dialer.last("a")
    entries[0].abandon()
    assert head_attempt.cancelled
    assert dialer.last("a").entry is entries[2]
    assert [e.position for e in entries] == [None, None, 1, 2]
    assert engine.queue_status("q")["abandoned"] == 2


def test_position_and_ewt_announcements_on_schedule():
    clock, dialer, engine = make(QueueConfig("q", ("a", "b"), strategy="round-robin",
                                             announce_position_every=30, wrapup=10,
                                             max_wait=None, ring_timeout=60))
    # history: two calls of 50 s talk + 10 s wrap-up => H = 60 s, n = 2 agents
    engine.enqueue("q", "warm1")
    dialer.last("a").answer()
    engine.enqueue("q", "warm2")
    dialer.last("b").answer()
    clock.advance(50)
    engine.call_ended("a")
    engine.call_ended("b")                      # both in wrap-up until t=60
    callers = [engine.enqueue("q", f"c{i}") for i in range(3)]
    heard = {i: [] for i in range(3)}
    for i, e in enumerate(callers):
        e.on_announce(lambda pos, ewt, i=i: heard[i].append((clock.seconds(), pos, ewt)))
    assert [e.estimated_wait for e in callers] == [30.0, 60.0, 90.0]   # pos * 60 / 2
    clock.advance(10)                           # t=60: c0 rings a, b is free
    assert [(a.agent, a.entry.caller_id) for a in dialer.pending()] == [("a", "c0")]
    assert [e.estimated_wait for e in callers] == [0.0, 0.0, 30.0]
    clock.advance(19)
    assert heard == {0: [], 1: [], 2: []}
    clock.advance(1)                            # t=80: 30 s after joining
    assert heard == {0: [(80, 1, 0.0)], 1: [(80, 2, 0.0)], 2: [(80, 3, 30.0)]}
    dialer.last("a").answer()                   # c0 answered; c1 rings b
    clock.advance(30)                           # t=110
    assert heard[0] == [(80, 1, 0.0)]           # no announcements once answered
    assert heard[1][1:] == [(110, 1, 0.0)]
    assert heard[2][1:] == [(110, 2, 30.0)]
    clock.advance(30)                           # t=140: b's ring timed out, b skipped
    assert dialer.pending() == [] and heard[2][2:] == [(140, 2, 60.0)]


def test_ewt_unknown_before_any_handled_call():
    clock, dialer, engine = make(QueueConfig("q", ("a",)))
    e1 = engine.enqueue("q", "c1")
    e2 = engine.enqueue("q", "c2")
    assert e1.estimated_wait == 0.0             # being rung: no wait ahead
    assert e2.estimated_wait is None            # no handled call yet to average
    engine2 = make(QueueConfig("q", ("a",)), reachable=set())[2]
    assert engine2.estimated_wait(engine2.enqueue("q", "x")) is None


def test_agent_busy_in_queue_a_not_offered_by_queue_b():
    clock, dialer, engine = make(QueueConfig("A", ("shared", "x")),
                                 QueueConfig("B", ("shared", "y"), strategy="round-robin"),
                                 )
    ea = engine.enqueue("A", "ca")                # rings shared and x
    assert sorted(a.agent for a in dialer.pending()) == ["shared", "x"]
    eb = engine.enqueue("B", "cb")
    assert [a.agent for a in dialer.pending() if a.entry is eb] == ["y"]
    dialer.last("y").reject()                     # y skipped; shared is ringing for A
    assert [a.agent for a in dialer.pending() if a.entry is eb] == []
    dialer.last("shared").answer()                # on call for A: still busy for B
    assert ea.outcome.agent == "shared" and dialer.pending() == []
    engine.call_ended("shared")
    clock.advance(5)                              # A's wrap-up
    assert [a.agent for a in dialer.pending()] == ["shared"]
    dialer.last("shared").answer()
    assert eb.outcome.agent == "shared"


def test_unreachable_agents_are_skipped_and_offered_when_they_register():
    reachable = {"b"}
    clock, dialer, engine = make(reachable=reachable, strategy="round-robin")
    e1 = engine.enqueue("sales", "c1")
    assert dialer.rung() == ["b"]
    dialer.last("b").answer()
    e2 = engine.enqueue("sales", "c2")
    assert dialer.pending() == [] and engine.agent_status("a")["state"] == "logged-out"
    reachable.add("a")
    engine.agent_changed("a")
    assert [a.agent for a in dialer.pending()] == ["a"]
    assert e1.outcome.agent == "b" and e2.state is EntryState.WAITING


def test_no_agents_logged_in_refused_at_once_when_configured():
    clock, dialer, engine = make(QueueConfig("q", ("a", "b"), join_empty=False),
                                 reachable=set())
    entry = engine.enqueue("q", "c1")
    got = outcomes(entry)
    assert got[0].kind is OutcomeKind.NO_AGENTS and entry.state is EntryState.REFUSED
    assert engine.waiting("q") == [] and dialer.attempts == []
    # default join_empty=True: callers wait for an agent to log in
    clock, dialer, engine = make(QueueConfig("q", ("a",)), reachable=set())
    assert engine.enqueue("q", "c1").state is EntryState.WAITING


def test_paused_agents_do_not_count_as_logged_in():
    clock, dialer, engine = make(QueueConfig("q", ("a",), join_empty=False))
    engine.pause("a")
    assert engine.enqueue("q", "c").outcome.kind is OutcomeKind.NO_AGENTS
    engine.pause("a", False)
    assert engine.enqueue("q", "c").state is EntryState.WAITING


def test_leave_when_empty_sends_waiting_callers_away():
    reachable = {"a"}
    clock, dialer, engine = make(QueueConfig("q", ("a",), leave_when_empty=True),
                                 reachable=reachable)
    entry = engine.enqueue("q", "c")
    clock.advance(15)                     # rings out, a skipped
    reachable.clear()
    clock.advance(3)
    engine.agent_changed("a")
    assert entry.outcome.kind is OutcomeKind.NO_AGENTS and entry.outcome.wait == 18


def test_full_queue_refuses():
    clock, dialer, engine = make(QueueConfig("q", ("a",), max_callers=2))
    e = [engine.enqueue("q", f"c{i}") for i in range(3)]
    assert [x.state for x in e] == [EntryState.WAITING, EntryState.WAITING, EntryState.REFUSED]
    assert e[2].outcome.kind is OutcomeKind.FULL
    e[1].abandon()
    assert engine.enqueue("q", "c3").state is EntryState.WAITING


def test_priority_goes_ahead_fifo_within_priority():
    clock, dialer, engine = make(QueueConfig("q", ("a",)))
    engine.pause("a")
    e = [engine.enqueue("q", "low1"), engine.enqueue("q", "vip1", priority=5),
         engine.enqueue("q", "low2"), engine.enqueue("q", "vip2", priority=5)]
    assert [x.caller_id for x in engine.waiting("q")] == ["vip1", "vip2", "low1", "low2"]
    assert e[0].position == 3


def test_dialer_failures_count_as_no_answer():
    class Broken:
        def ring(self, agent, entry):
            raise RuntimeError("no route")
    from twisted.internet.task import Clock
    from ivr.queue import QueueEngine
    clock = Clock()
    engine = QueueEngine(clock, Broken(), [QueueConfig("q", ("a", "b"))])
    entry = engine.enqueue("q", "c")
    assert entry.state is EntryState.WAITING
    assert engine.agent_status("a")["skipped_for"] == 30
    assert engine.agent_status("b")["skipped_for"] == 30


def test_synchronous_answer_and_errback():
    clock, dialer, engine = make(strategy="round-robin")
    dialer.immediate["a"] = False               # busy at once
    dialer.immediate["b"] = "leg"               # answers at once
    entry = engine.enqueue("sales", "c")
    assert entry.outcome.agent == "b" and entry.outcome.answer == "leg"
    assert engine.agent_status("a")["skipped_for"] == 30


def test_callbacks_may_reenter_the_engine():
    clock, dialer, engine = make(QueueConfig("q", ("a",), wrapup=0))
    first = engine.enqueue("q", "c1")
    second = []
    first.result.addCallback(lambda o: (engine.call_ended(o.agent),
                                        second.append(engine.enqueue("q", "c2"))))
    dialer.last("a").answer()
    assert second[0].ringing == ("a",)


def test_unknown_queue_and_reconfigure():
    clock, dialer, engine = make(QueueConfig("q", ("a",)))
    with pytest.raises(UnknownQueueError):
        engine.enqueue("nope", "c")
    waiting = engine.enqueue("q", "c1")
    engine.configure([QueueConfig("r", ("a",))])
    with pytest.raises(UnknownQueueError):
        engine.enqueue("q", "c2")
    dialer.last("a").answer()                    # the old caller is still served
    assert waiting.outcome.agent == "a"
