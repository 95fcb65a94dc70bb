"""Agents and visitors in real browsers (#16), over WSS: Chromium through Playwright with a
fake microphone playing a tone, the server with --https.

* An agent tab on /agent, signed in as extension 2001 with auto-answer, takes the call
  ``POST /v1/click-to-call`` bridges to a baresip customer behind a trunk: the tab hears
  the customer's 1000 Hz (its level and its peak frequency), baresip records the tab's
  600 Hz.  The INVITE to the tab carries no offer; the tab offers WebRTC in its 200 and
  the leg runs DTLS-SRTP over SIP/WSS.  Closing the tab ends its registration at once:
  the server logs it and a second click-to-call to 2001 is refused right away.
* A visitor tab on /demo/webrtc calls the toll-free menu, presses 2 (support) on the
  keypad (RFC 4733), waits in the ``support`` queue, and baresip registered as 2002
  answers: the tab hears baresip's 1300 Hz, baresip records the tab's 800 Hz.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from .conftest import BUNDLED_CONFIG, free_port
from .peers import Baresip
from .test_srtp_baresip import cdrs_when_written, has_tone, last_seconds, registered
from .test_tls_baresip import tone
from .test_webrtc_browser import ARGS, CHROMIUM, SIPJS, tone_wav

pytestmark = pytest.mark.interop

API_KEY = "agent-test-key"
CUSTOMER = "+12125551234"

#: The peak frequency (Hz) of what an <audio> element's remote stream carries over 1.5 s.
PEAK_HZ = """async (id) => {
  const stream = document.getElementById(id).srcObject;
  if (!stream) return 0;
  const ctx = new AudioContext();
  await ctx.resume();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 8192;
  ctx.createMediaStreamSource(stream).connect(analyser);
  await new Promise((r) => setTimeout(r, 1500));
  const bins = new Float32Array(analyser.frequencyBinCount);
  analyser.getFloatFrequencyData(bins);
  let best = 1;
  for (let i = 2; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
  const hz = best * ctx.sampleRate / analyser.fftSize;
  ctx.close();
  return hz;
}"""


def api(server, method: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{server.http_port}{path}", data=data,
                                 method=method, headers={"X-API-Key": API_KEY,
                                                         "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@contextmanager
def chromium(wav: Path):
    """A headless Chromium whose microphone plays ``wav``; yields its browser context."""
    assert Path(CHROMIUM).exists(), "apt-get install -y chromium"
    assert SIPJS.exists(), "run ./scripts/setup (it vendors SIP.js from npm)"
    profile = tempfile.mkdtemp(prefix="ivr-chromium-")
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True,
                args=[*ARGS, f"--use-file-for-fake-audio-capture={wav}"],
                ignore_https_errors=True)
            try:
                yield ctx
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def wait_js(page, expression: str, timeout: float, what: str, server, probe: str) -> None:
    try:
        page.wait_for_function(expression, timeout=timeout * 1000)
    except Exception as e:  # noqa: BLE001 - report the page and server state
        state = page.evaluate(probe)
        raise AssertionError(f"{what}: {e}\npage: {state}\n{server.log()[-4000:]}") from None


def https_server(server_factory, tmp_path: Path, extra_config: str = ""):
    https_port = free_port()
    config = tmp_path / "config"
    config.mkdir()
    (config / "extensions.yaml").write_text(
        (BUNDLED_CONFIG / "extensions.yaml").read_text() + extra_config)
    server = server_factory(extra=["--https", f"127.0.0.1:{https_port}"], config=config,
                            env={"IVR_API_KEY": API_KEY})
    server.wait_for_log(f"HTTPS and SIP over WSS on 127.0.0.1:{https_port}")
    server.https_port = https_port
    return server


AGENT_PROBE = ("() => window.agent && [window.agent.state, window.agent.lastError, "
               "document.getElementById('agent-status').textContent]")


def test_an_agent_tab_answers_a_click_to_call_and_its_registration_ends_with_the_tab(
        server_factory, tmp_path):
    customer = Baresip(tmp_path, "customer", source=tone(tmp_path / "customer.wav", 1000))
    (customer.dir / "accounts").write_text(
        f"<sip:{CUSTOMER}@127.0.0.1>;regint=0;answermode=auto\n")
    customer.start()
    server = https_server(server_factory, tmp_path,
                          f"trunks:\n  carrier:\n    address: \"127.0.0.1:{customer.sip_port}\"\n")
    errors: list[str] = []
    try:
        with chromium(tone_wav(tmp_path / "agent-600.wav", 600.0)) as ctx:
            page = ctx.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            sockets = []
            page.on("websocket", lambda ws: sockets.append(ws.url))
            page.goto(f"https://127.0.0.1:{server.https_port}/agent"
                      "?ext=2001&password=demo2001&autoanswer=1")
            wait_js(page, "() => window.agent && window.agent.state === 'registered'", 15,
                    "the agent tab did not sign in", server, AGENT_PROBE)
            assert sockets == [f"wss://127.0.0.1:{server.https_port}/sip"]
            status, session = api(server, "POST", "/v1/click-to-call",
                                  {"agent": "2001", "customer": CUSTOMER,
                                   "caller_id": "+18005550100"})
            assert status == 201, session
            wait_js(page, "() => window.agent.state === 'connected'", 15,
                    "the agent tab did not answer", server, AGENT_PROBE)
            customer.wait_for_event("CALL_ESTABLISHED", timeout=15)
            time.sleep(3)  # they talk
            levels = [page.evaluate("() => window.agent.inboundLevel()") for _ in range(3)]
            heard_hz = page.evaluate(PEAK_HZ, "agent-audio")
            assert min(levels) > -30, (levels, server.log()[-3000:])
            assert abs(heard_hz - 1000) < 15, heard_hz
            assert page.evaluate("() => window.agent.hangup()") is True
            customer.wait_for_event("CALL_CLOSED", timeout=10)
            wait_js(page, "() => window.agent.state === 'registered'", 5,
                    "the tab did not go back to ready", server, AGENT_PROBE)
            assert has_tone(last_seconds(customer.received_wav(), 2), 600), \
                "the customer did not hear the agent tab"
            # Closing the tab closes its WebSocket (the page sends no un-REGISTER): the
            # server drops the binding at once, and 2001 can no longer be rung.
            page.close()
            server.wait_for_log("registration of 2001 removed: its SIP/WSS connection", 10)
            status, body = api(server, "POST", "/v1/click-to-call",
                               {"agent": "2001", "customer": CUSTOMER})
            assert status != 201 and status < 500, (status, body)
            assert "not registered" in json.dumps(body), body
    finally:
        customer.stop()
    assert errors == []
    roles = {r["role"]: r for r in cdrs_when_written(server, 2) if r.get("role")}
    assert roles["agent"]["media_encryption"] == "dtls-srtp", roles
    assert roles["agent"]["sip_transport"] == "wss", roles
    assert roles["agent"]["outcome"] == "answered", roles
    assert roles["customer"]["media_encryption"] == "none", roles
    assert "DTLS-SRTP keyed" in server.log()


VISITOR_PROBE = ("() => window.ivr && [window.ivr.state, "
                 "document.getElementById('ivr-status').textContent]")


def test_a_visitor_tab_reaches_a_queue_agent_through_the_toll_free_menu(server_factory,
                                                                        tmp_path):
    server = https_server(server_factory, tmp_path)
    agent = Baresip(tmp_path, "agent2002", source=tone(tmp_path / "agent.wav", 1300))
    (agent.dir / "accounts").write_text(
        f"<sip:2002@{server.sip}>;auth_pass=demo2002;regint=60;answermode=manual\n")
    agent.start()
    errors: list[str] = []
    try:
        registered(agent)
        with chromium(tone_wav(tmp_path / "visitor-800.wav", 800.0)) as ctx:
            page = ctx.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"https://127.0.0.1:{server.https_port}/demo/webrtc"
                      "?to=%2B18005550100&autostart=1")
            wait_js(page, "() => window.ivr && window.ivr.state === 'connected'", 15,
                    "the visitor's call did not connect", server, VISITOR_PROBE)
            server.wait_for_log("verb='menu'", timeout=15)
            page.click("#ivr-keypad button:text-is('2')")  # support: the queue
            agent.wait_for_event("CALL_INCOMING", timeout=30)
            time.sleep(2.0)  # the agent picks up as a person does
            agent.command("accept")
            agent.wait_for_event("CALL_ESTABLISHED", timeout=10)
            time.sleep(4)
            levels = [page.evaluate("() => window.ivr.inboundLevel()") for _ in range(3)]
            heard_hz = page.evaluate(PEAK_HZ, "ivr-audio")
            assert min(levels) > -30, (levels, server.log()[-3000:])
            assert abs(heard_hz - 1300) < 15, heard_hz
            page.evaluate("() => window.ivr.hangup()")
            agent.wait_for_event("CALL_CLOSED", timeout=10)
        assert has_tone(last_seconds(agent.received_wav(), 2), 800), \
            "the agent did not hear the visitor"
    finally:
        agent.stop()
    assert errors == []
    log = server.log()
    assert "dtmf digit='2' mode='rfc4733'" in log, log[-3000:]
    records = {r["direction"]: r for r in cdrs_when_written(server, 2)}
    assert records["inbound"]["media_encryption"] == "dtls-srtp", records
    assert records["inbound"]["sip_transport"] == "wss", records
    assert records["outbound"]["to_number"] == "2002", records
    assert re.search(r"REGISTER 2002 from 127\.0\.0\.1:\d+: 200 OK", log)
