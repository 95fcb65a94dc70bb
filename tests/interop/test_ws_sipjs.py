"""SIP over WebSocket with a real browser softphone: SIP.js (vendored from npm by
./scripts/setup, served by our server at /vendor/) in Chromium through Playwright registers
as 2001 with digest auth, over ws on the HTTP port and over wss on the HTTPS port; a page
of another origin is refused at the upgrade."""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from .conftest import ROOT, free_port

pytestmark = pytest.mark.interop

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SIPJS = ROOT / "ivr" / "api" / "web" / "vendor" / "sip.js" / "lib" / "index.js"

# Register 2001 (password demo2001, the bundled config/) and report the outcome.
REGISTER = """async ([server, aor]) => {
  const SIP = await import('/vendor/sip.js/lib/index.js');
  const ua = new SIP.UserAgent({
    uri: SIP.UserAgent.makeURI(aor),
    transportOptions: {server, traceSip: false},
    authorizationUsername: '2001', authorizationPassword: 'demo2001',
    logLevel: 'error'});
  window.ua = ua;
  try { await ua.start(); } catch (e) { return 'transport failed: ' + e; }
  const registerer = new SIP.Registerer(ua);
  const outcome = new Promise(resolve => {
    registerer.stateChange.addListener(s => { if (s !== 'Initial') resolve(s); });
    setTimeout(() => resolve('timeout'), 10000);
  });
  await registerer.register({requestDelegate: {
    onReject: r => window.rejected = r.message.statusCode}});
  return await outcome;
}"""


def _browser(pw, profile):
    return pw.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True, args=ARGS, ignore_https_errors=True)


def test_sipjs_in_chromium_registers_over_ws_and_wss(server_factory):
    assert Path(CHROMIUM).exists(), "apt-get install -y chromium"
    assert SIPJS.exists(), "run ./scripts/setup (it vendors SIP.js from npm)"
    https_port = free_port()
    server = server_factory(extra=["--https", f"127.0.0.1:{https_port}"])
    server.wait_for_log(f"HTTPS and SIP over WSS on 127.0.0.1:{https_port}")
    profile = tempfile.mkdtemp(prefix="ivr-chromium-")
    try:
        with sync_playwright() as pw:
            ctx = _browser(pw, profile)
            page = ctx.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            sockets = []
            page.on("websocket", lambda ws: sockets.append(ws.url))
            # ws on the HTTP port, from a page of the server's own origin
            http = f"http://127.0.0.1:{server.http_port}"
            page.goto(http + "/health")
            outcome = page.evaluate(REGISTER, [f"ws://127.0.0.1:{server.http_port}/sip",
                                               "sip:2001@ivr.local"])
            assert outcome == "Registered", (outcome, server.log()[-3000:])
            page.evaluate("() => window.ua.stop()")
            # wss on the HTTPS port
            page.goto(f"https://127.0.0.1:{https_port}/health")
            outcome = page.evaluate(REGISTER, [f"wss://127.0.0.1:{https_port}/sip",
                                               "sip:2001@ivr.local"])
            assert outcome == "Registered", (outcome, server.log()[-3000:])
            page.evaluate("() => window.ua.stop()")
            ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert errors == []
    assert sockets == [f"ws://127.0.0.1:{server.http_port}/sip",
                       f"wss://127.0.0.1:{https_port}/sip"]
    log = server.log()
    registered = re.findall(r"REGISTER 2001 from 127\.0\.0\.1:\d+: 200 OK", log)
    assert len(registered) >= 2, log[-3000:]


def test_a_page_of_another_origin_is_refused(server_factory):
    assert SIPJS.exists(), "run ./scripts/setup (it vendors SIP.js from npm)"
    server = server_factory(extra=["--ws-origin", "https://shop.example"])
    profile = tempfile.mkdtemp(prefix="ivr-chromium-")
    try:
        with sync_playwright() as pw:
            ctx = _browser(pw, profile)
            page = ctx.new_page()
            # A page of another origin (localhost, not 127.0.0.1) opening the server's /sip.
            page.goto(f"http://localhost:{server.http_port}/health")
            outcome = page.evaluate("""(url) => new Promise(resolve => {
                const ws = new WebSocket(url, 'sip');
                ws.onopen = () => resolve('open');
                ws.onerror = () => resolve('refused');
            })""", f"ws://127.0.0.1:{server.http_port}/sip")
            ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert outcome == "refused"
    server.wait_for_log(f"origin http://localhost:{server.http_port} not allowed")
