"""Two ``ivr serve`` nodes on one PostgreSQL (#18 item 5): a click-to-call session started on
node A is read and cancelled through node B, ``GET /v1/calls`` on B lists A's call, and the
session's status webhooks (through the database's outbox) arrive in order, each with its
idempotency key."""
from __future__ import annotations

import signal
import socket
import time

import pytest

from tests.interop.conftest import start_server
from tests.interop.test_click_to_call import API_KEY, Hooks, api
from tests.interop.test_extensions import CONFIG
from tests.interop.test_postgres import wait_for
from tests.store.conftest import _need_postgres, fresh_database
from tests.store.pg_cluster import PgCluster


@pytest.fixture
def cluster():
    _need_postgres()
    c = PgCluster()
    yield c
    c.destroy()


def test_a_session_started_on_a_is_read_and_cancelled_on_b(cluster, tmp_path):
    url = fresh_database(cluster)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a carrier that never answers
    silent.bind(("127.0.0.1", 0))
    config = tmp_path / "config"
    config.mkdir()
    (config / "extensions.yaml").write_text(
        CONFIG + f"trunks:\n  carrier:\n    address: \"127.0.0.1:{silent.getsockname()[1]}\"\n")
    # the test polls a node ten times a second, and in a farm each node admits its share of
    # a key's rate (rate / live nodes): the default 5/s would answer 429 here
    (config / "api.yaml").write_text("rate: 100\nburst: 200\n")
    env = {"IVR_API_KEY": API_KEY, "IVR_WEBHOOK_SECRET": "farm-secret"}
    nodes = []
    hooks = Hooks()
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            nodes.append(start_server(tmp_path / name, config=config, env=env,
                                      extra=["--database", url, "--node-id", name]))
        a, b = nodes
        status, session = api(a, "POST", "/v1/click-to-call",
                              {"agent": "+12125550199", "customer": "+12125551234",
                               "callback_url": hooks.url})
        assert status == 201, session
        sid = session["id"]
        read = wait_for(lambda: (r := api(b, "GET", f"/v1/click-to-call/{sid}")[1])
                        ["state"] == "ringing_agent" and r, what="A's session seen on B")
        assert read["node"] == "a" and read["id"] == sid
        assert [e["event"] for e in read["events"]] == ["initiated", "ringing_agent"]
        calls = wait_for(lambda: [c for c in api(b, "GET", "/v1/calls")[1]["calls"]
                                  if c["id"] == session["agent_leg_id"]],
                         what="A's call listed on B")
        assert calls[0]["node"] == "a"
        status, one = api(b, "GET", f"/v1/calls/{session['agent_leg_id']}")
        assert status == 200 and one["node"] == "a", one
        listed = {s["id"]: s for s in api(b, "GET", "/v1/click-to-call")[1]["sessions"]}
        assert listed[sid]["node"] == "a", listed
        status, asked = api(b, "DELETE", f"/v1/click-to-call/{sid}")
        assert status == 202 and asked["cancel_requested"] is True, asked
        final = wait_for(lambda: (r := api(a, "GET", f"/v1/click-to-call/{sid}")[1])
                         ["state"] == "failed" and r, what="A cancels it")
        assert final["reason"] == "cancelled"
        assert wait_for(lambda: api(b, "GET", f"/v1/click-to-call/{sid}")[1]["state"]
                        == "failed", what="B sees it ended")
        with pytest.raises(Exception) as gone:      # a second DELETE: already ended
            api(b, "DELETE", f"/v1/click-to-call/{sid}")
        assert getattr(gone.value, "code", None) == 409
        with pytest.raises(Exception) as missing:
            api(b, "GET", "/v1/click-to-call/c2c_nope")
        assert getattr(missing.value, "code", None) == 404
        wait_for(lambda: "failed" in hooks.events(), what="the final webhook")
        payloads = [p for p, _, _ in hooks.received]
        assert [p["event"] for p in payloads] == ["initiated", "ringing_agent", "failed"]
        assert [p["id"] for p in payloads] == [f"{sid}:1", f"{sid}:2", f"{sid}:3"]
        for node in nodes:
            assert "Traceback" not in node.log(), node.log()[-3000:]
    finally:
        hooks.httpd.shutdown()
        silent.close()
        for node in nodes:
            node.stop(signal.SIGTERM)
        time.sleep(0.1)
