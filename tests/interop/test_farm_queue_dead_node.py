"""A node dies with callers in the farm's queue (#18): two ``ivr serve`` nodes on one
throwaway PostgreSQL, a SIPp caller queued on node B, then one on node A; ``kill -9`` of B.
B's caller would head the farm's line forever (only the node holding a caller matches it);
A clears B's rows once B's heartbeat is 10 s old (ivr/store/node_liveness.py), and the
agent, logging in through A, is offered A's caller.  Fails (never skips) under CI=true
without SIPp or PostgreSQL."""
from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.interop.conftest import free_port, require, start_server
from tests.interop.peers import SippProcess, free_media_port, sipp_messages
from tests.interop.test_farm_queue import CONFIG, NUMBER, PLAN, REGISTER, _enqueued
from tests.interop.test_postgres import wait_for
from tests.store.conftest import _need_postgres, fresh_database
from tests.store.pg_cluster import PgCluster


@pytest.fixture
def cluster():
    _need_postgres()
    c = PgCluster()
    yield c
    c.destroy()


def test_a_dead_nodes_caller_stops_blocking_the_farms_line(cluster, tmp_path):
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
        doomed = SippProcess(tmp_path, f"127.0.0.1:{b.sip_port}", service=NUMBER,
                             duration_ms=6000, timeout=15, tag="doomed")
        wait_for(lambda: _enqueued(b.log()), what="B's caller in the queue")
        time.sleep(1.0)
        waiting = SippProcess(tmp_path, f"127.0.0.1:{a.sip_port}", service=NUMBER,
                              duration_ms=16000, timeout=60, tag="waiting")
        wait_for(lambda: _enqueued(a.log()), what="A's caller in the queue")
        assert _enqueued(a.log()) == ["2"]
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(10)
        killed = time.monotonic()
        agent_port = free_port()
        agent_log = tmp_path / "agent-messages.log"
        reg = subprocess.run(
            [require("sipp"), f"127.0.0.1:{a.sip_port}", "-sf", str(REGISTER), "-s", "2001",
             "-i", "127.0.0.1", "-p", str(agent_port), "-m", "1", "-nostdin",
             "-au", "2001", "-ap", "demo2001", "-key", "contact_port", str(agent_port),
             "-timeout", "10s", "-timeout_error"], cwd=tmp_path, capture_output=True,
            timeout=20)
        assert reg.returncode == 0, reg.stdout[-2000:] + reg.stderr[-2000:]
        agent = subprocess.Popen(
            [require("sipp"), "-sn", "uas", "-i", "127.0.0.1", "-mi", "127.0.0.1",
             "-p", str(agent_port), "-mp", str(free_media_port()), "-m", "1", "-nostdin",
             "-trace_msg", "-message_file", str(agent_log), "-timeout", "40s"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: agent_log.exists() and "INVITE sip:" in agent_log.read_text(),
                 timeout=30, what="A's caller offered to the agent")
        offered_after = time.monotonic() - killed
        assert 7.0 < offered_after < 20.0, offered_after  # B's heartbeat had to age 10 s
        assert agent.wait(40) == 0, a.log()[-3000:]      # the call went through and ended
        result = waiting.wait(30)
        assert result.returncode == 0, result
        doomed.wait(20)                                   # its node died under it
        invites = [lines for _, way, lines in sipp_messages(agent_log.read_text())
                   if way == "received" and lines[0].startswith("INVITE ")]
        assert len(invites) == 1 and any(f":{a.sip_port}" in line for line in invites[0])
        log = a.log()
        assert "node b is silent: cleared its 1 queued caller(s)" in log, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait()
        for node in nodes:
            if node.proc.poll() is None:
                node.stop(signal.SIGTERM)
