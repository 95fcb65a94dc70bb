"""The UAS core's 2xx retransmission (RFC 3261 13.3.1.4)."""
from __future__ import annotations

import pytest

from ivr.sip.message import Response
from ivr.sip.timers import TimerConfig, TimerName
from ivr.sip.transaction import CancelTimer, Send, StartTimer, TransactionError
from ivr.sip.uas_2xx import NoAck, RetransmitState, TwoXXRetransmitter

R, W = TimerName.RETRANSMIT_2XX, TimerName.ACK_WAIT_2XX


def test_schedule_doubles_capped_at_t2_then_no_ack_with_one_timer():
    ok = Response(200)
    machine = TwoXXRetransmitter(ok)
    assert machine.start() == [Send(ok), StartTimer(R, 0.5)]
    sends, now, timer = [0.0], 0.0, StartTimer(R, 0.5)
    while timer.name is R:
        now += timer.delay
        actions = machine.timer_fired(R)
        assert actions[0] == Send(ok) and len(actions) == 2
        sends.append(now)
        timer = actions[1]
    assert sends == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert timer == StartTimer(W, 0.5)  # the last interval ends exactly at 64*T1 = 32
    assert machine.timer_fired(W) == [NoAck()]
    assert machine.state is RetransmitState.GAVE_UP and machine.done
    assert machine.ack_received() == []  # a late ACK is harmless
    with pytest.raises(TransactionError):
        machine.timer_fired(R)


def test_ack_stops_and_repeats_absorbed():
    ok = Response(200)
    machine = TwoXXRetransmitter(ok, TimerConfig(t1=0.1))
    assert machine.start() == [Send(ok), StartTimer(R, 0.1)]
    assert machine.timer_fired(R) == [Send(ok), StartTimer(R, 0.2)]
    assert machine.ack_received() == [CancelTimer(R)]
    assert machine.ack_received() == []
    assert machine.state is RetransmitState.ACKED


def test_ack_during_final_wait_cancels_it():
    ok = Response(202)
    machine = TwoXXRetransmitter(ok, TimerConfig(t1=1.0, t2=64.0))
    assert machine.start() == [Send(ok), StartTimer(R, 1.0)]
    delays = [machine.timer_fired(R)[1].delay for _ in range(5)]
    assert delays == [2.0, 4.0, 8.0, 16.0, 32.0]  # sent at 0, 1, 3, 7, 15, 31
    assert machine.timer_fired(R) == [Send(ok), StartTimer(W, 1.0)]  # 63 + 1 = 64*T1
    assert machine.current is W
    assert machine.ack_received() == [CancelTimer(W)]


def test_reliable_only_waits_and_non_2xx_rejected():
    ok = Response(200)
    machine = TwoXXRetransmitter(ok, reliable=True)
    assert machine.start() == [Send(ok), StartTimer(W, 32.0)]
    assert machine.timer_fired(W) == [NoAck()]
    with pytest.raises(TransactionError):
        TwoXXRetransmitter(Response(486))
