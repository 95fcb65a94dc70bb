"""Every state table goes through the one helper (ivr/fsm.py): an event a machine's state
does not allow raises a subclass of ivr.fsm.TransitionError naming the machine, whatever
the machine (the INVITE session has its own tests)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from twisted.internet.task import Clock

from ivr.api.click_to_call import Input, InvalidTransition, Request as C2CRequest, Session
from ivr.fsm import TransitionError
from ivr.queue import AgentStateError, Outcome, OutcomeKind, QueueConfig, QueueEngine
from ivr.queue.agents import Agent, AgentEvent
from ivr.rtp.dtmf import DtmfReceiver, _Input as DtmfInput
from ivr.sip.dialog import Dialog, DialogError
from ivr.sip.message import Request, Response
from ivr.sip.prack import ReliableProvisional
from ivr.sip.session_timer import SessionTimer, SessionTimerName
from ivr.sip.timers import TimerName
from ivr.sip.transaction import (InviteClientTransaction, TransactionError,
                                 UnexpectedMessage)
from ivr.sip.uas_2xx import TwoXXRetransmitter


def _invite() -> Request:
    request = Request("INVITE", "sip:bob@example.com")
    for name, value in (("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-t"),
                        ("From", "<sip:alice@example.com>;tag=a"),
                        ("To", "<sip:bob@example.com>"), ("Call-ID", "c1"),
                        ("CSeq", "1 INVITE"), ("Contact", "<sip:alice@127.0.0.1>")):
        request.headers.add(name, value)
    return request


def _provisional() -> Response:
    response = Response(183)
    response.headers.add("RSeq", "1")
    return response


def _transaction_misuse():
    InviteClientTransaction(_invite()).timer_fired(TimerName.A)  # never started


def _transaction_peer():
    InviteClientTransaction(_invite()).receive_response(Response(180))  # before start


def _queue_entry():
    engine = QueueEngine(Clock(), SimpleNamespace(ring=None),
                         [QueueConfig(name="q", agents=("2001",))],
                         is_reachable=lambda agent: False)
    entry = engine.enqueue("q", "caller", join_empty=False)  # refused at once
    entry.end(Outcome(OutcomeKind.TIMEOUT))


def _click_to_call():
    clock = Clock()
    session = Session("c", C2CRequest(agent="a", customer="+12025550143"), None, clock)
    session._fire(Input.CUSTOMER_ANSWERED)


MISUSES = {
    "transaction (our misuse)": (_transaction_misuse, TransactionError, "InviteClientTransaction"),
    "transaction (the peer's)": (_transaction_peer, UnexpectedMessage, "InviteClientTransaction"),
    "2xx retransmitter": (lambda: TwoXXRetransmitter(Response(200)).ack_received(),
                          TransactionError, "2xx retransmitter"),
    "reliable 1xx": (lambda: ReliableProvisional(_provisional()).prack_received(),
                     TransactionError, "reliable 1xx"),
    "session timer": (lambda: SessionTimer().timer_fired(SessionTimerName.EXPIRY),
                      TransactionError, "session timer"),
    "dialog": (lambda: (lambda d: (d.terminate(), d.confirm()))(
        Dialog.from_uas(_invite(), "t", "")), DialogError, "confirm"),
    "RFC 4733 receiver": (lambda: DtmfReceiver()._go(DtmfInput.END), TransitionError,
                          "RFC 4733 receiver"),
    "queue agent": (lambda: Agent("2001").handle(AgentEvent.ANSWER), AgentStateError,
                    "agent 2001"),
    "queue entry": (_queue_entry, TransitionError, "queue entry q#1"),
    "click-to-call": (_click_to_call, InvalidTransition, "click-to-call c"),
}


@pytest.mark.parametrize("name", sorted(MISUSES))
def test_an_event_the_state_does_not_allow_is_a_transition_error(name):
    misuse, error, named = MISUSES[name]
    with pytest.raises(error, match=named) as info:
        misuse()
    assert isinstance(info.value, TransitionError)
