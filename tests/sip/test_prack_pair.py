"""Reliable provisional responses (RFC 3262) between our UAC and our UAS, in memory on
a fake clock (the Pair of test_ua_pair), with exact retransmission times."""
from __future__ import annotations

from tests.sip.test_ua_pair import (
    ANSWER,
    HOST,
    OFFER,
    UAC_PORT,
    UAS_PORT,
    Pair,
    kind,
    no_pending_state,
)

from ivr.sip.session import SessionState


def call(pair, **kwargs):
    kwargs.setdefault("prack", True)
    return pair.call(**kwargs)


def test_reliable_180_is_pracked_then_the_call_is_answered():
    pair = Pair(behaviour=lambda s: (s.ring(), pair.clock.callLater(1, s.accept, ANSWER)))
    call(pair)
    pair.run(until=2)
    assert [kind(m) for _, _, m in pair.net.log] == [
        "INVITE", "100 INVITE", "180 INVITE", "PRACK", "200 PRACK", "200 INVITE", "ACK"]
    invite = pair.net.sent(UAC_PORT, "INVITE")[0][1]
    assert "100rel" in invite.headers.get_all("Supported")
    ringing = pair.net.sent(UAS_PORT, "180 INVITE")[0][1]
    assert ringing.headers.get_all("Require") == ["100rel"]
    rseq = int(ringing.headers.get("RSeq"))
    prack = pair.net.sent(UAC_PORT, "PRACK")[0][1]
    assert prack.headers.get("RAck") == f"{rseq} 1 INVITE"
    assert prack.cseq == (2, "PRACK") and prack.to.tag == ringing.to.tag
    assert pair.caller.events == [("progress", 180), ("answered", 200, ANSWER)]
    assert "PRACK" in pair.net.sent(UAS_PORT, "200 INVITE")[0][1].headers.get_all("Allow")


def test_unpracked_180_is_resent_doubling_from_t1_and_the_invite_gets_a_5xx_at_64_t1():
    pair = Pair(behaviour=lambda s: s.ring())
    pair.net.drop("PRACK", 1000)  # every PRACK (and its retransmissions) is lost
    caller = call(pair)
    pair.run(until=40)
    times = [t for t, _ in pair.net.sent(UAS_PORT, "180 INVITE")]
    # RFC 3262 3: T1, doubling (not capped at T2) ...
    assert times == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    # ... and 64*T1 after the first send the INVITE is rejected with a 5xx.
    assert [(t, m.status) for t, m in pair.net.sent(UAS_PORT, "504 INVITE")] == [(32.0, 504)]
    rseqs = {m.headers.get("RSeq") for _, m in pair.net.sent(UAS_PORT, "180 INVITE")}
    assert len(rseqs) == 1  # the same response each time
    # Our UAC PRACKed the first one only: the retransmissions were discarded by RSeq.
    assert pair.caller.events == [("progress", 180), ("failed", 504)]
    pracks = {m.top_via.branch for _, m in pair.net.sent(UAC_PORT, "PRACK")}
    assert len(pracks) == 1
    callee = pair.app.sessions[0]
    assert callee.end_reason == "no-prack" and callee.final_status == 504
    assert pair.app.listener.events == [("terminated", "no-prack")]
    assert caller.state is SessionState.TERMINATED
    no_pending_state(pair)


def test_no_second_reliable_provisional_before_the_first_is_pracked():
    def behaviour(s):
        s.ring(180)
        s.ring(183, ANSWER)
    pair = Pair(behaviour=behaviour)
    pair.net.drop("PRACK", 1)  # the first PRACK is lost; its retransmission at T1 is not
    call(pair)
    pair.run(until=2)
    sent = [(t, kind(m)) for t, p, m in pair.net.log if p == UAS_PORT and kind(m) != "100 INVITE"]
    assert sent[:3] == [(0.0, "180 INVITE"), (0.5, "180 INVITE"), (0.5, "200 PRACK")]
    assert sent[3] == (0.5, "183 INVITE")  # only once the 180 was PRACKed
    r180 = pair.net.sent(UAS_PORT, "180 INVITE")[0][1]
    r183 = pair.net.sent(UAS_PORT, "183 INVITE")[0][1]
    assert int(r183.headers.get("RSeq")) == int(r180.headers.get("RSeq")) + 1
    assert pair.caller.events == [("progress", 180), ("progress", 183)]


def test_reliable_183_with_sdp_holds_the_200_until_its_prack():
    def behaviour(s):
        s.ring(183, ANSWER)  # early media: our answer in a reliable 183
        s.accept(ANSWER)
    pair = Pair(behaviour=behaviour)
    pair.net.drop("PRACK", 1)
    call(pair)
    pair.run(until=5)
    prack_ok = pair.net.sent(UAS_PORT, "200 PRACK")
    oks = pair.net.sent(UAS_PORT, "200 INVITE")
    assert [t for t, _ in prack_ok] == [0.5]
    assert oks and oks[0][0] == 0.5  # RFC 3262 3: not before the PRACK
    assert pair.net.log.index(next(e for e in pair.net.log if kind(e[2]) == "200 PRACK")) < \
        pair.net.log.index(next(e for e in pair.net.log if kind(e[2]) == "200 INVITE"))
    assert pair.caller.events == [("progress", 183), ("answered", 200, ANSWER)]
    assert pair.app.listener.events == [("confirmed",)]


def test_require_100rel_is_accepted_without_our_supported():
    pair = Pair()
    pair.call(extra=[("Require", "100rel")])
    pair.run()
    assert pair.net.sent(UAS_PORT, "420 INVITE") == []
    assert pair.net.sent(UAS_PORT, "180 INVITE")[0][1].headers.get("RSeq") is not None
    assert len(pair.net.sent(UAC_PORT, "PRACK")) == 1
    assert pair.caller.events[-1] == ("answered", 200, ANSWER)


def test_without_100rel_the_180_is_not_reliable():
    pair = Pair()
    pair.call()
    pair.run()
    ringing = pair.net.sent(UAS_PORT, "180 INVITE")[0][1]
    assert ringing.headers.get("RSeq") is None and pair.net.sent(UAC_PORT, "PRACK") == []


def test_prack_with_an_unknown_rack_gets_481():
    pair = Pair(behaviour=lambda s: s.ring())
    pair.net.drop("PRACK", 1000)
    caller = call(pair)
    pair.run()
    callee = pair.app.sessions[0]
    rseq = int(pair.net.sent(UAS_PORT, "180 INVITE")[0][1].headers.get("RSeq"))
    got = []
    pair.net.lose.clear()
    for rack in (f"{rseq + 5} 1 INVITE", f"{rseq} 7 INVITE", "garbage"):
        request = caller.dialog.create_request("PRACK", extra=[("RAck", rack)])
        caller._send_in_dialog(request, got.append)
    pair.run()
    assert sorted(r.status for r in got) == [481, 481, 481]
    assert callee.state is SessionState.EARLY


def test_late_offer_in_a_reliable_183_is_answered_in_the_prack():
    pair = Pair(behaviour=lambda s: (s.ring(183, OFFER), pair.clock.callLater(1, s.accept, OFFER)))
    pair.caller.offer_answer = ANSWER
    pair.uac.invite(f"sip:ivr@{HOST}:{UAS_PORT}", pair.caller, None, prack=True)
    pair.run(until=2)
    prack = pair.net.sent(UAC_PORT, "PRACK")[0][1]
    assert prack.body == ANSWER and prack.content_type == "application/sdp"
    assert ("offer", OFFER) in pair.caller.events
    assert pair.app.listener.events[0] == ("answer", ANSWER)
    assert pair.app.sessions[0].remote_sdp == ANSWER
