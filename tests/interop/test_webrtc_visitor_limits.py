"""Anonymous browser callers against a real ``ivr serve`` (issue #16 item 4): a SIP over
WebSocket client that never authenticates (as the /demo/webrtc page) gets 403 for a number
that is not a ``webrtc:`` target, reaches the echo line (a default target), and past
``calls_per_minute`` gets 503 with Retry-After; its CDR says ``caller_kind`` ``webrtc``
with the address its WebSocket came from."""
from __future__ import annotations

import secrets
import shutil
import socket
import sqlite3
import time

import pytest

from .conftest import BUNDLED_CONFIG
from .test_ws_echo import ALIAS, OFFER, SyncWs, request

pytestmark = pytest.mark.interop


def invite(client, uri, rtp_port):
    call_id = f"{secrets.token_hex(8)}@{ALIAS}"
    client.send(request("INVITE", uri, 1, call_id, body=OFFER.format(port=rtp_port)))
    return call_id, client.response("INVITE")


def cdr(server, call_id, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = sqlite3.connect(server.data / "ivr.sqlite3")
        conn.row_factory = sqlite3.Row
        try:
            row = conn.execute("SELECT * FROM cdrs WHERE leg_id = ?", (call_id,)).fetchone()
        except sqlite3.OperationalError:
            row = None
        finally:
            conn.close()
        if row is not None:
            return dict(row)
        time.sleep(0.1)
    raise AssertionError(f"no CDR for {call_id}")


def test_a_browser_visitor_reaches_only_its_targets_at_its_rate(server_factory, tmp_path):
    config = tmp_path / "config"
    shutil.copytree(BUNDLED_CONFIG, config)
    extensions = config / "extensions.yaml"
    text = extensions.read_text()
    assert text.count("\n  calls_per_minute: 6\n") == 1  # the bundled webrtc: default
    extensions.write_text(text.replace("\n  calls_per_minute: 6\n", "\n  calls_per_minute: 3\n"))
    server = server_factory(config=config)
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    client = SyncWs(server.http_port)
    visitor = "127.0.0.1:%d" % client.sock.getsockname()[1]

    _, forbidden = invite(client, "sip:2001@127.0.0.1", rtp.getsockname()[1])
    assert forbidden.status == 403, forbidden
    server.wait_for_log("from browser visitor 127.0.0.1")

    call_id, ok = invite(client, "sip:echo@127.0.0.1", rtp.getsockname()[1])
    assert ok.status == 200, ok
    tag = ok.to.tag
    client.send(request("ACK", "sip:echo@127.0.0.1", 1, call_id, to_tag=tag))
    client.send(request("BYE", "sip:echo@127.0.0.1", 2, call_id, to_tag=tag))
    assert client.response("BYE").status == 200
    row = cdr(server, call_id)
    assert (row["caller_kind"], row["source_address"], row["sip_transport"]) == (
        "webrtc", visitor, "ws"), row
    assert "webrtc_visitor" in row["extra"]  # the path log

    _, third = invite(client, "sip:+18005550199@127.0.0.1", rtp.getsockname()[1])
    assert third.status == 403  # the third token, spent on a number that is not a target
    _, limited = invite(client, "sip:echo@127.0.0.1", rtp.getsockname()[1])
    rtp.close()
    assert limited.status == 503, limited
    assert 1 <= int(limited.headers.get("Retry-After")) <= 20
    server.wait_for_log("refused: 503 Service Unavailable (over 3 calls per minute)")
