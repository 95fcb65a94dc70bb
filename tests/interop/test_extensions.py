"""Extensions and agents with real phones: baresip registers as 2001/2002 with digest auth,
callers reach them through the toll-free menu, and the support queue hands callers to agents.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from tests.interop.peers import Baresip, read_wav, write_wav

ROOT = Path(__file__).resolve().parents[2]
TOLL_FREE = "+18005550100"

CONFIG = """\
realm: ivr.local
domains: [ivr.local]
algorithms: [SHA-256, MD5]
md5_only_user_agents: ['^baresip v[01]\\.']
security: {max_failures: 50, failure_window: 60, ban_time: 60}
extensions:
  "2001":
    name: Alice
    ha1_sha256: bddecaed6dae6739bf9799694ba46c4abf3d40f32e34ae8f10010a6f565483aa
    ha1_md5: 87a565bc203f8cedf2e3139a4402bcff
  "2002":
    name: Bob
    ha1_sha256: edb1f84eb25b5cce60214b684bbc4ef5ed8693c292309422c90574ee73006231
    ha1_md5: 45f510763d8d21f7a0b550d7d493a274
queues:
  support:
    agents: ["2001", "2002"]
    strategy: round-robin
    ring_timeout: 3
    wrapup: 1
    max_wait: 60
    skip_after_no_answer: 30
    announce_position_every: 0
ring_groups:
  sales: {members: ["2001", "2002"], strategy: simultaneous, ring_timeout: 20}
"""


def tone_wav(path: Path, freq: float, seconds: float = 60) -> Path:
    t = np.arange(int(8000 * seconds)) / 8000
    return write_wav(path, (0.3 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16))


def start(server_factory, tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "extensions.yaml").write_text(CONFIG)
    return server_factory(extra=["--config", str(config)])


def phone(tmp_path, name, account, freq, server=None, password=None, answer="auto"):
    bs = Baresip(tmp_path, name, source=tone_wav(tmp_path / f"{name}.wav", freq))
    if server is not None:  # an extension registering with the server
        line = (f"<sip:{account}@127.0.0.1:{server.sip_port}>;auth_pass={password};"
                f"regint=60;answermode={answer}")
    else:                   # a caller from elsewhere (its From host is not ours)
        line = f"<sip:{account}@customer.example>;regint=0;answermode={answer}"
    (bs.dir / "accounts").write_text(line + "\n")
    return bs.start()


def registered(bs: Baresip, status: str = "200 OK", timeout: float = 10.0) -> str:
    """Wait for baresip's registration outcome line (the ctrl_tcp event may come before
    our control connection does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.findall(r"(?:\{0/UDP/v4\} |reg: \S+: )(\d{3} [A-Za-z ]+?) \(", bs.log())
        if found:
            assert found[-1].startswith(status), f"{bs.name}: {found[-1]}\n{bs.log()[-2000:]}"
            return found[-1]
        time.sleep(0.1)
    raise AssertionError(f"{bs.name} never registered:\n{bs.log()[-2000:]}")


def peak_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / 8000)[int(spectrum.argmax())])


def tail(path: Path, seconds: float) -> np.ndarray:
    samples, rate = read_wav(path)
    assert rate == 8000
    return samples[-int(seconds * 8000):]


def test_register_and_refusals_look_alike(server_factory, tmp_path):
    server = start(server_factory, tmp_path)
    good = phone(tmp_path, "good", "2001", 600, server, "demo2001")
    bad = phone(tmp_path, "bad", "2002", 600, server, "wrong-password")
    ghost = phone(tmp_path, "ghost", "2999", 600, server, "whatever")
    try:
        registered(good)
        # A wrong password and a user that does not exist get the same answer.
        assert registered(bad, "403") == registered(ghost, "403") == "403 Forbidden"
    finally:
        for p in (good, bad, ghost):
            p.stop()


def call_menu(caller: Baresip, server, option: str, answered_by: Baresip | None = None) -> None:
    """``caller`` dials the toll-free menu and presses ``option``; waits for the agent."""
    caller.dial(f"sip:{TOLL_FREE}@127.0.0.1:{server.sip_port}")
    caller.wait_for_event("CALL_ESTABLISHED", timeout=10)
    time.sleep(1.5)
    caller.sndcode(option)
    if answered_by is not None:
        answered_by.wait_for_event("CALL_ESTABLISHED", timeout=15)


def test_toll_free_menu_option_1_bridges_the_caller_to_2001(server_factory, tmp_path):
    server = start(server_factory, tmp_path)
    agent = phone(tmp_path, "agent", "2001", 600, server, "demo2001")
    caller = phone(tmp_path, "caller", "customer", 1000)
    try:
        registered(agent)
        call_menu(caller, server, "1", answered_by=agent)
        server.wait_for_log("bridged", timeout=5)
        time.sleep(3)                       # both talk
        caller.hangup()                     # the caller hangs up ...
        caller.wait_for_event("CALL_CLOSED", timeout=5)
        agent.wait_for_event("CALL_CLOSED", timeout=5)   # ... and that ends the agent's leg
        time.sleep(0.5)
        # Each side's recording holds the other's tone.
        assert abs(peak_hz(tail(agent.received_wav(), 2)) - 1000) < 10
        assert abs(peak_hz(tail(caller.received_wav(), 2)) - 600) < 10
        log = server.log()
        assert "menu_choice" in log and "to='sales'" in log
    finally:
        agent.stop()
        caller.stop()


def test_agent_hanging_up_ends_the_callers_leg(server_factory, tmp_path):
    server = start(server_factory, tmp_path)
    agent = phone(tmp_path, "agent", "2001", 600, server, "demo2001")
    caller = phone(tmp_path, "caller", "customer", 1000)
    try:
        registered(agent)
        call_menu(caller, server, "1", answered_by=agent)
        time.sleep(1.5)
        agent.hangup()
        agent.wait_for_event("CALL_CLOSED", timeout=5)
        caller.wait_for_event("CALL_CLOSED", timeout=5)
    finally:
        agent.stop()
        caller.stop()


def _queue_outcomes(log: str) -> list[tuple[str, str]]:
    """(call id, agent) of every answered queue caller, in the order they were answered."""
    return re.findall(r"call (\S+) queue_outcome .*kind='answered' agent='(\d+)'", log)


def test_two_callers_are_handed_to_two_agents_in_order(server_factory, tmp_path):
    server = start(server_factory, tmp_path)
    a1 = phone(tmp_path, "a1", "2001", 600, server, "demo2001")
    a2 = phone(tmp_path, "a2", "2002", 700, server, "demo2002")
    c1 = phone(tmp_path, "c1", "caller1", 1000)
    c2 = phone(tmp_path, "c2", "caller2", 1200)
    try:
        registered(a1)
        registered(a2)
        for caller in (c1, c2):
            caller.dial(f"sip:{TOLL_FREE}@127.0.0.1:{server.sip_port}")
            caller.wait_for_event("CALL_ESTABLISHED", timeout=10)
            time.sleep(1.0)
            caller.sndcode("2")
            time.sleep(0.5)
        deadline = time.monotonic() + 20
        while len(_queue_outcomes(server.log())) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        outcomes = _queue_outcomes(server.log())
        assert len(outcomes) == 2, server.log()[-4000:]
        enqueued = re.findall(r"call (\S+) enqueued ", server.log())
        assert [cid for cid, _ in outcomes] == enqueued[:2]      # first come, first served
        assert {agent for _, agent in outcomes} == {"2001", "2002"}
        a1.wait_for_event("CALL_ESTABLISHED", timeout=5)
        a2.wait_for_event("CALL_ESTABLISHED", timeout=5)
    finally:
        for p in (a1, a2, c1, c2):
            p.stop()


def test_an_agent_who_does_not_answer_is_skipped(server_factory, tmp_path):
    server = start(server_factory, tmp_path)
    sleepy = phone(tmp_path, "sleepy", "2001", 600, server, "demo2001", answer="manual")
    awake = phone(tmp_path, "awake", "2002", 700, server, "demo2002")
    caller = phone(tmp_path, "caller", "caller1", 1000)
    try:
        registered(sleepy)
        registered(awake)
        caller.dial(f"sip:{TOLL_FREE}@127.0.0.1:{server.sip_port}")
        caller.wait_for_event("CALL_ESTABLISHED", timeout=10)
        time.sleep(1.0)
        caller.sndcode("2")
        sleepy.wait_for_event("CALL_INCOMING", timeout=10)       # rung first (round-robin) ...
        awake.wait_for_event("CALL_ESTABLISHED", timeout=15)     # ... skipped after 3 s
        outcomes = _queue_outcomes(server.wait_for_log("queue_outcome", timeout=5))
        assert [agent for _, agent in outcomes] == ["2002"]
        sleepy.wait_for_event("CALL_CLOSED", timeout=5)          # its ringing was cancelled
    finally:
        for p in (sleepy, awake, caller):
            p.stop()


def test_agent_blind_transfers_the_caller_with_refer(server_factory, tmp_path):
    server = start(server_factory, tmp_path)
    alice = phone(tmp_path, "alice", "2001", 600, server, "demo2001")
    bob = phone(tmp_path, "bob", "2002", 700, server, "demo2002")
    caller = phone(tmp_path, "caller", "customer", 1000)
    try:
        registered(alice)
        registered(bob)
        call_menu(caller, server, "1", answered_by=alice)    # sales: rings 2001
        time.sleep(1.0)
        alice.command("transfer", f"sip:2002@127.0.0.1:{server.sip_port}")
        bob.wait_for_event("CALL_ESTABLISHED", timeout=10)    # the caller now talks to Bob
        alice.wait_for_event("CALL_CLOSED", timeout=10)       # and Alice is out of the call
        time.sleep(2.5)
        log = server.wait_for_log("transferred", timeout=5)
        assert "transfer to='2002'" in log, log[-3000:]
        caller.hangup()
        caller.wait_for_event("CALL_CLOSED", timeout=5)
        bob.wait_for_event("CALL_CLOSED", timeout=5)
        time.sleep(0.5)                                       # WAV headers are written on close
        assert abs(peak_hz(tail(caller.received_wav(), 2)) - 700) < 10
        assert abs(peak_hz(tail(bob.received_wav(), 2)) - 1000) < 10
        # The transferred leg is accounted for in the CDRs.
        import sqlite3
        rows = sqlite3.connect(server.data / "ivr.sqlite3").execute(
            "SELECT end_reason FROM cdrs").fetchall()
        assert ("transferred",) in rows, rows
    finally:
        for p in (alice, bob, caller):
            p.stop()


def test_extension_calls_extension_after_authenticating(server_factory, tmp_path):
    """2001 dials 2002: the INVITE is challenged (407), 2001 authenticates, and its call
    runs the internal plan, which dials 2002 and bridges them."""
    server = start(server_factory, tmp_path)
    alice = phone(tmp_path, "alice", "2001", 600, server, "demo2001")
    bob = phone(tmp_path, "bob", "2002", 700, server, "demo2002")
    try:
        registered(alice)
        registered(bob)
        alice.dial(f"sip:2002@127.0.0.1:{server.sip_port}")
        bob.wait_for_event("CALL_ESTABLISHED", timeout=10)
        alice.wait_for_event("CALL_ESTABLISHED", timeout=5)
        log = server.wait_for_log("bridged", timeout=5)
        assert "source='extension'" in log and "flow='internal'" in log, log[-3000:]
        time.sleep(2.5)
        alice.hangup()
        bob.wait_for_event("CALL_CLOSED", timeout=5)
        time.sleep(0.5)
        assert abs(peak_hz(tail(bob.received_wav(), 2)) - 600) < 10
        assert abs(peak_hz(tail(alice.received_wav(), 2)) - 700) < 10
    finally:
        alice.stop()
        bob.stop()
