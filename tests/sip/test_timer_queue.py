"""TimerQueue: the transaction layer's timers, on a task.Clock."""
import pytest
from twisted.internet import task

from ivr.sip.timer_queue import TimerQueue


def make(start=0.0):
    clock = task.Clock()
    clock.advance(start)
    fired = []
    q = TimerQueue(clock, lambda subject, name: fired.append((clock.seconds(), subject, name)))
    return clock, q, fired


def test_fires_each_timer_at_its_deadline_in_deadline_order_across_delays():
    clock, q, fired = make()
    q.start(32.0, "txn1", "J")
    clock.advance(1.0)
    q.start(5.0, "txn2", "I")       # later start, earlier deadline: a different queue
    q.start(32.0, "txn3", "L")
    q.start(0.5, "txn4", "G")
    clock.pump([0.5] * 80)
    assert fired == [(1.5, "txn4", "G"), (6.0, "txn2", "I"), (32.0, "txn1", "J"),
                     (33.0, "txn3", "L")]
    assert len(q) == 0 and clock.getDelayedCalls() == []


def test_one_reactor_timer_however_many_are_pending():
    clock, q, fired = make()
    for i in range(1000):
        q.start(32.0, i, "J")
        q.start(5.0, i, "I")
    assert len(q) == 2000 and len(clock.getDelayedCalls()) == 1
    clock.advance(5.0)
    assert [s for _t, s, n in fired] == list(range(1000)) and len(clock.getDelayedCalls()) == 1
    clock.advance(27.0)
    assert len(fired) == 2000 and clock.getDelayedCalls() == []


def test_cancel_and_restart_like_a_delayed_call():
    clock, q, fired = make()
    a = q.start(4.0, "a", "H")
    b = q.start(4.0, "b", "H")
    assert a.active()
    a.cancel()
    a.cancel()  # twice is harmless
    assert not a.active() and len(q) == 1
    clock.advance(4.0)
    assert fired == [(4.0, "b", "H")] and not b.active()
    b.cancel()  # after firing: nothing happens
    assert len(q) == 0


def test_cancelling_the_last_pending_timer_leaves_no_reactor_timer():
    clock, q, fired = make()
    t = q.start(32.0, "x", "J")
    assert len(clock.getDelayedCalls()) == 1
    t.cancel()
    assert clock.getDelayedCalls() == [] and len(q) == 0
    q.start(1.0, "y", "K")  # and it starts again
    clock.advance(1.0)
    assert fired == [(1.0, "y", "K")]


def test_a_callback_may_start_and_cancel_timers():
    clock, q, fired = make()
    later = q.start(3.0, "later", "B")

    def fire(subject, name):
        fired.append((clock.seconds(), subject))
        if subject == "first":
            q.start(0.5, "again", "A")  # restarted from inside a firing (Timer A doubling)
            later.cancel()
    q._fire = fire
    q.start(1.0, "first", "A")
    clock.pump([0.25] * 20)
    assert fired == [(1.0, "first"), (1.5, "again")]


def test_a_failing_callback_does_not_lose_the_other_due_timers():
    clock, q, fired = make()

    def fire(subject, name):
        if subject == "bad":
            raise RuntimeError("boom")
        fired.append(subject)
    q._fire = fire
    q.start(1.0, "bad", "J")
    q.start(1.0, "good", "J")
    q.start(2.0, "later", "J")
    clock.advance(1.0)
    clock.advance(1.0)
    assert fired == ["good", "later"]
    assert len(q) == 0


@pytest.mark.parametrize("start", [0.0, 0.3, 1_764_864_000.123])  # task.Clock and epoch times
def test_doubling_restarts_fire_exactly_on_the_clock_even_at_epoch_times(start):
    clock, q, fired = make(start)
    interval = [0.5]

    def fire(subject, name):
        fired.append(clock.seconds() - start)
        interval[0] = min(2 * interval[0], 4.0)
        if len(fired) < 8:
            q.start(interval[0], subject, name)
    q._fire = fire
    q.start(0.5, "txn", "E")
    for _ in range(200):
        clock.advance(0.125)
    assert fired == pytest.approx([0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5], abs=1e-6)
    assert clock.getDelayedCalls() == []
