"""The browser mode of the widget for real (#16 item 3): Chromium through Playwright, its
microphone a WAV of a 1 kHz tone, opens /demo/webrtc?to=echo&autostart=1; SIP.js (vendored
from npm, served at /vendor/) calls the bundled echo line anonymously over ws://<host>/sip,
the engine answers ICE-lite + DTLS-SRTP, and the page's window.ivr.inboundLevel() hears the
tone come back (a silent microphone fails it); its digits arrive as RFC 4733. A second call
goes through the page's own buttons and keypad, a third from a page served over HTTPS over
wss. The path log shows the WebRTC leg and the CDRs say dtls-srtp."""
from __future__ import annotations

import json
import math
import shutil
import sqlite3
import struct
import tempfile
import time
import wave
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from .conftest import ROOT, free_port

pytestmark = pytest.mark.interop

CHROMIUM = "/usr/bin/chromium"
SIPJS = ROOT / "ivr" / "api" / "web" / "vendor" / "sip.js" / "lib" / "index.js"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        "--autoplay-policy=no-user-gesture-required"]


def tone_wav(path: Path, freq: float = 1000.0, seconds: float = 30.0, rate: int = 48000) -> Path:
    """A mono 16-bit WAV of a sine at -6 dBFS: Chromium's fake microphone loops it."""
    amp = 0.5 * 32767
    samples = (int(amp * math.sin(2 * math.pi * freq * i / rate))
               for i in range(int(seconds * rate)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return path


def cdr_rows(server, count: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        conn = sqlite3.connect(server.data / "ivr.sqlite3")
        conn.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in conn.execute("SELECT * FROM cdrs")]
        except sqlite3.OperationalError:
            rows = []
        finally:
            conn.close()
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def wait_for(page, expression: str, timeout: float, what: str, server) -> None:
    try:
        page.wait_for_function(expression, timeout=timeout * 1000)
    except Exception as e:  # noqa: BLE001 - report the page and server state
        state = page.evaluate("() => window.ivr && [window.ivr.state, "
                              "document.getElementById('ivr-status').textContent]")
        raise AssertionError(f"{what}: {e}\npage: {state}\n{server.log()[-4000:]}") from None


def test_browser_calls_the_echo_line_and_hears_its_tone_back(server_factory, tmp_path):
    assert Path(CHROMIUM).exists(), "apt-get install -y chromium"
    assert SIPJS.exists(), "run ./scripts/setup (it vendors SIP.js from npm)"
    https_port = free_port()
    server = server_factory(extra=["--https", f"127.0.0.1:{https_port}"])
    wav = tone_wav(tmp_path / "tone-1k.wav")
    profile = tempfile.mkdtemp(prefix="ivr-chromium-")
    errors: list[str] = []
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True,
                args=[*ARGS, f"--use-file-for-fake-audio-capture={wav}"],
                ignore_https_errors=True)
            page = ctx.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            base = f"http://127.0.0.1:{server.http_port}"
            page.goto(base + "/demo/webrtc?to=echo&autostart=1")
            wait_for(page, "() => window.ivr && window.ivr.state === 'connected'", 15,
                     "the call did not connect", server)
            # The greeting prompt first; once the echo verb runs, all we hear is our tone.
            server.wait_for_log("verb='echo'", timeout=20)
            time.sleep(1.5)  # the level covers the last second: let the prompt leave it
            levels = []
            for _ in range(6):
                levels.append(page.evaluate("() => window.ivr.inboundLevel()"))
                time.sleep(0.5)
            assert min(levels) > -30, (levels, server.log()[-3000:])
            assert page.evaluate("() => window.ivr.sendDigits('123')") is True
            time.sleep(1.5)
            assert page.evaluate("() => window.ivr.hangup()") is True
            wait_for(page, "() => window.ivr.state === 'ended'", 5, "no end", server)
            assert page.evaluate("() => window.ivr.inboundLevel()") == -100
            # Again with the page's own buttons: call, one key on the keypad, hang up.
            page.click("#ivr-call")
            wait_for(page, "() => window.ivr.state === 'connected'", 15,
                     "the second call did not connect", server)
            assert page.locator("#ivr-status").text_content() == "Connected"
            page.click("#ivr-keypad button:text-is('5')")
            time.sleep(1)
            page.click("#ivr-hangup")
            wait_for(page, "() => window.ivr.state === 'ended'", 5, "no end", server)
            assert page.locator("#ivr-call").is_enabled()
            # A page served over HTTPS calls over wss on the same port.
            sockets = []
            page.on("websocket", lambda ws: sockets.append(ws.url))
            page.goto(f"https://127.0.0.1:{https_port}/demo/webrtc?to=echo&autostart=1")
            wait_for(page, "() => window.ivr.state === 'connected'", 15,
                     "the call over wss did not connect", server)
            assert sockets == [f"wss://127.0.0.1:{https_port}/sip"]
            page.evaluate("() => window.ivr.hangup()")
            wait_for(page, "() => window.ivr.state === 'ended'", 5, "no end", server)
            ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert errors == []
    rows = cdr_rows(server, count=3)
    assert len(rows) == 3, rows
    row, again, secure = sorted(rows, key=lambda r: r["setup_at"])
    assert secure["media_encryption"] == "dtls-srtp", secure
    assert json.loads(again["extra"])["dtmf_by_mode"]["rfc4733"] == 1, again
    assert again["media_encryption"] == "dtls-srtp" and again["hangup_side"] == "remote"
    assert row["media_encryption"] == "dtls-srtp", row
    extra = json.loads(row["extra"])
    assert any(line.startswith("webrtc ") for line in extra["path"]), extra["path"]
    assert extra["dtmf_by_mode"]["rfc4733"] == 3, extra  # sendDigits: RFC 4733 over SRTP
    assert row["from_number"].startswith("anonymous"), row
    log = server.log()
    assert "DTLS-SRTP keyed" in log and "ICE nominated" in log, log[-3000:]
