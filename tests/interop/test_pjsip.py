"""PJSIP (PJSUA2) against the real server: registration with SHA-256 digest, the echo line,
the toll-free menu with RFC 4733 and SIP INFO digits, hold and resume, TCP, extension to
extension on a server port that is not 5060, and PJSIP's own extensions it can REQUIRE:
reliable provisional responses (100rel, RFC 3262) and session timers (RFC 4028).

PJSUA2 runs in a child process (tests/interop/pjsip_peer.py) on the null sound device; it plays
a tone WAV into each call and records what it hears.
"""
from __future__ import annotations

import re
import time

from tests.interop.conftest import ROOT
from tests.interop.pjsip_peer import Pjsua
from tests.interop.tones import assert_tone, tone_wav

TOLL_FREE = "+18005550100"
LINES = ROOT / "tests" / "interop" / "dialplans" / "pjsip"


def dtmf_events(log: str) -> list[tuple[str, str]]:
    return re.findall(r"call \S+ dtmf digit='([^']*)' mode='([^']*)'", log)


def peer(tmp_path, name, freq=1000, **kwargs) -> Pjsua:
    return Pjsua(tmp_path, name, play=tone_wav(tmp_path / f"{name}.wav", freq), **kwargs).start()


def caller(tmp_path, server, name="caller", freq=1000, **kwargs) -> Pjsua:
    """A caller from elsewhere: its From host is not ours, so it is routed by number."""
    p = peer(tmp_path, name, freq, **kwargs)
    p.account(name, server.sip_port, register=False, domain="customer.example")
    return p


def extension(tmp_path, server, user, password, freq, **kwargs) -> Pjsua:
    p = peer(tmp_path, f"ext{user}", freq, **kwargs)
    p.account(user, server.sip_port, password)
    p.registered(200)
    return p


def sent(p: Pjsua, first_line: str) -> list[str]:
    return [m for m in p.sip_messages() if m.startswith("TX\n")
            and m.splitlines()[1].startswith(first_line)]


def received(p: Pjsua, first_line: str) -> list[str]:
    return [m for m in p.sip_messages() if m.startswith("RX\n")
            and m.splitlines()[1].startswith(first_line)]


def header(message: str, name: str) -> list[str]:
    return [l.split(":", 1)[1].strip() for l in message.splitlines()[1:]
            if l.lower().startswith(name.lower() + ":")]


def test_pjsip_registers_with_sha256_digest(server_factory, tmp_path):
    server = server_factory()
    p = extension(tmp_path, server, "2001", "demo2001", 600)
    try:
        registers = sent(p, "REGISTER ")
        assert len(registers) >= 2, p.diagnostics()
        auth = header(registers[1], "Authorization")
        assert auth and "algorithm=SHA-256" in auth[0] and 'username="2001"' in auth[0], auth
        assert "REGISTER 2001 from 127.0.0.1" in server.wait_for_log("REGISTER 2001")
        assert re.search(r"REGISTER 2001 from \S+: 200 OK", server.log()), server.log()[-2000:]
    finally:
        p.stop()


def test_pjsip_hears_its_tone_on_the_echo_line(server_factory, tmp_path):
    server = server_factory()
    p = caller(tmp_path, server)
    try:
        p.call(f"sip:echo@127.0.0.1:{server.sip_port}")
        p.confirmed()
        server.wait_for_log("echo verb='echo'", timeout=10)   # after the spoken intro
        time.sleep(2.5)
        p.hangup()
        p.disconnected()
        p.wait_for("recording_closed")
        assert_tone(p.recording(), 1000)
        server.wait_for_log("ended: remote-bye (remote)")
    finally:
        p.stop()


def test_pjsip_toll_free_menu_takes_rfc4733_and_info_digits(server_factory, tmp_path):
    server = server_factory()
    p = caller(tmp_path, server)
    try:
        p.call(f"sip:{TOLL_FREE}@127.0.0.1:{server.sip_port}")
        p.confirmed()
        server.wait_for_log("verb='menu'", timeout=10)
        p.dtmf("9")                                  # RFC 4733: not an option
        server.wait_for_log("menu_invalid", timeout=10)
        time.sleep(0.5)
        p.dtmf("2", method="info")                   # SIP INFO: support
        log = server.wait_for_log("menu_choice", timeout=10)
        assert "digits='2'" in log and "to='support'" in log, log[-3000:]
        assert dtmf_events(log) == [("9", "rfc4733"), ("2", "info")], log[-3000:]
        infos = received(p, "SIP/2.0 ")
        assert any("INFO" in "".join(header(m, "CSeq")) and m.splitlines()[1].startswith(
            "SIP/2.0 200") for m in infos), p.diagnostics()
        p.hangup()
        p.disconnected()
    finally:
        p.stop()


def test_pjsip_hold_and_resume(server_factory, tmp_path):
    server = server_factory()
    p = caller(tmp_path, server)
    try:
        p.call(f"sip:echo@127.0.0.1:{server.sip_port}")
        p.confirmed()
        server.wait_for_log("echo verb='echo'", timeout=10)
        p.hold()
        log = server.wait_for_log(" hold remote=", timeout=10)
        p.wait_for("media_state", timeout=5, count=2)
        time.sleep(1)
        p.unhold()
        p.wait_for("media_state", timeout=5, count=3)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            log = server.log()
            if log.index(" hold remote=") < log.rfind(" media_update remote="):
                break
            time.sleep(0.1)
        assert log.index(" hold remote=") < log.rfind(" media_update remote="), log[-3000:]
        invites = sent(p, "INVITE ")
        assert len(invites) == 3, p.diagnostics()
        assert "a=sendonly" in invites[1] and "a=sendrecv" in invites[2], invites[1:]
        oks = [m for m in received(p, "SIP/2.0 200") if "INVITE" in header(m, "CSeq")[0]]
        assert len(oks) == 3 and ("a=recvonly" in oks[1] or "a=inactive" in oks[1]), oks[1:]
        assert "a=sendrecv" in oks[2] or not re.search(r"a=(sendonly|recvonly|inactive)",
                                                       oks[2]), oks[2]
        time.sleep(2.5)                              # the echo comes back after resume
        p.hangup()
        p.disconnected()
        p.wait_for("recording_closed")
        assert_tone(p.recording(), 1000)
        assert "Traceback" not in server.log()
    finally:
        p.stop()


def test_pjsip_registers_and_calls_over_tcp(server_factory, tmp_path):
    server = server_factory()
    ext = extension(tmp_path, server, "2002", "demo2002", 700, transport="tcp")
    p = caller(tmp_path, server, transport="tcp")
    try:
        assert "SIP/2.0/TCP" in sent(ext, "REGISTER ")[-1], ext.diagnostics()
        p.call(f"sip:echo@127.0.0.1:{server.sip_port}")
        p.confirmed()
        assert "SIP/2.0/TCP" in sent(p, "INVITE ")[0], p.diagnostics()
        server.wait_for_log("echo verb='echo'", timeout=10)
        time.sleep(2.5)
        p.hangup()
        p.disconnected()
        p.wait_for("recording_closed")
        assert_tone(p.recording(), 1000)
    finally:
        p.stop()
        ext.stop()


def test_pjsip_extension_calls_extension_on_a_non_5060_port(server_factory, tmp_path):
    """2001 calls 2002, both PJSIP: PJSIP's From has no port (sip:2001@127.0.0.1) while the
    server listens on another port than 5060; the call is authenticated and bridged."""
    server = server_factory()
    assert server.sip_port != 5060
    alice = extension(tmp_path, server, "2001", "demo2001", 600)
    bob = extension(tmp_path, server, "2002", "demo2002", 700)
    try:
        alice.call(f"sip:2002@127.0.0.1:{server.sip_port}")
        bob.wait_for("incoming", timeout=10)
        bob.confirmed()
        alice.confirmed()
        assert header(sent(alice, "INVITE ")[0], "From")[0].startswith("<sip:2001@127.0.0.1>") \
            or header(sent(alice, "INVITE ")[0], "From")[0].startswith("sip:2001@127.0.0.1;")
        log = server.wait_for_log("bridged", timeout=5)
        assert "source='extension'" in log and "flow='internal'" in log, log[-3000:]
        time.sleep(2.5)
        alice.hangup()
        alice.disconnected()
        bob.disconnected(timeout=5)
        alice.wait_for("recording_closed")
        bob.wait_for("recording_closed")
        assert_tone(bob.recording(), 600)
        assert_tone(alice.recording(), 700)
    finally:
        alice.stop()
        bob.stop()


def test_pjsip_requiring_100rel_gets_reliable_ringing(server_factory, tmp_path):
    """INVITE with ``Require: 100rel``: the 180 comes reliably (RSeq, Require: 100rel), PJSIP
    PRACKs it, the PRACK gets 200 and the call is answered (RFC 3262), never 420."""
    server = server_factory(dialplans=LINES)
    p = caller(tmp_path, server, prack="mandatory")
    try:
        p.call(f"sip:ringing@127.0.0.1:{server.sip_port}")
        p.confirmed()
        invite = sent(p, "INVITE ")[0]
        assert "100rel" in " ".join(header(invite, "Require")), invite
        ringing = received(p, "SIP/2.0 180")
        assert ringing, p.diagnostics()
        assert "100rel" in " ".join(header(ringing[0], "Require")), ringing[0]
        assert header(ringing[0], "RSeq"), ringing[0]
        pracks = sent(p, "PRACK ")
        assert pracks, p.diagnostics()
        assert [m for m in received(p, "SIP/2.0 200") if "PRACK" in header(m, "CSeq")[0]], \
            p.diagnostics()
        server.wait_for_log("echo verb='echo'", timeout=10)
        time.sleep(2)
        p.hangup()
        p.disconnected()
        p.wait_for("recording_closed")
        assert_tone(p.recording(), 1000)
    finally:
        p.stop()


def test_pjsip_requiring_session_timers_gets_them_and_a_refresh(server_factory, tmp_path):
    """INVITE with ``Require: timer`` and ``Session-Expires: 90`` (the smallest PJSIP allows):
    the 200 carries Session-Expires with a refresher (RFC 4028), and the session is refreshed
    at half the interval (about 45 s: the one slow test here) with the refresh answered 200."""
    server = server_factory(dialplans=LINES)
    p = caller(tmp_path, server, timer="required", session_expires=90)
    try:
        p.call(f"sip:ringing@127.0.0.1:{server.sip_port}")
        p.confirmed()
        invite = sent(p, "INVITE ")[0]
        assert "timer" in " ".join(header(invite, "Require")), invite
        ok = [m for m in received(p, "SIP/2.0 200") if "INVITE" in header(m, "CSeq")[0]][0]
        expires = header(ok, "Session-Expires") or header(ok, "x")   # x: its compact form
        assert expires and re.match(r"\d+\s*;\s*refresher=(uac|uas)", expires[0]), ok
        assert int(expires[0].split(";")[0]) <= 90, ok
        assert "timer" in " ".join(header(ok, "Require")), ok
        # the refresh: a re-INVITE or UPDATE from whichever side refreshes, answered 200
        deadline = time.monotonic() + 60
        refreshed = False
        while time.monotonic() < deadline and not refreshed:
            time.sleep(1)
            msgs = p.sip_messages()
            ours = [m for m in msgs if m.startswith("TX\n")
                    and m.splitlines()[1].startswith(("INVITE ", "UPDATE "))][1:]
            theirs = [m for m in msgs if m.startswith("RX\n")
                      and m.splitlines()[1].startswith(("INVITE ", "UPDATE "))]
            answered = [m for m in received(p, "SIP/2.0 200")
                        if header(m, "CSeq")[0].split()[-1] in ("INVITE", "UPDATE")]
            refreshed = bool(theirs) or (bool(ours) and len(answered) >= 2)
            assert not any(e.get("state") == "DISCONNECTED" for e in p.events), p.diagnostics()
        assert refreshed, p.diagnostics()
        p.hangup()
        p.disconnected()
    finally:
        p.stop()
