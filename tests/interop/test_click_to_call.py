"""Click-to-call end to end: the HTTP API calls a real agent phone (baresip registered as
2001), then a real customer phone through a trunk, bridges them, sends signed status
webhooks in order, and leaves CDRs for both legs."""
from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from ivr.httpclient.signing import verify
from tests.interop.peers import Baresip
from tests.interop.test_extensions import CONFIG, peak_hz, registered, tail, tone_wav

API_KEY = "test-key-123"


class Hooks:
    def __init__(self) -> None:
        self.received: list[tuple[dict, str, bytes]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hooks.received.append((json.loads(body), self.headers["X-IVR-Signature"], body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def events(self) -> list[str]:
        return [payload["event"] for payload, _, _ in self.received]


def api(server, method: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{server.http_port}{path}", data=data,
                                 method=method, headers={"X-API-Key": API_KEY,
                                                         "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read() or b"null")


def test_click_to_call_bridges_agent_and_customer(server_factory, tmp_path):
    customer = Baresip(tmp_path, "customer", source=tone_wav(tmp_path / "c.wav", 1000))
    (customer.dir / "accounts").write_text("<sip:+12125551234@127.0.0.1>;regint=0;answermode=auto\n")
    customer.start()
    config = tmp_path / "config"
    config.mkdir()
    trunk = f"trunks:\n  carrier:\n    address: \"127.0.0.1:{customer.sip_port}\"\n"
    (config / "extensions.yaml").write_text(CONFIG + trunk)
    secret = "webhook-secret-for-test"
    server = server_factory(extra=["--config", str(config)],
                            env={"IVR_API_KEY": API_KEY, "IVR_WEBHOOK_SECRET": secret})
    agent = Baresip(tmp_path, "agent", source=tone_wav(tmp_path / "a.wav", 600))
    (agent.dir / "accounts").write_text(
        f"<sip:2001@127.0.0.1:{server.sip_port}>;auth_pass=demo2001;regint=60;answermode=auto\n")
    agent.start()
    hooks = Hooks()
    try:
        registered(agent)
        status, session = api(server, "POST", "/v1/click-to-call",
                              {"agent": "2001", "customer": "+12125551234",
                               "callback_url": hooks.url, "caller_id": "+18005550100"})
        assert status == 201, session
        agent.wait_for_event("CALL_ESTABLISHED", timeout=10)
        customer.wait_for_event("CALL_ESTABLISHED", timeout=10)
        time.sleep(3)                                   # they talk
        customer.hangup()
        customer.wait_for_event("CALL_CLOSED", timeout=5)
        agent.wait_for_event("CALL_CLOSED", timeout=5)
        time.sleep(0.5)
        # Each side heard the other.
        assert abs(peak_hz(tail(agent.received_wav(), 2)) - 1000) < 10
        assert abs(peak_hz(tail(customer.received_wav(), 2)) - 600) < 10
        # The session's status webhooks, in order, each signed.
        deadline = time.monotonic() + 10
        while "completed" not in hooks.events() and time.monotonic() < deadline:
            time.sleep(0.1)
        events = hooks.events()
        expected = ["initiated", "ringing_agent", "agent_answered", "ringing_customer",
                    "bridged", "completed"]
        assert [e for e in events if e in expected] == expected, events
        sequences = [payload["sequence"] for payload, _, _ in hooks.received]
        assert sequences == sorted(sequences) and sequences[0] == 1
        for payload, signature, body in hooks.received:
            assert verify(secret.encode(), signature, body, time.time()), signature
        # The session record and both legs' CDRs.
        status, final = api(server, "GET", f"/v1/click-to-call/{session['id']}")
        assert final["state"] == "completed", final
        rows = sqlite3.connect(server.data / "ivr.sqlite3").execute(
            "SELECT role, to_number, outcome FROM cdrs WHERE session_id = ?",
            (session["id"],)).fetchall()
        roles = {role: (to, outcome) for role, to, outcome in rows}
        assert roles.get("agent", (None, None))[1] == "answered", rows
        assert roles.get("customer") == ("+12125551234", "answered"), rows
    finally:
        hooks.httpd.shutdown()
        agent.stop()
        customer.stop()
