"""The pure pieces of RFC 3262 / RFC 4028: the reliable-1xx machine, RSeq tracking, RAck
and Session-Expires parsing, the negotiation and the session-timer machine."""
from __future__ import annotations

import pytest

from ivr.sip.headers import Headers
from ivr.sip.message import Request, Response
from ivr.sip.prack import (NoPrack, PrackTimer, ReliableProvisional, RSeqTracker, RSeqVerdict,
                           parse_rack)
from ivr.sip.session_timer import (Expired, Negotiated, SendRefresh, SessionTimer,
                                   SessionTimerError, SessionTimerName, TooSmall,
                                   parse_session_expires, refresh_method, uas_check,
                                   uas_negotiate, uac_negotiate)
from ivr.sip.transaction import CancelTimer, Send, StartTimer, TransactionError


def _message(cls, *headers):
    h = Headers()
    for name, value in headers:
        h.add(name, value)
    return Request("INVITE", "sip:a@b", h, b"") if cls is Request else Response(180, None, h, b"")


def test_reliable_provisional_schedule_doubles_uncapped_and_ends_at_64_t1():
    machine = ReliableProvisional(_message(Response, ("RSeq", "7")))
    actions = machine.start()
    assert isinstance(actions[0], Send)
    delays = [actions[1].delay]
    while True:
        actions = machine.timer_fired(machine.current)
        if isinstance(actions[0], NoPrack):
            break
        delays.append(actions[-1].delay)
    assert delays == [0.5, 1, 2, 4, 8, 16, 0.5] and sum(delays) == 32


def test_reliable_provisional_prack_cancels_and_events_out_of_state_raise():
    machine = ReliableProvisional(_message(Response, ("RSeq", "7")))
    machine.start()
    assert machine.prack_received() == [CancelTimer(PrackTimer.RETRANSMIT_1XX)]
    with pytest.raises(TransactionError):
        machine.timer_fired(PrackTimer.RETRANSMIT_1XX)
    assert machine.stop() == []


def test_rseq_tracker():
    tracker = RSeqTracker()
    assert [tracker.check(n) for n in (5, 5, 7, 6, 4)] == [
        RSeqVerdict.PRACK, RSeqVerdict.DUPLICATE, RSeqVerdict.OUT_OF_ORDER, RSeqVerdict.PRACK,
        RSeqVerdict.DUPLICATE]


@pytest.mark.parametrize("value,parsed", [
    ("5 1 INVITE", (5, 1, "INVITE")), ("0 1 INVITE", None), ("5 1", None),
    ("x 1 INVITE", None), ("99999999999 1 INVITE", None), (None, None)])
def test_parse_rack(value, parsed):
    assert parse_rack(value) == parsed


def test_session_expires_parsing_and_422():
    assert parse_session_expires(_message(Request, ("x", "100;refresher=UAS"))).refresher == "uas"
    for bad in ("soon", "100;refresher=me", "-1"):
        with pytest.raises(SessionTimerError):
            parse_session_expires(_message(Request, ("Session-Expires", bad)))
    assert uas_check(_message(Request, ("Session-Expires", "89"))) == TooSmall(90)
    assert uas_check(_message(Request, ("Session-Expires", "100")), min_se=120) == TooSmall(120)
    assert uas_check(_message(Request, ("Session-Expires", "90"))) is None


def test_uas_negotiation():
    no_support = _message(Request, ("Session-Expires", "300"))
    assert uas_negotiate(no_support) == (
        Negotiated(300, True), [("Session-Expires", "300;refresher=uas")])
    support = _message(Request, ("Supported", "timer"), ("Session-Expires", "300"))
    assert uas_negotiate(support) == (
        Negotiated(300, False), [("Session-Expires", "300;refresher=uac"), ("Require", "timer")])
    assert uas_negotiate(_message(Request)) == (None, [])
    assert uas_negotiate(_message(Request), keep=600)[0] == Negotiated(600, True)
    assert uac_negotiate(_message(Response, ("Session-Expires", "90;refresher=uas"))) == \
        Negotiated(90, False)
    assert refresh_method(["INVITE", "UPDATE"]) == "UPDATE"
    assert refresh_method(["INVITE"]) == "INVITE"


def test_session_timer_machine():
    timer = SessionTimer()
    assert timer.negotiated(Negotiated(1800, True)) == [
        StartTimer(SessionTimerName.REFRESH, 900)]
    assert timer.timer_fired(SessionTimerName.REFRESH) == [SendRefresh()]
    assert timer.negotiated(Negotiated(90, False)) == [
        StartTimer(SessionTimerName.EXPIRY, 60)]  # 90 - min(32, 30)
    assert timer.negotiated(Negotiated(1800, False))[-1] == \
        StartTimer(SessionTimerName.EXPIRY, 1768)  # 1800 - 32
    assert timer.timer_fired(SessionTimerName.EXPIRY) == [Expired()]
    assert timer.stop() == []
