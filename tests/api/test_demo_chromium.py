"""A real headless Chromium loads the demo page, presses Call and watches the status."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

pytestmark = pytest.mark.interop  # a real Chromium

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def server(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "tests.api.demo_server", str(tmp_path)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("PORT "), proc.stderr.read()
    yield f"http://127.0.0.1:{int(line.split()[1])}"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)


def test_demo_page_reaches_connected_then_ended(server):
    assert Path(CHROMIUM).exists(), "apt-get install -y chromium"
    profile = tempfile.mkdtemp(prefix="ivr-chromium-")
    requests = []
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=ARGS)
            page = ctx.new_page()
            page.on("request", lambda r: requests.append((r.url, r.headers, r.post_data)))
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server + "/demo/click-to-call")
            page.fill("input.ivr-c2c-number", "(202) 555-0143")
            page.click("button.ivr-c2c-call")
            status = page.locator(".ivr-c2c-status")
            status.filter(has_text="Connected").wait_for(timeout=15_000)
            assert page.locator("button.ivr-c2c-call").is_disabled()
            status.filter(has_text="Ended").wait_for(timeout=15_000)
            history = page.locator("#click-to-call").get_attribute("data-history").split("|")
            assert page.locator("button.ivr-c2c-call").is_enabled()
            ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert errors == []
    assert history[-2:] == ["Connected", "Ended"]
    assert "Ringing the agent…" in history and history.index("Ringing the agent…") < \
        history.index("Connected")
    # the browser only ever talked to the demo endpoints, and never held an API key
    posts = [(u, d) for u, h, d in requests if u.endswith("/demo/api/click-to-call")]
    assert len(posts) == 1 and '"number":"(202) 555-0143"' in posts[0][1]
    for url, headers, _ in requests:
        assert "/v1/" not in url
        assert "x-api-key" not in headers and "authorization" not in headers
        assert "server-secret-key" not in url
