"""Acceptance of the SIP signalling engine against SIPp (issue "SIP signalling engine").

Every test drives a real ``ivr serve`` process over UDP or TCP on 127.0.0.1 and asserts on SIPp's
exit code, its stat CSV / message trace and the server log.
"""
from __future__ import annotations

import re
import signal
import socket
import time

import pytest

from tests.interop.peers import (SCENARIOS, SippProcess, count_messages, message_times, sipp,
                                sipp_messages)


def test_load_100_calls_at_20_cps_to_echo(server, tmp_path):
    r = sipp(tmp_path, server.sip, service="echo", calls=100, rate=20, duration_ms=200,
             extra=["-l", "30"], timeout=60)
    assert r.returncode == 0, str(r)
    assert r.stat("SuccessfulCall(C)") == 100, str(r)
    assert r.stat("FailedCall(C)") == 0, str(r)
    time.sleep(0.3)
    log = server.log()
    assert log.count("flow='echo_test' source='request_uri'") == 100
    assert log.count("ended: remote-bye (remote)") == 100
    assert "Traceback" not in log


def test_lost_ack_makes_server_retransmit_2xx(server, tmp_path):
    r = sipp(tmp_path, server.sip, scenario=SCENARIOS / "uac_drop_first_ack.xml", service="echo",
             timeout=30)
    assert r.returncode == 0, str(r)
    assert r.stat("SuccessfulCall(C)") == 1, str(r)
    # SIPp absorbs the retransmissions but logs them: the 2xx came at least twice
    oks = message_times(r.messages, "SIP/2.0 200", "INVITE")
    assert len(oks) >= 2, str(r)
    # T1 = 0.5 s: the first retransmission follows about 500 ms after the first 200
    assert 0.3 <= oks[1] - oks[0] <= 0.9, oks
    server.wait_for_log("ended: remote-bye (remote)")
    assert "ack-timeout" not in server.log()


def test_retransmissions_after_the_final_response_are_absorbed_or_answered_again(server,
                                                                               tmp_path):
    """A late INVITE retransmission after the call is up makes no second call (RFC 6026
    Accepted) and a re-sent BYE gets the same 200 again (Completed, Timer J): both now
    answered by parked transactions (TransactionLayer._park) on a real server."""
    r = sipp(tmp_path, server.sip, scenario=SCENARIOS / "uac_retransmit_after_final.xml",
             service="echo", timeout=30)
    assert r.returncode == 0, str(r)
    assert r.stat("SuccessfulCall(C)") == 1, str(r)
    bye_oks = [lines for _, d, lines in sipp_messages(r.messages)
               if d == "received" and lines[0].startswith("SIP/2.0 200")
               and any(line.startswith("CSeq:") and "BYE" in line for line in lines)]
    assert len(bye_oks) == 2, str(r)
    assert bye_oks[0] == bye_oks[1]  # the same response, byte for byte
    invite_replies = count_messages(r.messages, "SIP/2.0", "INVITE")
    log = server.wait_for_log("ended: remote-bye (remote)")
    time.sleep(0.3)
    log = server.log()
    assert log.count("flow='echo_test' source='request_uri'") == 1, log[-2000:]
    assert log.count("ended: remote-bye") == 1
    assert invite_replies <= 3, str(r)  # 100 and 200 for the first INVITE only (180 optional)
    assert "Traceback" not in log


def test_missing_ack_ends_call_with_bye_after_64_t1(server_factory, tmp_path):
    server = server_factory(extra=["--t1", "0.05"])  # 64 * T1 = 3.2 s
    r = sipp(tmp_path, server.sip, scenario=SCENARIOS / "uac_never_ack.xml", service="echo",
             timeout=30)
    assert r.returncode == 0, str(r)
    first_ok = message_times(r.messages, "SIP/2.0 200", "INVITE")[0]
    byes = message_times(r.messages, "BYE")
    assert len(byes) >= 1, str(r)
    assert 3.0 <= byes[0] - first_ok <= 6.0, (byes[0] - first_ok, str(r))
    # with T1 = 50 ms the 2xx was retransmitted many times (doubling, capped at T2 = 4 s)
    assert count_messages(r.messages, "SIP/2.0 200", "INVITE") >= 5, str(r)
    log = server.wait_for_log(" ended: ")
    assert "ended: no-ack" in log and "ended: remote-bye" not in log, log[-2000:]


def test_unknown_number_gets_404(server, tmp_path):
    r = sipp(tmp_path, server.sip, scenario=SCENARIOS / "uac_404.xml", service="+15559876543",
             timeout=20)
    assert r.returncode == 0, str(r)
    assert count_messages(r.messages, "SIP/2.0 404", "INVITE") >= 1, str(r)
    assert count_messages(r.messages, "SIP/2.0 200") == 0
    server.wait_for_log("+15559876543")


def test_offer_without_a_common_codec_gets_488(server, tmp_path):
    r = sipp(tmp_path, server.sip, scenario=SCENARIOS / "uac_488.xml", service="echo", timeout=20)
    assert r.returncode == 0, str(r)
    assert count_messages(r.messages, "SIP/2.0 488", "INVITE") >= 1, str(r)
    server.wait_for_log("status=488")


def test_options_gets_200_with_allow(server, tmp_path):
    r = sipp(tmp_path, server.sip, scenario=SCENARIOS / "options.xml", service="echo", timeout=20)
    assert r.returncode == 0, str(r)
    replies = [lines for _, d, lines in sipp_messages(r.messages) if d == "received"]
    assert replies and replies[0][0].startswith("SIP/2.0 200"), str(r)
    allow = [l for l in replies[0] if l.lower().startswith("allow:")]
    assert allow, replies[0]
    methods = {m.strip() for m in allow[0].split(":", 1)[1].split(",")}
    assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"} <= methods


def _invite(port: int, local_port: int, content_length: str = "", cseq: str = "1 INVITE") -> bytes:
    sdp = ("v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           "m=audio 40000 RTP/AVP 0\r\n")
    return (f"INVITE sip:echo@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK-bad-{time.time_ns()}\r\n"
            f"From: <sip:bad@example.com>;tag=bad1\r\n"
            f"To: <sip:echo@127.0.0.1>\r\n"
            f"Call-ID: malformed-{time.time_ns()}@127.0.0.1\r\n"
            f"CSeq: {cseq}\r\n"
            f"Contact: <sip:bad@127.0.0.1:{local_port}>\r\n"
            f"Max-Forwards: 70\r\n"
            f"Content-Type: application/sdp\r\n"
            f"Content-Length: {content_length or len(sdp)}\r\n\r\n{sdp}").encode()


MALFORMED = {
    "negative Content-Length": {"content_length": "-5"},
    "Content-Length past the end": {"content_length": "99999"},
    "CSeq without a number": {"cseq": "x INVITE"},
}


@pytest.mark.parametrize("fault", list(MALFORMED))
def test_malformed_invite_gets_400_and_server_keeps_serving(server, tmp_path, fault):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(3.0)
    try:
        invite = _invite(server.sip_port, s.getsockname()[1], **MALFORMED[fault])
        s.sendto(invite, ("127.0.0.1", server.sip_port))
        while True:  # a 100 Trying may come first
            reply, _ = s.recvfrom(65536)
            status = reply.split(b"\r\n", 1)[0]
            if not status.startswith(b"SIP/2.0 1"):
                break
    finally:
        s.close()
    assert status.startswith(b"SIP/2.0 400"), reply
    call_id = re.search(rb"Call-ID: (\S+)", invite).group(1)
    assert re.search(rb"(?im)^(Call-ID|i):\s*" + re.escape(call_id) + rb"\s*$", reply), reply
    # the server is still up and takes the next call
    assert server.proc.poll() is None
    r = sipp(tmp_path, server.sip, service="echo", calls=1, duration_ms=200, timeout=20)
    assert r.returncode == 0, str(r)
    assert r.stat("SuccessfulCall(C)") == 1
    assert "Traceback" not in server.log()


def test_sigterm_drains_calls_refuses_new_ones_and_exits_0(server, tmp_path):
    long_call = SippProcess(tmp_path, server.sip, service="echo", calls=1, duration_ms=4000,
                            timeout=30, tag="long")
    server.wait_for_log("verb='answer' line=")
    time.sleep(0.3)
    server.proc.send_signal(signal.SIGTERM)
    server.wait_for_log("draining")
    refused = sipp(tmp_path, server.sip, scenario=SCENARIOS / "uac_503.xml", service="echo",
                   timeout=15, tag="refused")
    assert refused.returncode == 0, str(refused)
    assert count_messages(refused.messages, "SIP/2.0 503", "INVITE") >= 1, str(refused)
    retry_after = [l for _, d, lines in sipp_messages(refused.messages) if d == "received"
                   for l in lines if l.lower().startswith("retry-after:")]
    assert retry_after and re.match(r"retry-after:\s*\d+", retry_after[0].lower()), retry_after
    assert server.proc.poll() is None  # still draining: the first call is up
    first = long_call.wait(30)
    assert first.returncode == 0, str(first)
    assert first.stat("SuccessfulCall(C)") == 1, str(first)
    # ... and then the server stops on its own, cleanly
    assert server.proc.wait(15) == 0
    log = server.log()
    assert "ended: remote-bye (remote)" in log
    assert "all calls ended" in log


def test_tcp_transport_10_calls(server, tmp_path):
    r = sipp(tmp_path, server.sip, service="echo", calls=10, rate=10, duration_ms=200,
             transport="t1", timeout=40)
    assert r.returncode == 0, str(r)
    assert r.stat("SuccessfulCall(C)") == 10, str(r)
    assert r.stat("FailedCall(C)") == 0, str(r)
    time.sleep(0.3)
    assert server.log().count("ended: remote-bye (remote)") == 10


ROOT_DIALPLANS = SCENARIOS.parent.parent.parent / "dialplans"
PRACK_PLAN = """\
routes:
  - name: prack
    flow: early_then_answer
flows:
  early_then_answer:
    - ring: {seconds: 0.5, early_media: true}
    - answer
    - echo: 30
"""


def test_require_100rel_prack_and_session_timer_with_a_refresh(server_factory, tmp_path):
    """RFC 3262 + RFC 4028 against SIPp: Require: 100rel gets a reliable 183 (early media)
    whose PRACK is answered, Session-Expires is answered with refresher and Require: timer,
    an UPDATE refresh gets 200 with Session-Expires (before: 420 Bad Extension)."""
    import shutil
    plans = tmp_path / "plans"
    shutil.copytree(ROOT_DIALPLANS, plans)
    (plans / "prack.yaml").write_text(PRACK_PLAN)
    server = server_factory(dialplans=plans)
    r = sipp(tmp_path, server.sip, scenario=SCENARIOS / "uac_prack_timer.xml", service="prack",
             timeout=30)
    assert r.returncode == 0, str(r)
    assert r.stat("SuccessfulCall(C)") == 1, str(r)
    assert count_messages(r.messages, "SIP/2.0 420", "INVITE") == 0
    log = server.wait_for_log("ended: remote-bye (remote)")
    assert "reliable=True" in log or "'reliable': True" in log, log[-3000:]
    assert "Traceback" not in log
