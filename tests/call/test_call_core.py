"""Our user agent, the Call and the dialplan runner together, in memory on one fake clock
(tests/call/harness.py): a phone calls a menu and presses keys by SIP INFO and by RFC 4733
over RTP; the plan branches on them, holds, times out and hangs up.  Each call takes a few
simulated seconds and a few milliseconds of real time."""
from __future__ import annotations

import socket
import time

import pytest

from ivr.rtp.dtmf import encode_event
from ivr.rtp.packet import RtpPacket

from tests.sip.test_ua_pair import HOST

from .harness import CallCore, offer
from .test_call_lifecycle import assert_all_ended_once

PLAN = """
routes:
  - {name: menu, flow: menu}
flows:
  menu:
    - answer
    - menu:
        prompt: "press one for sales, two for support"
        options:
          "1": sales
          "2": support
        timeout: 3
        max_timeouts: 1
        on_failure: goodbye
  sales:
    - gather: {prompt: "your account number", num_digits: 3, timeout: 4, variable: account}
    - if: {var: account, equals: "427", then: known, else: goodbye}
  known:
    - say: "welcome back"
    - hangup
  support:
    - pause: 10
    - hangup
  goodbye:
    - say: "goodbye"
    - hangup
"""
PROMPT = 0.2  # seconds of every prompt (the harness's fake TTS)


@pytest.fixture
def core(tmp_path):
    started = time.perf_counter()
    core = CallCore(tmp_path / "plans", PLAN, rtp_pairs=2)
    yield core
    core.close()
    assert time.perf_counter() - started < 5.0  # simulated seconds, real milliseconds


def answered(core):
    core.invited_at = core.clock.seconds()
    session, phone = core.call("menu", offer(port=4000))
    core.run(0.1, step=0.01)
    assert [e[:2] for e in phone.events if e[0] == "answered"] == [("answered", 200)]
    (leg,) = core.calls.values()
    return session, phone, leg


def info(session, digit: str) -> list[int]:
    statuses = []
    session.send_in_dialog("INFO", body=f"Signal={digit}\r\nDuration=160\r\n".encode(),
                           content_type="application/dtmf-relay",
                           on_response=lambda r: statuses.append(r.status))
    return statuses


def rfc4733(sock, leg, digit: str, seq: int) -> None:
    """One digit as three RFC 4733 packets (start, continuation, end) to the leg's RTP port."""
    for n, (end, duration) in enumerate(((False, 160), (False, 320), (True, 480))):
        packet = RtpPacket(101, seq + n, 8000 * seq, 0xC0FFEE, encode_event(digit, end, 10, duration),
                           marker=n == 0)
        sock.sendto(packet.serialize(), (HOST, leg.rtp.local_port))


def cdr_of(core, leg):
    (record,) = [r for r in core.cdrs.records if r["leg_id"] == leg.id]
    return record


def test_keys_by_info_and_rfc4733_choose_the_branch(core):
    session, phone, leg = answered(core)
    statuses = info(session, "1")
    core.run(0.05, step=0.01)
    assert statuses == [200] and leg.variables.get("menu") == "1"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((HOST, 4000))
        core.run(0.3, step=0.01)  # the account prompt
        for seq, digit in ((100, "4"), (200, "2"), (300, "7")):
            rfc4733(sock, leg, digit, seq)
            core.run(0.1, step=0.01)
    finally:
        sock.close()
    assert leg.variables["account"] == "427"
    core.run(PROMPT + 0.2, step=0.01)  # "welcome back", then BYE
    assert phone.events[-1] == ("terminated", "remote-bye")
    record = cdr_of(core, leg)
    assert record["dtmf_by_mode"] == {"rfc4733": 3, "info": 1, "inband": 0}
    assert record["digits"] == ["1", "427"] and record["hangup_side"] == "local"
    assert any(p.startswith("step flow='known'") for p in leg.path), leg.path
    assert_all_ended_once(core, 1)


def test_a_key_during_the_prompt_barges_in(core):
    session, phone, leg = answered(core)
    info(session, "2")  # while "press one ..." is still playing
    core.run(0.05, step=0.01)
    assert leg.variables.get("menu") == "2"
    assert any(p.startswith("step flow='support'") for p in leg.path), leg.path
    session.bye()
    core.run(0.5, step=0.01)
    record = cdr_of(core, leg)
    assert record["hangup_side"] == "remote" and record["digits"] == ["2"]
    assert_all_ended_once(core, 1)


def test_no_key_times_out_into_goodbye_on_time(core):
    session, phone, leg = answered(core)
    while "terminated" not in phone.names() and core.clock.seconds() < 10:
        core.clock.advance(0.01)
    ended_after = core.clock.seconds() - core.invited_at
    # the prompt, 3 s without a key, "goodbye", then BYE (to the media clock's 20 ms frames)
    assert PROMPT + 3 + PROMPT <= ended_after <= PROMPT + 3 + PROMPT + 0.1, ended_after
    assert any(p.startswith("step flow='goodbye'") for p in leg.path), leg.path
    assert_all_ended_once(core, 1)


def test_the_caller_holds_and_the_plan_goes_on(core):
    session, phone, leg = answered(core)
    info(session, "2")
    core.run(0.05, step=0.01)
    answers = []
    session.reinvite(offer(port=4000, extra="a=sendonly\r\n").replace(b"a=sendrecv\r\n", b""),
                     on_done=answers.append)
    core.run(0.1, step=0.01)
    assert [r.status for r in answers] == [200]
    assert b"a=recvonly" in answers[0].body
    assert leg.negotiated.on_hold and "hold remote='127.0.0.1:4000'" in leg.path
    assert not leg.ended
    core.run(10.5, step=0.05)  # the support flow's pause, then BYE
    assert phone.events[-1] == ("terminated", "remote-bye")
    assert_all_ended_once(core, 1)


def test_the_caller_hangs_up_while_the_plan_waits_for_digits(core):
    session, phone, leg = answered(core)
    info(session, "1")
    core.run(0.5, step=0.01)  # in the gather, waiting for the account number
    session.bye()
    core.run(0.2, step=0.01)
    assert leg.ended and leg.end_reason == "remote-bye"
    assert "account" not in leg.variables or leg.variables["account"] == ""
    assert [c for c in core.clock.getDelayedCalls()
            if c.func.__qualname__.startswith("DigitBuffer.")] == []  # the gather's timeout
    assert_all_ended_once(core, 1)


def test_a_prompt_stopped_while_it_renders_is_never_played(tmp_path):
    """An agent answers the queue while the hold prompt is still rendering: enqueue stops
    playback and the bridge takes the leg's audio; the prompt, once ready, must not start
    over the bridged audio."""
    from twisted.internet import defer

    core = CallCore(tmp_path / "plans", PLAN)
    try:
        session, phone = core.call("menu", offer(port=4000))
        core.run(0.3, step=0.01)
        (leg,) = core.calls.values()
        rendering = defer.Deferred()
        core.media.tts.cached = lambda *a, **k: None
        core.media.tts.render_or_fallback = lambda *a, **k: rendering
        results = []
        leg.say("Thank you for holding").addCallback(results.append)
        leg.stop_playback()
        playing = []
        leg.media.play = lambda *a, **k: playing.append(a) or defer.succeed(None)
        rendering.callback(core.media.tts.AUDIO)
        assert playing == [] and results[0].completed is False
        # A prompt asked for after the stop plays as usual.
        later = defer.Deferred()
        core.media.tts.render_or_fallback = lambda *a, **k: later
        leg.say("Your agent")
        later.callback(core.media.tts.AUDIO)
        assert len(playing) == 1
        session.bye()
        core.run(0.3)
    finally:
        core.close()
