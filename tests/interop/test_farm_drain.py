"""Drain (#18): SIGTERM on a node of a farm (Kamailio + two nodes + PostgreSQL, from
scripts/farm.py): the node answers OPTIONS and new INVITEs with 503, so Kamailio takes it out
of the set and sends new calls to the other node, while the draining node's calls in
progress finish normally with their CDRs; the node exits when its last call has ended."""
from __future__ import annotations

import os
import signal
import time

from tests.interop.conftest import require
from tests.interop.peers import SippProcess, sipp
from tests.interop.test_farm import SCENARIO, cdrs, farm, kamailio, node_log, wait_for
from tests.store.conftest import _need_postgres


def test_sigterm_drains_a_node_while_kamailio_sends_new_calls_elsewhere(tmp_path):
    _need_postgres()
    require("kamailio")
    require("sipp")
    run = tmp_path / "farm"
    state = farm.up(run, 2, node_args=["--speech-engine", "off", "--drain-timeout", "60"])
    try:
        node1, node2 = state["nodes"]
        # four calls of 5 s, two on each node (round robin)
        long_calls = SippProcess(tmp_path, kamailio(state), scenario=SCENARIO, service="echo",
                                 duration_ms=5000, calls=4, rate=10, tag="long")
        wait_for(lambda: all(node_log(n).count("flow_start flow='echo_test'") == 2
                             for n in (node1, node2)), 10, "two calls up on each node")
        os.kill(node1["pid"], signal.SIGTERM)
        termed_at = time.monotonic()
        wait_for(lambda: "draining: refusing new calls (503)" in node_log(node1), 5, "drain")

        # new calls meanwhile: all succeed, all on node2 (a 503 from node1 goes to the next)
        r = sipp(tmp_path, kamailio(state), scenario=SCENARIO, service="echo", duration_ms=200,
                 calls=10, rate=10, tag="during")
        assert r.returncode == 0 and r.stat("SuccessfulCall(C)") == 10, str(r)
        states = {d["uri"]: d["state"] for d in farm.status(run)["dispatcher"]}
        assert not states[f"sip:{node1['address']}:{node1['sip_port']}"].startswith("A"), states
        assert states[f"sip:{node2['address']}:{node2['sip_port']}"].startswith("A"), states
        assert farm._alive(node1["pid"])            # still up: its two calls are in progress
        assert time.monotonic() - termed_at < 4.5   # ... which is before they end

        done = long_calls.wait(30)
        assert done.returncode == 0 and done.stat("SuccessfulCall(C)") == 4, str(done)
        # the node exits by itself once its last call ended
        wait_for(lambda: not farm._alive(node1["pid"]), 10, "node1 to exit")
        log1 = node_log(node1)
        assert "all calls ended; stopping" in log1 and "drain timeout" not in log1
        rows = wait_for(lambda: len(cdrs(state)) == 14 and cdrs(state), 10, "14 CDRs")
        assert all(outcome == "answered" for _, outcome, _ in rows), rows
        by_node = [node for node, _, _ in rows]
        assert by_node.count("node1") == 2 and by_node.count("node2") == 12, rows
        assert "Traceback" not in log1 and "Traceback" not in node_log(node2)
    finally:
        farm.down(run)
