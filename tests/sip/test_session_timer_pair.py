"""Session timers (RFC 4028) between our UAC and our UAS, in memory on a fake clock:
negotiation, 422, refreshes at half the interval and the BYE at expiry, to the second."""
from __future__ import annotations

from tests.sip.test_ua_pair import ANSWER, HOST, UAC_PORT, UAS_PORT, Pair, no_pending_state

from ivr.sip.session import SessionState


def test_invite_with_session_expires_is_answered_with_it_and_the_uac_refreshes_by_update():
    pair = Pair()
    pair.uac.session_expires = 120
    caller = pair.call()
    pair.run()
    invite = pair.net.sent(UAC_PORT, "INVITE")[0][1]
    assert invite.headers.get("Session-Expires") == "120"
    assert "timer" in invite.headers.get_all("Supported")
    ok = pair.net.sent(UAS_PORT, "200 INVITE")[0][1]
    assert ok.headers.get("Session-Expires") == "120;refresher=uac"
    assert ok.headers.get_all("Require") == ["timer"]
    assert set(ok.headers.get_all("Supported")) == {"100rel", "timer"}
    pair.run(until=300)
    updates = pair.net.sent(UAC_PORT, "UPDATE")
    assert [t for t, _ in updates] == [60.0, 120.0, 180.0, 240.0, 300.0]  # every SE/2
    assert updates[0][1].headers.get("Session-Expires") == "120;refresher=uac"
    assert pair.net.sent(UAS_PORT, "200 UPDATE")[0][1].headers.get("Session-Expires") == \
        "120;refresher=uac"
    callee = pair.app.sessions[0]
    assert caller.state is callee.state is SessionState.CONFIRMED
    assert pair.net.sent(UAS_PORT, "BYE") == [] and pair.net.sent(UAC_PORT, "BYE") == []
    caller.bye()
    pair.run(until=1000)
    assert pair.net.sent(UAC_PORT, "UPDATE")[-1][0] == 300.0  # the timers stopped with the call
    no_pending_state(pair)


def test_a_peer_that_stops_refreshing_is_hung_up_at_se_minus_min_32_se_over_3():
    pair = Pair()
    pair.uac.session_expires = 120
    pair.net.drop("UPDATE", 1000)  # every refresh is lost
    caller = pair.call()
    pair.run(until=200)
    callee = pair.app.sessions[0]
    # The UAS (not the refresher) gives up at 120 - min(32, 40) = 88 s.
    assert [t for t, _ in pair.net.sent(UAS_PORT, "BYE")] == [88.0]
    assert callee.end_reason == "session-timer-expired"
    assert pair.app.listener.events[-1] == ("terminated", "session-timer-expired")
    assert caller.end_reason == "remote-bye"
    no_pending_state(pair)


def test_a_refresh_that_times_out_ends_the_call_of_the_refresher():
    pair = Pair()
    pair.uac.session_expires = 120
    pair.net.drop("UPDATE", 1000)
    pair.net.drop("BYE", 1000)  # and the callee's BYE at 88 s never arrives
    caller = pair.call()
    pair.run(until=200)
    # UPDATE at 60 s; Timer F (64*T1) ends it at 92 s: the caller hangs up.
    assert pair.net.sent(UAC_PORT, "BYE")[0][0] == 92.0  # then its own retransmissions
    assert caller.end_reason == "session-timer-refresh-failed"
    assert pair.caller.events[-1] == ("terminated", "session-timer-refresh-failed")


def test_refresher_uas_makes_the_callee_refresh():
    pair = Pair()
    caller = pair.call(extra=[("Session-Expires", "90;refresher=uas")])
    pair.run(until=100)
    assert pair.net.sent(UAS_PORT, "200 INVITE")[0][1].headers.get("Session-Expires") == \
        "90;refresher=uas"
    updates = pair.net.sent(UAS_PORT, "UPDATE")
    assert [t for t, _ in updates] == [45.0, 90.0]
    # In the callee's UPDATE it is the uac of that transaction, hence refresher=uac.
    assert updates[0][1].headers.get("Session-Expires") == "90;refresher=uac"
    assert caller.state is SessionState.CONFIRMED
    assert pair.net.sent(UAC_PORT, "BYE") == []


def test_session_expires_below_min_se_gets_422_and_our_uac_retries_with_min_se():
    pair = Pair()
    pair.uac.session_expires = 60
    caller = pair.call()
    pair.run()
    too_small = pair.net.sent(UAS_PORT, "422 INVITE")
    assert len(too_small) == 1 and too_small[0][1].headers.get("Min-SE") == "90"
    invites = [m for _, m in pair.net.sent(UAC_PORT, "INVITE")]
    assert [m.cseq for m in invites] == [(1, "INVITE"), (2, "INVITE")]
    assert invites[1].headers.get("Session-Expires") == "90"
    assert invites[1].headers.get("Min-SE") == "90"
    assert pair.net.sent(UAS_PORT, "200 INVITE")[0][1].headers.get("Session-Expires") == \
        "90;refresher=uac"
    assert caller.state is SessionState.CONFIRMED
    assert len(pair.app.sessions) == 1  # the 422'd INVITE made no call


def test_supported_timer_without_session_expires_gets_our_interval():
    pair = Pair()
    got = pair.send(pair.uac, "INVITE", UAS_PORT, extra=[
        ("Supported", "timer"), ("Contact", f"<sip:test@{HOST}:{UAC_PORT}>"),
        ("Content-Type", "application/sdp")], body=ANSWER)
    ok = [r for r in got if r.status == 200][0]
    assert ok.headers.get("Session-Expires") == "1800;refresher=uac"
    assert ok.headers.get_all("Require") == ["timer"]


def test_require_timer_is_not_refused_and_a_peer_without_timers_gets_none():
    pair = Pair()
    got = pair.send(pair.uac, "INVITE", UAS_PORT, extra=[
        ("Require", "timer"), ("Session-Expires", "600"),
        ("Contact", f"<sip:test@{HOST}:{UAC_PORT}>"),
        ("Content-Type", "application/sdp")], body=ANSWER)
    assert [r.status for r in got if r.status >= 200] == [200]
    assert got[-1].headers.get("Session-Expires") == "600;refresher=uac"
    plain = pair.send(pair.uac, "INVITE", UAS_PORT, extra=[
        ("Contact", f"<sip:test@{HOST}:{UAC_PORT}>"),
        ("Content-Type", "application/sdp")], body=ANSWER)
    assert plain[-1].status == 200 and plain[-1].headers.get("Session-Expires") is None


def test_malformed_session_expires_gets_400():
    pair = Pair()
    got = pair.send(pair.uac, "INVITE", UAS_PORT, extra=[
        ("Session-Expires", "soon"), ("Contact", f"<sip:test@{HOST}:{UAC_PORT}>")])
    assert [r.status for r in got if r.status >= 200] == [400]
    assert pair.app.sessions == []


def test_options_advertises_prack_and_the_extensions():
    pair = Pair()
    got = pair.send(pair.uac, "OPTIONS", UAS_PORT)
    assert "PRACK" in got[-1].headers.get_all("Allow")
    assert set(got[-1].headers.get_all("Supported")) == {"100rel", "timer"}
