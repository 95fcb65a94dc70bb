"""The digit buffer of a call leg (ivr/call/digits.py) on a fake clock."""
from __future__ import annotations

import pytest
from twisted.internet import task

from ivr.call.digits import DigitBuffer
from ivr.call.interface import CallEnded


def results(d):
    out = []
    d.addBoth(out.append)
    return out


@pytest.fixture
def clock():
    return task.Clock()


def test_typed_ahead_digits_come_out_in_order(clock):
    buf = DigitBuffer(clock)
    for digit, mode in (("1", "rfc4733"), ("#", "info"), ("A", "inband")):
        assert buf.push(digit, mode)
    assert [results(buf.next_digit(5))[0] for _ in range(3)] == ["1", "#", "A"]
    assert buf.by_mode == {"rfc4733": 1, "info": 1, "inband": 1}
    assert clock.getDelayedCalls() == []  # nothing waited


def test_next_digit_times_out_with_none_exactly_on_time(clock):
    buf = DigitBuffer(clock)
    got = results(buf.next_digit(3.0))
    clock.advance(2.999)
    assert got == []
    clock.advance(0.001)
    assert got == [None]
    buf.push("7", "info")  # a digit after the timeout is kept for the next wait
    assert results(buf.next_digit(3.0)) == ["7"]


def test_a_digit_ends_the_wait_and_cancels_its_timer(clock):
    buf = DigitBuffer(clock)
    got = results(buf.next_digit(3.0))
    clock.advance(1.0)
    buf.push("5", "rfc4733")
    assert got == ["5"]
    assert clock.getDelayedCalls() == []
    assert buf.first() is None  # handed to the waiter, not buffered as well


def test_what_is_not_a_digit_is_ignored_and_not_counted(clock):
    seen = []
    buf = DigitBuffer(clock, observe=lambda d, m: seen.append((d, m)))
    assert not buf.push("x", "info")
    assert not buf.push("", "info")
    assert not buf.push("5", "carrier-pigeon")
    assert seen == [] and buf.first() is None
    assert buf.by_mode == {"rfc4733": 0, "info": 0, "inband": 0}


def test_observer_then_listeners_then_waiter_then_barge_in(clock):
    order = []
    buf = DigitBuffer(clock, observe=lambda d, m: order.append(("observe", d, m)))
    listener = lambda d: order.append(("listener", d))  # noqa: E731
    buf.add_listener(listener)
    buf.next_digit(5).addCallback(lambda d: order.append(("waiter", d)))
    buf.barge_in = lambda d: order.append(("barge_in", d))
    buf.push("9", "info")
    assert order == [("observe", "9", "info"), ("listener", "9"), ("waiter", "9"),
                     ("barge_in", "9")]
    buf.remove_listener(listener)
    buf.remove_listener(listener)  # removing twice is harmless
    buf.push("8", "info")
    assert ("listener", "8") not in order
    assert buf.first() == "8"  # no waiter: a barging-in digit stays for the next gather


def test_flush_forgets_typed_ahead_digits(clock):
    buf = DigitBuffer(clock)
    buf.push("1", "info")
    buf.push("2", "info")
    buf.flush()
    got = results(buf.next_digit(1.0))
    clock.advance(1.0)
    assert got == [None]


def test_close_fails_the_wait_and_stops_its_timer(clock):
    buf = DigitBuffer(clock)
    got = results(buf.next_digit(10.0))
    buf.close("remote-bye")
    assert len(got) == 1 and got[0].check(CallEnded) and str(got[0].value) == "remote-bye"
    assert clock.getDelayedCalls() == []
    assert not buf.push("1", "info")
    assert buf.by_mode["info"] == 0


def test_after_close_buffered_digits_still_come_out_then_call_ended(clock):
    buf = DigitBuffer(clock)
    buf.push("4", "rfc4733")
    buf.close("normal")
    assert results(buf.next_digit(1.0)) == ["4"]
    failed = results(buf.next_digit(1.0))
    assert failed[0].check(CallEnded)
    assert clock.getDelayedCalls() == []
