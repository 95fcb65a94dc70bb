"""The INVITE session as a table-driven machine (ivr/sip/session_table.py).

Our own misuse (a call the state does not allow) raises SessionError and changes
nothing; the peer's misuse gets the RFC's answer (481, 491, 500 with Retry-After) or is
dropped; full UAS and UAC calls walk exactly the rows they should.  Pure sessions run
against a recording stand-in for the UA, pairs against the in-memory pair of
test_ua_pair, all on task.Clock.
"""
from __future__ import annotations

import ast
import inspect

import pytest
from twisted.internet import task

from tests.sip.test_ua_pair import ANSWER, HOLD, Pair

from ivr.sip import session as session_module
from ivr.sip import session_table
from ivr.sip.dialog import Dialog
from ivr.sip.message import Request, Response, make_response
from ivr.sip.session import InviteSession, Role, SessionError, SessionState
from ivr.sip.session_table import LOCAL, TABLE, Event, Where
from ivr.sip.timers import TimerConfig
from ivr.sip.transport import Destination, Source

S = SessionState
SOURCE = Source("UDP", "127.0.0.1", 5070)
OFFER = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


class Layer:
    def __init__(self) -> None:
        self.responses: list[tuple[object, Response]] = []
        self.requests: list[Request] = []

    def respond(self, txn, response: Response) -> None:
        self.responses.append((txn, response))

    def send_request(self, request, dest, on_response=None, on_timeout=None,
                     on_transport_error=None):
        self.requests.append(request)

    def retransmit_2xx(self, txn, response, on_no_ack):
        self.respond(txn, response)
        return _Retransmission()


class _Retransmission:
    def ack_received(self) -> None:
        pass


class FakeUA:
    """What a session uses of its UserAgent, recording what it is asked to send."""

    host, port = "127.0.0.1", 5060
    min_se, session_expires = 90, 1800

    def __init__(self) -> None:
        self.clock = task.Clock()
        self.timers = TimerConfig()
        self.layer = Layer()
        self.transport = self.layer
        self.pending_uas: dict = {}
        self.forgotten: list = []

    def contact(self, transport="UDP"):
        return "<sip:ivr@127.0.0.1:5060>"

    def via(self, transport="UDP"):
        return "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfake"

    def register_session(self, session) -> None:
        pass

    def forget_session(self, session) -> None:
        self.forgotten.append(session)


class Listener:
    def __init__(self) -> None:
        self.events: list = []

    def __getattr__(self, name):
        if not name.startswith("on_"):
            raise AttributeError(name)
        return lambda session, *args: self.events.append((name, *args)) or (
            ANSWER if name == "on_offer" else None)


def request(method: str, cseq: int = 1, to_tag: str | None = None, body: bytes = b"",
            extra=()) -> Request:
    headers = [("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK" + method + str(cseq)),
               ("From", "<sip:alice@127.0.0.1>;tag=alice"),
               ("To", "<sip:ivr@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")),
               ("Call-ID", "table-call"), ("CSeq", f"{cseq} {method}"),
               ("Contact", "<sip:alice@127.0.0.1:5070>"), *extra]
    if body:
        headers.append(("Content-Type", "application/sdp"))
    message = Request(method, "sip:ivr@127.0.0.1", body=body)
    for name, value in headers:
        message.headers.add(name, value)
    return message


def uas(state: SessionState = S.INCOMING) -> InviteSession:
    """A UAS session for one INVITE, put in ``state``."""
    session = InviteSession.incoming(FakeUA(), "invite-txn", request("INVITE"), SOURCE)
    session.listener = Listener()
    session.state = state
    return session


def uac(state: SessionState = S.CALLING, dialog: bool = True) -> InviteSession:
    """A UAC session whose INVITE went out, put in ``state`` (with its dialog from a 180
    unless ``dialog`` is false)."""
    invite = request("INVITE", body=OFFER)
    session = InviteSession.outgoing(FakeUA(), invite, Destination("UDP", "127.0.0.1", 5070),
                                     Listener(), None)
    if dialog and state is not S.CALLING:
        session.dialog = Dialog.from_uac(invite, make_response(invite, 180, to_tag="bob"))
    session.state = state
    return session


#: Each of our own events, as the call layer causes it.
LOCAL_CALLS = {
    Event.RING: lambda s: s.ring(),
    Event.ACCEPT: lambda s: s.accept(ANSWER),
    Event.REJECT: lambda s: s.reject(486),
    Event.HANG_UP: lambda s: s.bye(),
    Event.CANCEL: lambda s: s.cancel(),
    Event.REINVITE: lambda s: s.reinvite(HOLD),
    Event.SEND_REQUEST: lambda s: s.send_in_dialog("INFO"),
}

MISUSES = [(role, state, event) for role in Role for state in SessionState
           for event in LOCAL_CALLS if (Where(role, state), event) not in TABLE
           and not (role is Role.UAS and state is S.CALLING)
           and not (role is Role.UAC and state in (S.INCOMING, S.WAIT_ACK))]


def make(role: Role, state: SessionState) -> InviteSession:
    return uas(state) if role is Role.UAS else uac(state)


# -- our own misuse raises ------------------------------------------------------------------


@pytest.mark.parametrize("role, state, event", MISUSES,
                         ids=[f"{r.value}-{s.value}-{e.name}" for r, s, e in MISUSES])
def test_every_call_the_state_does_not_allow_raises_and_changes_nothing(role, state, event):
    session = make(role, state)
    with pytest.raises(SessionError, match="not allowed in state"):
        LOCAL_CALLS[event](session)
    assert session.state is state
    assert session.ua.layer.responses == [] and session.ua.layer.requests == []
    assert session.listener.events == []


def test_the_misuses_cover_what_the_old_session_ignored():
    """What used to return silently: a second answer, a ring after it, a reject of an
    answered call, a CANCEL from the callee, a re-INVITE of an ended call."""
    ignored = {(Role.UAS, S.WAIT_ACK, Event.ACCEPT), (Role.UAS, S.CONFIRMED, Event.RING),
               (Role.UAS, S.CONFIRMED, Event.REJECT), (Role.UAS, S.EARLY, Event.CANCEL),
               (Role.UAC, S.TERMINATED, Event.REINVITE), (Role.UAC, S.EARLY, Event.RING),
               (Role.UAS, S.TERMINATED, Event.SEND_REQUEST)}
    assert ignored <= set(MISUSES)


def test_accept_twice_raises_and_sends_one_2xx():
    session = uas()
    session.accept(ANSWER)
    with pytest.raises(SessionError):
        session.accept(ANSWER)
    with pytest.raises(SessionError):
        session.reject(486)
    assert [r.status for _, r in session.ua.layer.responses] == [200]
    assert session.state is S.WAIT_ACK


def test_hanging_up_an_ended_session_is_allowed_and_does_nothing():
    """Like h11's CLOSED + ConnectionClosed: a hang-up may cross the peer's BYE."""
    for session in (uas(S.TERMINATED), uac(S.TERMINATED)):
        session.bye()
        assert session.state is S.TERMINATED and session.ua.layer.requests == []


# -- the peer's misuse is answered ----------------------------------------------------------

PEER_REQUESTS = {
    Event.BYE_IN: lambda s, r: s.bye_received("txn", r),
    Event.REINVITE_IN: lambda s, r: s.reinvite_received("txn", r, SOURCE),
    Event.UPDATE_IN: lambda s, r: s.update_received("txn", r),
    Event.PRACK_IN: lambda s, r: s.prack_received("txn", r),
    Event.REQUEST_IN: lambda s, r: s.info_received("txn", r),
}
METHOD = {Event.BYE_IN: "BYE", Event.REINVITE_IN: "INVITE", Event.UPDATE_IN: "UPDATE",
          Event.PRACK_IN: "PRACK", Event.REQUEST_IN: "INFO"}
ROLE_STATES = [(Role.UAS, s) for s in (S.INCOMING, S.EARLY, S.WAIT_ACK, S.CONFIRMED,
                                       S.TERMINATED)] + \
              [(Role.UAC, s) for s in (S.CALLING, S.EARLY, S.CONFIRMED, S.TERMINATED)]


@pytest.mark.parametrize("role, state", ROLE_STATES, ids=[f"{r.value}-{s.value}"
                                                          for r, s in ROLE_STATES])
def test_every_state_has_a_row_for_every_request_in_the_dialog(role, state):
    for event in PEER_REQUESTS:
        assert (Where(role, state), event) in TABLE, (role, state, event)


@pytest.mark.parametrize("event", list(PEER_REQUESTS), ids=lambda e: e.name)
def test_a_request_on_an_ended_dialog_gets_481(event):
    for session in (uas(S.TERMINATED), uac(S.TERMINATED)):
        PEER_REQUESTS[event](session, request(METHOD[event], cseq=5, to_tag="x"))
        assert [r.status for _, r in session.ua.layer.responses] == [481]
        assert session.listener.events == []


@pytest.mark.parametrize("state", [S.INCOMING, S.EARLY, S.WAIT_ACK])
def test_a_reinvite_before_our_answer_is_acked_gets_500_with_retry_after(state):
    session = uas(state)
    session.reinvite_received("txn", request("INVITE", cseq=2, body=OFFER), SOURCE)
    (_, response), = session.ua.layer.responses
    assert response.status == 500 and 0 <= int(response.headers.get("Retry-After")) <= 10
    assert session.state is state and session.listener.events == []


def test_a_reinvite_while_our_invite_is_pending_gets_491():
    session = uac(S.EARLY)
    session.reinvite_received("txn", request("INVITE", cseq=2, body=OFFER), SOURCE)
    assert [r.status for _, r in session.ua.layer.responses] == [491]
    assert session.state is S.EARLY


@pytest.mark.parametrize("state", [S.EARLY, S.CONFIRMED])
def test_a_prack_to_the_caller_gets_481(state):
    session = uac(state)
    session.prack_received("txn", request("PRACK", cseq=2, extra=[("RAck", "1 1 INVITE")]))
    assert [r.status for _, r in session.ua.layer.responses] == [481]


def test_a_cancel_after_our_answer_does_nothing():
    """9.2: the UA answered the CANCEL 200; the INVITE already has its final response."""
    session = uas()
    session.accept(ANSWER)
    session.cancel_received(request("CANCEL"))
    assert session.state is S.WAIT_ACK
    assert [r.status for _, r in session.ua.layer.responses] == [200]


def test_responses_and_timers_the_state_does_not_allow_are_dropped():
    session = uac(S.TERMINATED)
    session._invite_response(make_response(session.invite, 180, to_tag="bob"))
    session._invite_response(make_response(session.invite, 200, to_tag="bob"))
    session._from_below(Event.TIMED_OUT)
    assert session.state is S.TERMINATED and session.listener.events == []
    assert session.ua.layer.requests == []


def test_the_table_names_only_handlers_the_session_has():
    for (where, event), (handler, following) in TABLE.items():
        assert handler is None or callable(getattr(InviteSession, handler)), handler
        assert isinstance(following, SessionState)
    assert LOCAL <= set(Event)


def test_the_table_module_is_pure():
    tree = ast.parse(inspect.getsource(session_table))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any("twisted" in name for name in names), names


# -- whole calls walk the rows they should --------------------------------------------------


@pytest.fixture
def walked(monkeypatch):
    rows: list[tuple[str, str, str]] = []
    real = session_module.transition

    def recording(role, state, event):
        rows.append((role.value, state.value, event.name))
        return real(role, state, event)

    monkeypatch.setattr(session_module, "transition", recording)
    return rows


def test_a_call_answered_and_hung_up_by_the_caller(walked):
    pair = Pair()
    caller = pair.call()
    pair.run()
    caller.bye()
    pair.run()
    assert [r for r in walked if r[0] == "uas"] == [
        ("uas", "incoming", "RING"), ("uas", "early", "ACCEPT"),
        ("uas", "wait_ack", "ACK_IN"), ("uas", "confirmed", "BYE_IN")]
    assert [r for r in walked if r[0] == "uac"] == [
        ("uac", "calling", "TRYING"), ("uac", "calling", "PROVISIONAL"),
        ("uac", "early", "ANSWERED"), ("uac", "confirmed", "HANG_UP")]


def test_a_call_cancelled_by_the_caller(walked):
    pair = Pair(behaviour=lambda s: s.ring())
    caller = pair.call()
    pair.run()
    caller.cancel()
    pair.run()
    assert [r for r in walked if r[0] == "uas"] == [
        ("uas", "incoming", "RING"), ("uas", "early", "CANCEL_IN")]
    assert [r for r in walked if r[0] == "uac"] == [
        ("uac", "calling", "TRYING"), ("uac", "calling", "PROVISIONAL"),
        ("uac", "early", "CANCEL"), ("uac", "early", "FAILED")]
    assert caller.final_status == 487 and caller.state is S.TERMINATED


def test_a_reinvite_then_a_bye_from_the_callee(walked):
    pair = Pair()
    caller = pair.call()
    pair.run()
    callee = pair.app.sessions[0]
    walked.clear()
    assert caller.reinvite(HOLD) is True
    pair.run()
    callee.bye()
    pair.run()
    assert walked == [("uac", "confirmed", "REINVITE"), ("uas", "confirmed", "REINVITE_IN"),
                      ("uas", "confirmed", "ACK_IN"), ("uas", "confirmed", "HANG_UP"),
                      ("uac", "confirmed", "BYE_IN")]
    assert caller.state is callee.state is S.TERMINATED
