"""The RFC 3261 section 17 machines driven with explicit events; exact action lists."""
from __future__ import annotations

import random

import pytest

from ivr.sip.headers import Headers
from ivr.sip.message import Request, Response, make_response, parse_datagram, serialize
from ivr.sip.timers import T1, T2, T4, TimerConfig, TimerName
from ivr.sip.transaction import (
    CancelTimer,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    PassToTU,
    Send,
    StartTimer,
    State,
    Terminated,
    Timeout,
    TransactionError,
    TransportFailed,
    UnexpectedMessage,
    cancel_target_key,
    client_key,
    make_ack,
    make_branch,
    make_cancel,
    server_ack_key,
    server_key,
)

A, B, D, E, F, G, H, I, J, K, L = (TimerName[n] for n in "ABDEFGHIJKL")
BRANCH = "z9hG4bK776asdhds"


def request(method: str = "INVITE", branch: str | None = BRANCH, cseq: int = 314159,
            to_tag: str | None = None, uri: str = "sip:bob@biloxi.example.com",
            routes: tuple[str, ...] = ()) -> Request:
    headers = Headers()
    via = "SIP/2.0/UDP pc33.atlanta.example.com:5060"
    if branch is not None:
        via += f";branch={branch}"
    headers.add("Via", via)
    headers.add("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKother")
    headers.add("Max-Forwards", "70")
    for route in routes:
        headers.add("Route", route)
    headers.add("To", "Bob <sip:bob@biloxi.example.com>" + (f";tag={to_tag}" if to_tag else ""))
    headers.add("From", "Alice <sip:alice@atlanta.example.com>;tag=1928301774")
    headers.add("Call-ID", "a84b4c76e66710@pc33.atlanta.example.com")
    headers.add("CSeq", f"{cseq} {method}")
    headers.add("Contact", "<sip:alice@pc33.atlanta.example.com>")
    return Request(method, uri, headers)


def response(req: Request, status: int, tag: str | None = "a6c85cf") -> Response:
    return make_response(req, status, to_tag=tag if status > 100 else None)


# -- INVITE client (Figure 5) -------------------------------------------------------------


def test_invite_client_start_and_timer_a_doubles_uncapped():
    invite = request()
    txn = InviteClientTransaction(invite)
    assert txn.start() == [Send(invite), StartTimer(A, 0.5), StartTimer(B, 32.0)]
    assert txn.state is State.CALLING
    delays = []
    for _ in range(6):
        actions = txn.timer_fired(A)
        assert actions[0] == Send(invite)
        delays.append(actions[1].delay)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]  # no T2 cap for INVITE
    assert txn.timer_fired(B) == [CancelTimer(A), Timeout(), Terminated()]
    assert txn.state is State.TERMINATED


def test_invite_client_reliable_has_no_timer_a_and_timer_d_is_zero():
    invite = request()
    txn = InviteClientTransaction(invite, reliable=True)
    assert txn.start() == [Send(invite), StartTimer(B, 32.0)]
    busy = response(invite, 486)
    actions = txn.receive_response(busy)
    assert actions == [CancelTimer(B), Send(txn.ack), PassToTU(busy), Terminated()]
    assert txn.state is State.TERMINATED


def test_invite_client_1xx_then_486_builds_ack_and_absorbs_retransmits():
    invite = request(routes=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    txn = InviteClientTransaction(invite)
    txn.start()
    ringing = response(invite, 180)
    assert txn.receive_response(ringing) == [CancelTimer(A), CancelTimer(B), PassToTU(ringing)]
    assert txn.state is State.PROCEEDING
    assert txn.receive_response(ringing) == [PassToTU(ringing)]
    busy = response(invite, 486)
    actions = txn.receive_response(busy)
    ack = txn.ack
    assert actions == [Send(ack), PassToTU(busy), StartTimer(D, 32.0)]
    assert txn.state is State.COMPLETED
    # 17.1.1.3: the ACK, header by header.
    assert ack.method == "ACK" and ack.uri == invite.uri
    assert list(ack.headers) == [
        ("Via", "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds"),
        ("Max-Forwards", "70"),
        ("Route", "<sip:p1.example.com;lr>"),
        ("Route", "<sip:p2.example.com;lr>"),
        ("From", "Alice <sip:alice@atlanta.example.com>;tag=1928301774"),
        ("To", "Bob <sip:bob@biloxi.example.com>;tag=a6c85cf"),
        ("Call-ID", "a84b4c76e66710@pc33.atlanta.example.com"),
        ("CSeq", "314159 ACK"),
    ]
    assert ack.body == b""
    # A retransmitted 486 re-sends the same ACK and is not passed up again.
    assert txn.receive_response(busy) == [Send(ack)]
    assert txn.receive_response(ringing) == []  # a late, reordered 1xx
    assert txn.timer_fired(D) == [Terminated()]


def test_invite_client_final_in_calling_cancels_timers():
    invite = request()
    txn = InviteClientTransaction(invite)
    txn.start()
    busy = response(invite, 603)
    assert txn.receive_response(busy) == [CancelTimer(A), CancelTimer(B), Send(txn.ack),
                                          PassToTU(busy), StartTimer(D, 32.0)]


def test_invite_client_2xx_terminates_and_tu_acks():
    invite = request()
    txn = InviteClientTransaction(invite)
    txn.start()
    ok = response(invite, 200)
    assert txn.receive_response(ok) == [CancelTimer(A), CancelTimer(B), PassToTU(ok), Terminated()]
    assert txn.state is State.TERMINATED
    with pytest.raises(UnexpectedMessage):
        txn.receive_response(ok)  # later 2xx go to the UA core as strays


def test_invite_client_2xx_in_proceeding_and_transport_errors():
    invite = request()
    txn = InviteClientTransaction(invite)
    txn.start()
    txn.receive_response(response(invite, 183))
    ok = response(invite, 200)
    assert txn.receive_response(ok) == [PassToTU(ok), Terminated()]

    txn = InviteClientTransaction(invite)
    txn.start()
    assert txn.transport_error() == [CancelTimer(A), CancelTimer(B), TransportFailed(), Terminated()]

    txn = InviteClientTransaction(invite)
    txn.start()
    txn.receive_response(response(invite, 500))
    assert txn.transport_error() == [CancelTimer(D), TransportFailed(), Terminated()]


def test_disallowed_events_raise():
    invite = request()
    txn = InviteClientTransaction(invite)
    with pytest.raises(TransactionError):
        txn.timer_fired(A)  # not started
    txn.start()
    with pytest.raises(TransactionError):
        txn.start()
    with pytest.raises(TransactionError) as info:
        txn.timer_fired(D)
    assert not isinstance(info.value, UnexpectedMessage)
    server = InviteServerTransaction(invite)
    server.start()
    with pytest.raises(UnexpectedMessage):
        server.receive_request(request("ACK"))  # ACK before any final response
    server.send_response(response(invite, 486))
    with pytest.raises(TransactionError):
        server.send_response(response(invite, 500))  # a second final response


def test_shortened_t1_scales_everything():
    timers = TimerConfig(t1=0.05)
    invite = request()
    txn = InviteClientTransaction(invite, timers)
    assert txn.start() == [Send(invite), StartTimer(A, 0.05), StartTimer(B, 3.2)]


# -- non-INVITE client (Figure 6) ---------------------------------------------------------


def test_non_invite_client_timer_e_capped_then_t2_after_1xx():
    options = request("OPTIONS")
    txn = NonInviteClientTransaction(options)
    assert txn.start() == [Send(options), StartTimer(E, T1), StartTimer(F, 64 * T1)]
    delays = [txn.timer_fired(E)[1].delay for _ in range(5)]
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert txn.timer_fired(F) == [CancelTimer(E), Timeout(), Terminated()]

    txn = NonInviteClientTransaction(options)
    txn.start()
    trying = response(options, 100)
    assert txn.receive_response(trying) == [PassToTU(trying)]  # Timer E keeps running
    assert txn.state is State.PROCEEDING
    assert txn.timer_fired(E) == [Send(options), StartTimer(E, T2)]
    assert txn.timer_fired(E) == [Send(options), StartTimer(E, T2)]
    ok = response(options, 200)
    assert txn.receive_response(ok) == [CancelTimer(E), CancelTimer(F), PassToTU(ok),
                                        StartTimer(K, T4)]
    assert txn.state is State.COMPLETED
    assert txn.receive_response(ok) == []  # retransmissions buffered
    assert txn.timer_fired(K) == [Terminated()]


def test_non_invite_client_reliable():
    bye = request("BYE", to_tag="x")
    txn = NonInviteClientTransaction(bye, reliable=True)
    assert txn.start() == [Send(bye), StartTimer(F, 32.0)]
    ok = response(bye, 200)
    assert txn.receive_response(ok) == [CancelTimer(F), PassToTU(ok), Terminated()]
    txn = NonInviteClientTransaction(bye, reliable=True)
    txn.start()
    assert txn.timer_fired(F) == [Timeout(), Terminated()]
    txn = NonInviteClientTransaction(bye)
    txn.start()
    assert txn.transport_error() == [CancelTimer(E), CancelTimer(F), TransportFailed(),
                                     Terminated()]


# -- INVITE server (Figure 7 + RFC 6026) --------------------------------------------------


def test_invite_server_100_trying_and_retransmits_in_proceeding():
    invite = request()
    txn = InviteServerTransaction(invite)
    actions = txn.start()
    assert len(actions) == 2 and isinstance(actions[0], Send)
    trying = actions[0].message
    assert trying.status == 100 and actions[1] == PassToTU(invite)
    assert trying.headers.get_raw("Via") == invite.headers.get_raw("Via")
    assert ";tag=" not in trying.headers.get("To")
    assert txn.state is State.PROCEEDING
    assert txn.receive_request(invite) == [Send(trying)]
    ringing = response(invite, 180)
    assert txn.send_response(ringing) == [Send(ringing)]
    assert txn.receive_request(invite) == [Send(ringing)]


def test_invite_server_486_timer_g_capped_ack_confirms():
    invite = request()
    txn = InviteServerTransaction(invite)
    txn.start()
    busy = response(invite, 486)
    assert txn.send_response(busy) == [Send(busy), StartTimer(G, T1), StartTimer(H, 64 * T1)]
    assert txn.state is State.COMPLETED
    delays = [txn.timer_fired(G) for _ in range(5)]
    assert [a[1].delay for a in delays] == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(a[0] == Send(busy) for a in delays)
    assert txn.receive_request(invite) == [Send(busy)]
    ack = request("ACK", to_tag="a6c85cf")
    assert txn.receive_request(ack) == [CancelTimer(G), CancelTimer(H), StartTimer(I, T4)]
    assert txn.state is State.CONFIRMED
    assert txn.receive_request(ack) == []  # absorbed, not passed up
    assert txn.timer_fired(I) == [Terminated()]


def test_invite_server_timer_h_and_reliable():
    invite = request()
    txn = InviteServerTransaction(invite)
    txn.start()
    txn.send_response(response(invite, 404))
    assert txn.timer_fired(H) == [CancelTimer(G), Timeout(), Terminated()]

    txn = InviteServerTransaction(invite, reliable=True)
    txn.start()
    busy = response(invite, 486)
    assert txn.send_response(busy) == [Send(busy), StartTimer(H, 32.0)]
    assert txn.receive_request(request("ACK", to_tag="a6c85cf")) == [CancelTimer(H), Terminated()]
    assert txn.state is State.TERMINATED


def test_invite_server_accepted_state_rfc6026():
    invite = request()
    txn = InviteServerTransaction(invite)
    txn.start()
    ok = response(invite, 200)
    assert txn.send_response(ok) == [Send(ok), StartTimer(L, 32.0)]
    assert txn.state is State.ACCEPTED
    assert txn.last_response is None  # lingers for Timer L holding no response
    assert txn.receive_request(invite) == []  # retransmitted INVITE absorbed
    assert txn.send_response(ok) == [Send(ok)]  # the UA core's 2xx retransmission
    assert txn.last_response is None
    ack = request("ACK", to_tag="a6c85cf")
    assert txn.receive_request(ack) == [PassToTU(ack)]
    assert txn.timer_fired(L) == [Terminated()]


# -- non-INVITE server (Figure 8) ---------------------------------------------------------


def test_non_invite_server():
    options = request("OPTIONS")
    txn = NonInviteServerTransaction(options)
    assert txn.start() == [PassToTU(options)]
    assert txn.receive_request(options) == []  # Trying: absorbed
    trying = response(options, 100)
    assert txn.send_response(trying) == [Send(trying)]
    assert txn.state is State.PROCEEDING
    assert txn.receive_request(options) == [Send(trying)]
    ok = response(options, 200)
    assert txn.send_response(ok) == [Send(ok), StartTimer(J, 32.0)]
    assert txn.receive_request(options) == [Send(ok)]
    with pytest.raises(TransactionError):
        txn.send_response(response(options, 500))
    assert txn.timer_fired(J) == [Terminated()]

    txn = NonInviteServerTransaction(options, reliable=True)
    txn.start()
    assert txn.send_response(ok) == [Send(ok), Terminated()]


# -- matching and builders ----------------------------------------------------------------


def test_client_key_matches_response_and_separates_cancel():
    invite = request()
    assert client_key(invite) == (BRANCH, "INVITE")
    assert client_key(response(invite, 180)) == (BRANCH, "INVITE")
    cancel = make_cancel(invite)
    assert client_key(response(cancel, 200)) == (BRANCH, "CANCEL")
    assert client_key(request(branch="z9hG4bKzzz")) != client_key(invite)


def test_server_key_rfc3261_ack_matches_invite_cancel_does_not():
    invite = request()
    key = server_key(invite)
    assert key == ("3261", BRANCH, "pc33.atlanta.example.com:5060", "INVITE")
    assert server_key(request("ACK", to_tag="a6c85cf")) == key
    cancel = make_cancel(invite)
    assert server_key(cancel) != key
    assert cancel_target_key(cancel) == key
    # Same branch from another sent-by is another transaction.
    other = request()
    other.headers.set("Via", "SIP/2.0/UDP evil.example.com:5060;branch=" + BRANCH)
    assert server_key(other) != key
    # The ACK for a 2xx has a new branch: it matches nothing.
    assert server_key(request("ACK", branch="z9hG4bKnew", to_tag="a6c85cf")) != key


def test_server_key_rfc2543_fallback():
    invite = request(branch=None)
    key = server_key(invite)
    assert key[0] == "2543"
    assert server_key(request(branch=None)) == key  # retransmission
    assert server_key(request(branch="1")) != key  # other top Via
    busy = response(invite, 486, tag="t1")
    ack = request("ACK", branch=None, to_tag="t1")
    assert server_key(ack) != key
    assert server_key(ack) == server_ack_key(invite, busy)
    assert server_key(request("ACK", branch=None, to_tag="t2")) != server_ack_key(invite, busy)
    cancel = make_cancel(invite)
    assert server_key(cancel) != key and cancel_target_key(cancel) == key
    assert server_ack_key(request(), response(request(), 486)) == server_key(request())


def test_make_cancel_per_9_1():
    invite = request(routes=("<sip:p1.example.com;lr>",))
    invite.body = b"v=0\r\n"
    cancel = make_cancel(invite)
    assert cancel.method == "CANCEL" and cancel.uri == invite.uri and cancel.body == b""
    assert list(cancel.headers) == [
        ("Via", "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds"),
        ("Max-Forwards", "70"),
        ("Route", "<sip:p1.example.com;lr>"),
        ("From", "Alice <sip:alice@atlanta.example.com>;tag=1928301774"),
        ("To", "Bob <sip:bob@biloxi.example.com>"),
        ("Call-ID", "a84b4c76e66710@pc33.atlanta.example.com"),
        ("CSeq", "314159 CANCEL"),
    ]
    parsed = parse_datagram(serialize(cancel))
    assert parsed.cseq == (314159, "CANCEL")


def test_make_ack_round_trips():
    invite = request()
    ack = make_ack(invite, response(invite, 487))
    assert parse_datagram(serialize(ack)).to.tag == "a6c85cf"


def test_make_branch():
    one = make_branch(random.Random(7))
    assert one == make_branch(random.Random(7))
    assert one.startswith("z9hG4bK") and len(one) == 7 + 16
    assert make_branch() != make_branch()


# -- any sequence of events: only TransactionError, one Terminated, timers consistent ----

from hypothesis import example, given, settings, strategies as st  # noqa: E402

from ivr.sip.transaction import client_transaction, server_transaction  # noqa: E402

_EVENTS = st.lists(st.one_of(
    st.sampled_from(["start", "transport_error", "retransmit", "ack"]),
    st.sampled_from(list(TimerName)),
    st.sampled_from([100, 180, 200, 202, 302, 486, 503, 699]),
), max_size=25)


@settings(max_examples=1000, deadline=None)
@example(method="OPTIONS", server=True, reliable=False, events=["start", 200, "transport_error"])
@given(method=st.sampled_from(["INVITE", "OPTIONS"]), server=st.booleans(),
       reliable=st.booleans(), events=_EVENTS)
def test_random_event_sequences(method, server, reliable, events):
    req = request(method)
    make = server_transaction if server else client_transaction
    txn = make(req, reliable=reliable)
    running: set = set()
    terminated = 0
    for event in events:
        try:
            if event == "start":
                actions = txn.start()
            elif event == "transport_error":
                actions = txn.transport_error()
            elif event in ("retransmit", "ack"):
                if not server:
                    continue
                actions = txn.receive_request(req if event == "retransmit"
                                              else request("ACK", to_tag="a6c85cf"))
            elif isinstance(event, TimerName):
                if event not in running:
                    continue  # the layer only fires timers that are running
                running.discard(event)
                actions = txn.timer_fired(event)
            elif server:
                actions = txn.send_response(response(req, event))
            else:
                actions = txn.receive_response(response(req, event))
        except TransactionError:
            continue
        for action in actions:
            if isinstance(action, StartTimer):
                assert action.delay > 0
                assert not (reliable and action.name in (A, E, G))
                running.add(action.name)
            elif isinstance(action, CancelTimer):
                running.discard(action.name)
            elif isinstance(action, Terminated):
                terminated += 1
        if txn.state is State.TERMINATED:
            assert terminated == 1 and actions[-1] == Terminated()
            assert running == set()  # a terminated machine leaves no timer behind
    assert terminated == (1 if txn.state is State.TERMINATED else 0)
