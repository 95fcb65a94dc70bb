"""Linphone (linphonec 5.1, Debian's linphone-cli) against the real server: registration with
SHA-256 digest, the echo line, the toll-free menu with RFC 4733 and SIP INFO digits, hold and
resume, TCP, and extension to extension on a server port that is not 5060.

linphonec runs with its sound card as files: it plays a tone WAV into each call and records
what it hears (tests/interop/linphone_peer.py).
"""
from __future__ import annotations

import re
import time

from tests.interop.linphone_peer import Linphone
from tests.interop.tones import assert_tone, tone_wav

TOLL_FREE = "+18005550100"


def dtmf_events(log: str) -> list[tuple[str, str]]:
    return re.findall(r"call \S+ dtmf digit='([^']*)' mode='([^']*)'", log)


def phone(tmp_path, name, freq=1000, **kwargs) -> Linphone:
    return Linphone(tmp_path, name, play=tone_wav(tmp_path / f"{name}.wav", freq),
                    **kwargs).start()


def extension(tmp_path, server, user, password, freq, **kwargs) -> Linphone:
    p = phone(tmp_path, f"ext{user}", freq, **kwargs)
    p.register(user, password, server.sip_port)
    p.registered()
    return p


def header(message: str, name: str) -> list[str]:
    return [l.split(":", 1)[1].strip() for l in message.splitlines()[1:]
            if l.lower().startswith(name.lower() + ":")]


def hang_up(p: Linphone) -> None:
    p.command("terminate")
    p.ended()
    time.sleep(0.5)                      # the recording is closed with the call


def test_linphone_registers_with_sha256_digest(server_factory, tmp_path):
    server = server_factory()
    p = extension(tmp_path, server, "2001", "demo2001", 600)
    try:
        registers = p.sent("REGISTER ")
        assert len(registers) >= 2, p.diagnostics()
        auth = header(registers[1], "Authorization")
        assert auth and "algorithm=SHA-256" in auth[0] and 'username="2001"' in auth[0], auth
        assert re.search(r"REGISTER 2001 from \S+: 200 OK", server.wait_for_log("REGISTER 2001"))
    finally:
        p.stop()


def test_linphone_hears_its_tone_on_the_echo_line(server_factory, tmp_path):
    server = server_factory()
    p = phone(tmp_path, "caller")
    try:
        p.call(f"sip:echo@127.0.0.1:{server.sip_port}")
        p.connected()
        server.wait_for_log("echo verb='echo'", timeout=10)   # after the spoken intro
        time.sleep(2.5)
        hang_up(p)
        assert_tone(p.recording(), 1000)
        server.wait_for_log("ended: remote-bye (remote)")
    finally:
        p.stop()


def test_linphone_toll_free_menu_with_rfc4733_digits(server_factory, tmp_path):
    server = server_factory()
    p = phone(tmp_path, "caller")
    try:
        p.call(f"sip:{TOLL_FREE}@127.0.0.1:{server.sip_port}")
        p.connected()
        server.wait_for_log("verb='menu'", timeout=10)
        p.dtmf("9")                                  # not an option
        server.wait_for_log("menu_invalid", timeout=10)
        time.sleep(0.5)
        p.dtmf("2")                                  # support
        log = server.wait_for_log("menu_choice", timeout=10)
        assert "digits='2'" in log and "to='support'" in log, log[-3000:]
        assert dtmf_events(log) == [("9", "rfc4733"), ("2", "rfc4733")], log[-3000:]
        hang_up(p)
    finally:
        p.stop()


def test_linphone_toll_free_menu_with_sip_info_digits(server_factory, tmp_path):
    server = server_factory()
    p = phone(tmp_path, "caller", use_info=True)
    try:
        p.call(f"sip:{TOLL_FREE}@127.0.0.1:{server.sip_port}")
        p.connected()
        server.wait_for_log("verb='menu'", timeout=10)
        p.dtmf("2")
        log = server.wait_for_log("menu_choice", timeout=10)
        assert "digits='2'" in log and "to='support'" in log, log[-3000:]
        assert dtmf_events(log) == [("2", "info")], log[-3000:]
        assert p.sent("INFO "), p.diagnostics()
        deadline = time.monotonic() + 5              # its 200 may still be on the way
        while not [m for m in p.received("SIP/2.0 200") if "INFO" in header(m, "CSeq")[0]]:
            assert time.monotonic() < deadline, p.diagnostics()
            time.sleep(0.1)
        hang_up(p)
    finally:
        p.stop()


def test_linphone_hold_and_resume(server_factory, tmp_path):
    server = server_factory()
    p = phone(tmp_path, "caller")
    try:
        p.call(f"sip:echo@127.0.0.1:{server.sip_port}")
        p.connected()
        server.wait_for_log("echo verb='echo'", timeout=10)
        p.command("pause")
        p.wait_for_console(r"is now paused", timeout=10)
        server.wait_for_log(" hold remote=", timeout=5)
        time.sleep(1)
        p.command("resume")
        p.wait_for_console(r"Media streams established", timeout=10, count=2)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            log = server.log()
            if log.index(" hold remote=") < log.rfind(" media_update remote="):
                break
            time.sleep(0.1)
        assert log.index(" hold remote=") < log.rfind(" media_update remote="), log[-3000:]
        invites = p.sent("INVITE ")
        assert len(invites) >= 3, p.diagnostics()
        assert "a=sendonly" in invites[-2] or "a=inactive" in invites[-2], invites[-2]
        assert not re.search(r"a=(sendonly|recvonly|inactive)", invites[-1]), invites[-1]
        time.sleep(2.5)                              # the echo comes back after resume
        hang_up(p)
        assert_tone(p.recording(), 1000)
        assert "Traceback" not in server.log()
    finally:
        p.stop()


def test_linphone_registers_and_calls_over_tcp(server_factory, tmp_path):
    server = server_factory()
    ext = extension(tmp_path, server, "2002", "demo2002", 700, transport="tcp")
    p = phone(tmp_path, "caller", transport="tcp")
    try:
        assert "SIP/2.0/TCP" in ext.sent("REGISTER ")[-1], ext.diagnostics()
        p.call(f"sip:echo@127.0.0.1:{server.sip_port}")
        p.connected()
        assert "SIP/2.0/TCP" in p.sent("INVITE ")[0], p.diagnostics()
        server.wait_for_log("echo verb='echo'", timeout=10)
        time.sleep(2.5)
        hang_up(p)
        assert_tone(p.recording(), 1000)
    finally:
        p.stop()
        ext.stop()


def test_linphone_extension_calls_extension_on_a_non_5060_port(server_factory, tmp_path):
    server = server_factory()
    assert server.sip_port != 5060
    alice = extension(tmp_path, server, "2001", "demo2001", 600)
    bob = extension(tmp_path, server, "2002", "demo2002", 700)
    try:
        alice.call(f"sip:2002@127.0.0.1:{server.sip_port}")
        bob.connected(timeout=10)
        alice.connected(timeout=5)
        log = server.wait_for_log("bridged", timeout=5)
        assert "source='extension'" in log and "flow='internal'" in log, log[-3000:]
        time.sleep(2.5)
        hang_up(alice)
        bob.ended(timeout=5)
        time.sleep(0.5)
        assert_tone(bob.recording(), 600)
        assert_tone(alice.recording(), 700)
    finally:
        alice.stop()
        bob.stop()
