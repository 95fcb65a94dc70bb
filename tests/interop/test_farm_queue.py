"""Queues across nodes (#18 item 2) with real processes: two ``ivr serve`` nodes on one
throwaway PostgreSQL, a SIPp caller on node B and then one on node A waiting in the same
queue, and one agent (extension 2001: a SIPp that answers, registered through node B by a
second SIPp).  The farm's first caller (B's) is connected first, then A's; A's caller is
announced as caller number 2 (B's caller counts).  Fails (never skips) under CI=true without
SIPp or PostgreSQL."""
from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest

from tests.interop.conftest import ROOT, free_port, require, start_server
from tests.interop.peers import SippProcess, free_media_port, sipp_messages
from tests.interop.test_postgres import wait_for
from tests.store.conftest import _need_postgres, fresh_database
from tests.store.pg_cluster import PgCluster

REGISTER = ROOT / "tests" / "interop" / "scenarios" / "register_contact.xml"
NUMBER = "+18005550142"

CONFIG = """\
realm: ivr.local
domains: [ivr.local]
algorithms: [MD5]
extensions:
  "2001":
    name: Alice
    ha1_sha256: bddecaed6dae6739bf9799694ba46c4abf3d40f32e34ae8f10010a6f565483aa
    ha1_md5: 87a565bc203f8cedf2e3139a4402bcff
queues:
  support:
    agents: ["2001"]
    ring_timeout: 10
    wrapup: 1
    max_wait: 60
    skip_after_no_answer: 2
    announce_position_every: 0
"""

PLAN = f"""\
routes:
  - number: "{NUMBER}"
    flow: queue
flows:
  queue:
    - answer
    - enqueue: {{queue: support}}
"""


@pytest.fixture
def cluster():
    _need_postgres()
    c = PgCluster()
    yield c
    c.destroy()


def _enqueued(log: str) -> list[str]:
    return re.findall(r"enqueued .*?position=(\d+)", log)


def test_callers_on_two_nodes_reach_one_agent_in_farm_arrival_order(cluster, tmp_path):
    url = fresh_database(cluster)
    config, plans = tmp_path / "config", tmp_path / "plans"
    config.mkdir()
    plans.mkdir()
    (config / "extensions.yaml").write_text(CONFIG)
    (plans / "queue.yaml").write_text(PLAN)
    nodes = []
    agent = None
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            nodes.append(start_server(tmp_path / name, dialplans=plans, config=config,
                                      extra=["--database", url, "--node-id", name]))
        a, b = nodes
        agent_port = free_port()
        agent_log = tmp_path / "agent-messages.log"
        first = SippProcess(tmp_path, f"127.0.0.1:{b.sip_port}", service=NUMBER,
                            duration_ms=9000, timeout=60, tag="first")
        wait_for(lambda: _enqueued(b.log()), what="B's caller in the queue")
        time.sleep(1.0)                          # A has read the farm's line meanwhile
        second = SippProcess(tmp_path, f"127.0.0.1:{a.sip_port}", service=NUMBER,
                             duration_ms=15000, timeout=60, tag="second")
        wait_for(lambda: _enqueued(a.log()), what="A's caller in the queue")
        assert _enqueued(b.log()) == ["1"] and _enqueued(a.log()) == ["2"]
        # the agent logs in (through B, from the port it then answers on: the registrar
        # keeps the address a REGISTER came from): the farm's first caller is B's
        reg = subprocess.run(
            [require("sipp"), f"127.0.0.1:{b.sip_port}", "-sf", str(REGISTER), "-s", "2001",
             "-i", "127.0.0.1", "-p", str(agent_port), "-m", "1", "-nostdin",
             "-au", "2001", "-ap", "demo2001", "-key", "contact_port", str(agent_port),
             "-timeout", "10s", "-timeout_error"], cwd=tmp_path, capture_output=True,
            timeout=20)
        assert reg.returncode == 0, reg.stdout[-2000:] + reg.stderr[-2000:]
        agent = subprocess.Popen(
            [require("sipp"), "-sn", "uas", "-i", "127.0.0.1", "-mi", "127.0.0.1",
             "-p", str(agent_port), "-mp", str(free_media_port()), "-m", "2", "-nostdin",
             "-trace_msg", "-message_file", str(agent_log), "-timeout", "60s"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for caller in (first, second):
            result = caller.wait(60)
            assert result.returncode == 0, result
        assert agent.wait(30) == 0                # took both calls
        invites = [lines for _, way, lines in sipp_messages(agent_log.read_text())
                   if way == "received" and lines[0].startswith("INVITE ")]
        vias = [next(l for l in lines if l.lower().startswith("via:")) for lines in invites]
        assert len(vias) == 2, vias
        assert f":{b.sip_port}" in vias[0] and f":{a.sip_port}" in vias[1]   # B's, then A's
        for node in nodes:
            log = node.log()
            assert re.search(r"queue_outcome .*kind='answered' agent='2001'", log), log[-3000:]
            assert "Traceback" not in log, log[-3000:]
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait()
        for node in nodes:
            node.stop(signal.SIGTERM)
