"""Acceptance of the media engine with real peers (issue "Media engine"): RFC 4733 digits
from SIPp's pcaps and from baresip, TTS audio heard by baresip, and the media timeout."""
from __future__ import annotations

import re
import time

import numpy as np

from tests.interop.conftest import ROOT
from tests.interop.peers import SCENARIOS, Baresip, message_times, read_wav, rms, sipp

DIALPLANS = ROOT / "tests" / "interop" / "dialplans" / "media"


def dtmf_events(log: str) -> list[tuple[str, str, str]]:
    """(call id, digit, mode) of every ``dtmf`` line in the server log."""
    return re.findall(r"call (\S+) dtmf digit='([^']*)' mode='([^']*)'", log)


def test_sipp_rfc4733_digits_are_reported_once_each_in_order(server_factory, tmp_path):
    server = server_factory(dialplans=DIALPLANS)
    r = sipp(tmp_path, server.sip, scenario=SCENARIOS / "uac_dtmf.xml", service="digits",
             timeout=30)
    assert r.returncode == 0, str(r)
    # the server answered with telephone-event on the payload type the pcaps use (101)
    answer = r.messages[r.messages.index("SIP/2.0 200 OK"):]
    assert re.search(r"m=audio \d+ RTP/AVP [0-9 ]*\b101\b", answer), answer[:1500]
    assert "a=rtpmap:101 telephone-event/8000" in answer
    log = server.wait_for_log("flow_end")
    events = dtmf_events(log)
    assert [(d, m) for _, d, m in events] == [("1", "rfc4733"), ("5", "rfc4733"),
                                              ("9", "rfc4733"), ("#", "rfc4733")], events
    assert len({cid for cid, _, _ in events}) == 1
    assert "gathered verb='gather'" in log and "digits='159#'" in log, log[-3000:]
    assert "collected 159#" in log


def test_baresip_hears_prompt_and_its_digits_are_reported(server_factory, tmp_path):
    server = server_factory(dialplans=DIALPLANS)
    phone = Baresip(tmp_path).start()
    try:
        phone.dial(f"sip:prompt@{server.sip}")
        phone.wait_for_event("CALL_ESTABLISHED", timeout=10)
        server.wait_for_log("verb='gather'")
        # the prompt ("Please enter your four digit code now.") lasts about 2.5 s; barge-in
        # is off, so wait for it to finish before pressing keys
        time.sleep(3.5)
        phone.send_digits("2468", gap=0.3)
        server.wait_for_log("collected 2468", timeout=10)
        phone.hangup()
        phone.wait_for_event("CALL_CLOSED", timeout=10)
        log = server.wait_for_log("ended: remote-bye (remote)", timeout=10)
    finally:
        phone.stop()
    events = dtmf_events(log)
    assert [(d, m) for _, d, m in events] == [(d, "rfc4733") for d in "2468"], events

    heard, rate = read_wav(phone.received_wav())
    assert rate == 8000
    frame = rate // 10  # 100 ms frames
    levels = np.array([rms(heard[i:i + frame]) for i in range(0, len(heard) - frame, frame)])
    assert len(levels) >= 40, f"only {len(levels) / 10:.1f} s recorded"
    first = levels[:30]           # the first 3 s after answer: the prompt
    loud = int(np.sum(first > 500))
    assert loud >= 12, f"only {loud} loud 100 ms frames in the first 3 s: {np.round(first)}"
    assert float(np.max(first)) > 2000
    # ... and then the line goes quiet while the gather waits (the prompt really ended)
    quiet = levels[36:40]
    assert float(np.max(quiet)) < 200, np.round(levels[30:45])


def test_media_timeout_hangs_up_a_silent_call(server_factory, tmp_path):
    server = server_factory(dialplans=DIALPLANS, extra=["--media-timeout", "2"])
    r = sipp(tmp_path, server.sip, scenario=SCENARIOS / "uac_no_rtp.xml", service="silent",
             timeout=30)
    assert r.returncode == 0, str(r)
    ack = message_times(r.messages, "ACK", direction="sent")[0]
    bye = message_times(r.messages, "BYE")[0]
    assert 1.8 <= bye - ack <= 4.0, bye - ack
    log = server.wait_for_log(" ended: ")
    assert "media_timeout seconds=2" in log and "ended: media-timeout (local)" in log, log[-2000:]
