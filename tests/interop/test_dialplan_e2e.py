"""Acceptance of YAML dialplans end to end (issue "YAML dialplans"): a real softphone walks
the bundled toll-free menu, a webhook step follows a live HTTP server's reply, and edits to
the YAML take effect on the next call (a broken edit keeps the previous plan)."""
from __future__ import annotations

import json
import re
import shutil
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.interop.conftest import ROOT
from tests.interop.peers import SCENARIOS, Baresip, sipp

E2E = ROOT / "tests" / "interop" / "dialplans" / "e2e"


def call_events(log: str, call_id: str, names: tuple[str, ...]) -> list[str]:
    """The path-log lines of one call whose event is one of ``names``, in order."""
    out = []
    for line in log.splitlines():
        m = re.search(rf"call {re.escape(call_id)} (\w+) (.*)$", line)
        if m and m.group(1) in names:
            out.append(f"{m.group(1)} {m.group(2)}")
    return out


def cdr_route(server, leg_id: str, timeout: float = 5.0) -> str | None:
    """The ``route`` column of a leg's CDR, once the server has committed it."""
    deadline = time.monotonic() + timeout
    while True:
        conn = sqlite3.connect(server.data / "ivr.sqlite3")
        try:
            row = conn.execute("SELECT route FROM cdrs WHERE leg_id = ?", (leg_id,)).fetchone()
        finally:
            conn.close()
        if row is not None or time.monotonic() > deadline:
            return row[0] if row else None
        time.sleep(0.1)


def test_tollfree_menu_choice_invalid_and_timeout_paths(server, tmp_path):
    phone = Baresip(tmp_path).start()
    try:
        phone.dial(f"sip:+18005550100@{server.sip}")
        call_id = phone.wait_for_event("CALL_ESTABLISHED")["id"]
        server.wait_for_log(f"call {call_id} step flow='main_menu' verb='menu'", timeout=15)
        # a wrong key during the menu prompt (barge-in): the invalid path, then the menu again
        phone.sndcode("7")
        server.wait_for_log(f"call {call_id} menu_invalid", timeout=5)
        # no key at all: invalid prompt + menu prompt (~7 s), then the 5 s timeout
        server.wait_for_log(f"call {call_id} menu_timeout", timeout=25)
        # after the no-input prompt the menu plays again: 1 takes the sales branch
        time.sleep(3.0)
        phone.sndcode("1")
        log = server.wait_for_log(f"call {call_id} step flow='sales'", timeout=10)
        phone.hangup()
        phone.wait_for_event("CALL_CLOSED")
        log = server.wait_for_log(f"call {call_id} ended: remote-bye (remote)")
    finally:
        phone.stop()
    assert f"call {call_id} route called='+18005550100' flow='main_menu'" in log
    path = call_events(log, call_id, ("dtmf", "menu_choice", "menu_invalid", "menu_timeout"))
    assert path == [
        "dtmf digit='7' mode='rfc4733'",
        "menu_invalid verb='menu' line=13 digits='7' failures=1",
        "menu_timeout verb='menu' line=13 timeouts=1",
        "dtmf digit='1' mode='rfc4733'",
        "menu_choice verb='menu' line=13 digits='1' to='sales'",
    ], path
    assert f"call {call_id} step flow='sales'" in log
    assert cdr_route(server, call_id) == "number:+18005550100"  # which route took the call


class _Hook(BaseHTTPRequestHandler):
    replies: list[tuple[int, dict]] = []
    requests: list[dict] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).requests.append({"path": self.path, "json": json.loads(body),
                                    "call_id": self.headers.get("X-Call-Id")})
        status, reply = type(self).replies.pop(0)
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_webhook_reply_sets_variables_and_goes_to_its_flow(server_factory, tmp_path):
    handler = type("Hook", (_Hook,), {"replies": [
        (200, {"variables": {"name": "Bob", "tier": "gold"}, "goto": "vip"}),
        (500, {"error": "down"}),
    ], "requests": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        plans = tmp_path / "plans"
        shutil.copytree(E2E, plans)
        lines = plans / "lines.yaml"
        lines.write_text(lines.read_text().replace("http://127.0.0.1:9/hook",
                                                   f"http://127.0.0.1:{httpd.server_port}/hook"))
        server = server_factory(dialplans=plans)
        for n in (1, 2):
            r = sipp(tmp_path, server.sip, scenario=SCENARIOS / "uac_no_rtp.xml",
                     service="+15550001000", timeout=20, tag=f"hook{n}")
            assert r.returncode == 0, str(r)
        log = server.log()
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert len(handler.requests) == 2
    first = handler.requests[0]
    assert first["path"] == "/hook"
    assert first["json"]["called"] == "+15550001000"
    assert first["json"]["variables"]["account"] == "A-17"
    assert first["call_id"] == first["json"]["call_id"]
    ok_call, failed_call = (req["call_id"] for req in handler.requests)
    assert f"call {ok_call} webhook_reply verb='webhook'" in log
    assert "variables='name,tier' goto='vip'" in log
    assert f"call {ok_call} log verb='log' line=21 message='vip customer Bob tier gold'" in log
    assert f"call {failed_call} webhook_failed" in log and "HTTP 500" in log
    assert f"call {failed_call} log verb='log' line=26 message='webhook failed'" in log
    assert "webhook fell through" not in log


def _call_live(server, tmp_path, tag: str) -> str:
    r = sipp(tmp_path, server.sip, scenario=SCENARIOS / "uac_no_rtp.xml",
             service="+15550002000", timeout=20, tag=tag)
    assert r.returncode == 0, str(r)
    call_id = re.search(r"Call-ID: (\S+)", r.messages).group(1)
    return call_id


def test_live_edit_takes_effect_and_broken_edit_keeps_previous_plan(server_factory, tmp_path):
    plans = tmp_path / "plans"
    shutil.copytree(E2E, plans)
    lines = plans / "lines.yaml"
    original = lines.read_text()
    server = server_factory(dialplans=plans)

    first = _call_live(server, tmp_path, "live1")
    log = server.wait_for_log(f"call {first} flow_end")
    assert f"call {first} route called='+15550002000' flow='live'" in log
    assert f"call {first} log verb='log' line=32 message='live version one'" in log

    # edit 1: the route now goes to live_two, and live_two speaks different text
    edited = original.replace('''  - number: "+15550002000"
    flow: live''', '''  - number: "+15550002000"
    flow: live_two''').replace('say: "Flow two."', 'say: "Flow two, edited."')
    assert edited != original
    lines.write_text(edited)
    time.sleep(1.5)
    second = _call_live(server, tmp_path, "live2")
    log = server.wait_for_log(f"call {second} flow_end")
    assert f"call {second} route called='+15550002000' flow='live_two'" in log
    assert f"call {second} say verb='say' line=39 text='Flow two, edited.'" in log

    # edit 2: a broken plan (an unknown verb on line 38): the reload error names
    # file:line:col, and the next call still runs the previous plan
    before = len(server.log())
    broken = edited.replace('    - log: "live flow two"', '    - sya: "live flow two"')
    lines.write_text(broken)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and f"{lines}:" not in server.log()[before:]:
        time.sleep(0.1)
    errors = server.log()[before:]
    assert re.search(rf"{re.escape(str(lines))}:38:\d+: .*sya", errors), errors[-2000:]
    third = _call_live(server, tmp_path, "live3")
    log = server.wait_for_log(f"call {third} flow_end")
    assert f"call {third} route called='+15550002000' flow='live_two'" in log
    assert f"call {third} say verb='say' line=39 text='Flow two, edited.'" in log
    assert server.proc.poll() is None
