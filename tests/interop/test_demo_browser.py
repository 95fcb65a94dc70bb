"""The click-to-call demo page in headless Chromium against the REAL server: the page rings
the demo agent (extension 2001, a registered baresip) and then the visitor's number, which
reaches a second baresip through a trunk.  The status text follows the real call."""
from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.interop.test_api_calls import customer_phone, trunk_config
from tests.interop.test_extensions import phone, registered

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_demo_page_connects_a_real_call_and_shows_its_end(server_factory, tmp_path):
    assert Path(CHROMIUM).exists(), "apt-get install -y chromium"
    customer = customer_phone(tmp_path)
    server = server_factory(extra=["--config", str(trunk_config(tmp_path, customer))])
    agent = phone(tmp_path, "agent", "2001", 600, server, "demo2001")
    profile = tempfile.mkdtemp(prefix="ivr-chromium-", dir=tmp_path)
    errors: list[str] = []
    try:
        registered(agent)
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=ARGS)
            try:
                page = ctx.new_page()
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"http://127.0.0.1:{server.http_port}/demo/click-to-call")
                page.fill("input.ivr-c2c-number", "(212) 555-1234")
                with page.expect_response("**/demo/api/click-to-call") as created:
                    page.click("button.ivr-c2c-call")
                assert created.value.status == 201, created.value.text()
                session_id = created.value.json()["id"]
                status = page.locator(".ivr-c2c-status")
                status.filter(has_text="Connected").wait_for(timeout=20_000)
                # really connected: both phones are in the call
                agent.wait_for_event("CALL_ESTABLISHED", timeout=5)
                customer.wait_for_event("CALL_ESTABLISHED", timeout=5)
                assert page.locator("button.ivr-c2c-call").is_disabled()
                server.wait_for_log("bridged", timeout=5)
                time.sleep(1)                       # they talk
                customer.hangup()
                status.filter(has_text="Ended").wait_for(timeout=15_000)
                agent.wait_for_event("CALL_CLOSED", timeout=5)
                history = page.locator("#click-to-call").get_attribute("data-history").split("|")
                assert page.locator("button.ivr-c2c-call").is_enabled()
            finally:
                ctx.close()
    finally:
        agent.stop()
        customer.stop()
        shutil.rmtree(profile, ignore_errors=True)
    assert errors == []
    assert history[-2:] == ["Connected", "Ended"], history
    assert "Ringing the agent…" in history, history
    assert history.index("Ringing the agent…") < history.index("Connected")
    # the page showed the real session: completed because the customer hung up
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/demo/api/sessions/"
                                f"{session_id}", timeout=5) as resp:
        final = json.loads(resp.read())
    assert final["state"] == "completed" and final["reason"] == "customer-hangup", final
    assert "Traceback" not in server.log()
