"""A farm for real (#18): Kamailio (deploy/kamailio/kamailio.cfg) in front of two ``ivr serve``
nodes sharing a throwaway PostgreSQL, started by scripts/farm.py as ``scripts/cluster up``
does, on 127.0.X.y with free ports; always torn down.

* SIPp calls through Kamailio are spread over both nodes (the CDRs name both);
* ``kill -9`` of one node: new calls still succeed through the other (Kamailio fails over
  and its probes take the dead node out), the call in progress on the survivor carries on;
  ``scripts/cluster restart node1`` brings it back and calls land on it again;
* baresip registers 2001 through Kamailio (its Path is stored), and the node that did *not*
  take the REGISTER rings 2001 for a caller: the call reaches the phone through Kamailio
  (baresip's SIP trace shows Kamailio's Via and Record-Route on the INVITE);
* a phone with a wrong password through Kamailio is banned by its own address (Kamailio is
  a trusted proxy: scripts/farm.py writes ``security: trusted_proxies``), its next request
  is answered 403 Banned, and baresip, through the same Kamailio, still registers and calls.
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import psycopg
import pytest

from tests.interop.conftest import ROOT, require
from tests.interop.peers import SippProcess, sipp
from tests.interop.test_extensions import phone, registered
from tests.store.conftest import _need_postgres

SCENARIO = ROOT / "tests" / "interop" / "scenarios" / "uac_via_proxy.xml"
API_KEY = "farm-test-key"
RING_ALICE = """\
routes:
  - name: alice
    flow: ring_alice
flows:
  ring_alice:
    - dial:
        to: "2001"
        timeout: 15
"""


def _farm_module():
    spec = importlib.util.spec_from_file_location("farm", ROOT / "scripts" / "farm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


farm = _farm_module()


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    _need_postgres()
    require("kamailio")
    require("sipp")
    monkeypatch.setenv("IVR_API_KEY", API_KEY)
    run = tmp_path / "farm"
    dialplans = tmp_path / "dialplans"
    dialplans.mkdir()
    for plan in (ROOT / "dialplans").glob("*.yaml"):
        (dialplans / plan.name).write_text(plan.read_text())
    (dialplans / "farm.yaml").write_text(RING_ALICE)
    state = farm.up(run, 2, dialplans=dialplans,
                    node_args=["--speech-engine", "off", "--drain-timeout", "5"])
    try:
        yield state
    finally:
        farm.down(run)
        assert not any(p["running"] for p in farm.status(run)["processes"])


def kamailio(state) -> str:
    return f"{state['kamailio']['address']}:{state['kamailio']['sip_port']}"


def cdrs(state) -> list[tuple]:
    with psycopg.connect(state["postgresql"]["url"]) as conn:
        return [(json.loads(extra or "{}").get("node"), outcome, end_reason)
                for extra, outcome, end_reason in conn.execute(
                    "SELECT extra, outcome, end_reason FROM cdrs ORDER BY setup_at")]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def node_log(node) -> str:
    with open(node["log"], errors="replace") as f:
        return f.read()


def test_calls_spread_over_nodes_and_survive_a_killed_node(cluster, tmp_path):
    state = cluster
    r = sipp(tmp_path, kamailio(state), scenario=SCENARIO, service="echo", duration_ms=200,
             calls=4, rate=5, tag="spread")
    assert r.returncode == 0 and r.stat("SuccessfulCall(C)") == 4, str(r)
    rows = wait_for(lambda: len(cdrs(state)) == 4 and cdrs(state), 10, "four CDRs")
    assert {node for node, _, _ in rows} == {"node1", "node2"}, rows
    assert all(outcome == "answered" for _, outcome, _ in rows)

    # two long calls, one on each node (round robin)
    long_calls = SippProcess(tmp_path, kamailio(state), scenario=SCENARIO, service="echo",
                             duration_ms=6000, calls=2, rate=10, tag="long")
    node1, node2 = state["nodes"]
    wait_for(lambda: all(node_log(n).count("flow_start flow='echo_test'") == 3
                         for n in (node1, node2)), 10, "a long call on each node")
    os.kill(node1["pid"], signal.SIGKILL)
    killed_at = time.monotonic()
    r = sipp(tmp_path, kamailio(state), scenario=SCENARIO, service="echo", duration_ms=200,
             calls=1, tag="first-after")
    assert r.returncode == 0 and r.stat("SuccessfulCall(C)") == 1, str(r)
    assert time.monotonic() - killed_at < 3.0          # failover, not a long outage
    r = sipp(tmp_path, kamailio(state), scenario=SCENARIO, service="echo", duration_ms=200,
             calls=4, rate=5, tag="after")
    assert r.returncode == 0 and r.stat("SuccessfulCall(C)") == 4, str(r)
    done = long_calls.wait(40)
    assert done.stat("SuccessfulCall(C)") == 1, str(done)   # the survivor's call carried on
    rows = wait_for(lambda: len(cdrs(state)) >= 10 and cdrs(state), 10, "the CDRs")
    assert [row for row in rows[4:] if row[0] == "node1"] == [], rows  # nothing after the kill
    survivors = [row for row in rows if row[0] == "node2"]
    assert len(survivors) == 2 + 1 + 1 + 4 and all(o == "answered" for _, o, _ in survivors)
    assert "Traceback" not in node_log(node2)
    down = [d for d in farm.status(state["run_dir"])["dispatcher"]
            if d["uri"].endswith(f":{node1['sip_port']}")]
    assert down and not down[0]["state"].startswith("A"), down   # probes took it out

    # scripts/cluster restart node1: the same node back, Kamailio sends it calls again
    out = subprocess.run([str(ROOT / "scripts" / "cluster"), "restart", "node1", "--run",
                          state["run_dir"]], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    [again] = [p for p in json.loads(out.stdout)["processes"] if p["name"] == "node1"]
    assert again["running"] and again["pid"] != node1["pid"]
    assert again["sip_port"] == node1["sip_port"]
    wait_for(lambda: all(d["state"].startswith("A")
                         for d in farm.status(state["run_dir"])["dispatcher"]), 10,
             "Kamailio to take node1 back")
    r = sipp(tmp_path, kamailio(state), scenario=SCENARIO, service="echo", duration_ms=200,
             calls=4, rate=5, tag="restarted")
    assert r.returncode == 0 and r.stat("SuccessfulCall(C)") == 4, str(r)
    rows = wait_for(lambda: len(cdrs(state)) >= 14 and cdrs(state), 10, "the CDRs")
    assert "node1" in {row[0] for row in rows[10:]}, rows


def bad_password_phone(state, address: str, attempts: int) -> list[tuple[int, str]]:
    """REGISTERs for 2002 with a wrong password from ``address`` through Kamailio (one
    Call-ID: one node); each answer's (status, reason), None when nothing came back."""
    from ivr.sip.auth import build_authorization, parse_challenge
    from ivr.sip.headers import Headers
    from ivr.sip.message import Request, parse_datagram, serialize
    kam = (state["kamailio"]["address"], state["kamailio"]["sip_port"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 0))
    sock.settimeout(3)
    port = sock.getsockname()[1]
    answers, challenge = [], None
    try:
        for n in range(1, attempts + 2):
            h = Headers()
            h.add("Via", f"SIP/2.0/UDP {address}:{port};branch=z9hG4bKbad{n};rport")
            h.add("Max-Forwards", "70")
            h.add("From", "<sip:2002@ivr.local>;tag=bad")
            h.add("To", "<sip:2002@ivr.local>")
            h.add("Call-ID", f"bad-password-{address}")
            h.add("CSeq", f"{n} REGISTER")
            h.add("Contact", f"<sip:2002@{address}:{port}>")
            h.add("Expires", "60")
            if challenge is not None:
                h.add("Authorization", build_authorization(
                    challenge, "REGISTER", "sip:ivr.local", "2002", "wrong", cnonce="c", nc=n))
            sock.sendto(serialize(Request("REGISTER", "sip:ivr.local", h)), kam)
            try:
                r = parse_datagram(sock.recv(65535))
            except socket.timeout:
                answers.append(None)
                continue
            if challenge is None:
                assert r.status == 401, r
                challenge = parse_challenge(r.headers.get_all("WWW-Authenticate")[0])
            else:
                answers.append((r.status, r.reason))
    finally:
        sock.close()
    return answers


def bans(node) -> list[str]:
    req = urllib.request.Request(f"http://{node['address']}:{node['http_port']}/v1/security/bans",
                                 headers={"X-API-Key": API_KEY})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return [b["address"] for b in json.loads(resp.read())["bans"]]


def test_a_phone_registered_through_kamailio_is_called_by_the_other_node(cluster, tmp_path):
    state = cluster
    kam = state["kamailio"]
    # a phone with a wrong password, through Kamailio: banned by its own address (the
    # default max_failures: 5), its next REGISTER refused at once, Kamailio never banned
    bad = kam["address"].rsplit(".", 1)[0] + ".50"
    answers = bad_password_phone(state, bad, 6)
    assert answers == [(403, "Forbidden")] * 5 + [(403, "Banned")], answers
    # the node that decided lists the ban at once; the farm shares it within a round (2 s),
    # so every node then lists (and enforces) it
    assert [bad] in [bans(n) for n in state["nodes"]]
    deadline = time.monotonic() + 8
    while [bans(n) for n in state["nodes"]] != [[bad]] * len(state["nodes"]):
        assert time.monotonic() < deadline, [bans(n) for n in state["nodes"]]
        time.sleep(0.2)
    assert all(d["state"].startswith("A") for d in farm.status(state["run_dir"])["dispatcher"])

    class Through:  # what tests.interop.test_extensions.phone needs of a server
        sip_port = kam["sip_port"]
    bs = phone(tmp_path, "alice", "2001", 600, Through, "demo2001")
    try:
        account = (f"<sip:2001@{kam['address']}:{kam['sip_port']}>;auth_pass=demo2001;"
                   "regint=60;answermode=auto")
        (bs.dir / "accounts").write_text(account + "\n")
        bs.stop()
        traced = tmp_path / "baresip-traced"   # baresip -s: every SIP message in its log
        traced.write_text(f"#!/bin/sh\nexec {bs.binary} -s \"$@\"\n")
        traced.chmod(0o755)
        bs.binary = str(traced)
        bs.start()
        registered(bs)
        with psycopg.connect(state["postgresql"]["url"]) as conn:
            [(node, path)] = conn.execute(
                "SELECT node, path FROM registrations WHERE aor = '2001'").fetchall()
        assert json.loads(path)[0].startswith(f"<sip:{kam['address']}:{kam['sip_port']};lr")
        other = next(n for n in state["nodes"] if n["id"] != node)
        time.sleep(2.5)                                    # one housekeeping refresh
        # a caller reaches the other node directly; its dialplan rings extension 2001
        call = SippProcess(tmp_path, f"{other['address']}:{other['sip_port']}",
                           scenario=SCENARIO, service="alice", duration_ms=2000, tag="alice")
        bs.wait_for_event("CALL_ESTABLISHED", timeout=15)
        done = call.wait(30)
        assert done.returncode == 0 and done.stat("SuccessfulCall(C)") == 1, str(done)
        log = node_log(other)
        assert "Traceback" not in log
        # the node's INVITE went to the phone through Kamailio (the Path as its Route):
        # Kamailio's Via on top and its Record-Route
        invite = next(m for m in bs.log().split("INVITE sip:2001")[1:]
                      if f"{other['address']}:{other['sip_port']}" in m)
        head = invite.replace("\r", "").split("\n\n")[0]
        assert f"Via: SIP/2.0/UDP {kam['address']}:{kam['sip_port']};" in head, head
        assert f"Record-Route: <sip:{kam['address']}:{kam['sip_port']};" in head, head
        # and the phone calls out through the same Kamailio (the echo line)
        bs.dial(f"sip:echo@{kam['address']}:{kam['sip_port']}")
        bs.wait_for_event("CALL_ESTABLISHED", timeout=15, count=2)
        bs.hangup()
        bs.wait_for_event("CALL_CLOSED", timeout=10, count=2)
    finally:
        bs.stop()
