"""The WebRTC demo page (/demo/webrtc) and its script: served without a key, locked to the
server's own origin, SIP.js imported from /vendor/, and gone with the demo."""
from __future__ import annotations

from .harness import Env


def test_page_and_script_are_served(tmp_path):
    env = Env(tmp_path, {})
    r = env.request("GET", "/demo/webrtc", key=None)
    assert r.code == 200 and r.header("Content-Type").startswith("text/html")
    assert r.header("Content-Security-Policy").startswith("default-src 'self'")
    assert b'<script type="module" src="/demo/webrtc.js">' in r.body
    assert b"Call from your browser" in r.body and b'id="ivr-keypad"' in r.body
    r = env.request("GET", "/demo/webrtc.js", key=None)
    assert r.code == 200 and r.header("Content-Type").startswith("text/javascript")
    assert b'from "/vendor/sip.js/lib/index.js"' in r.body
    for name in (b"sendDigits", b"hangup", b"inboundLevel", b"window.ivr = ivr"):
        assert name in r.body
    assert b"https://" not in r.body  # nothing loaded from a third party


def test_page_goes_with_the_demo(tmp_path):
    env = Env(tmp_path, {}, demo_enabled=False)
    assert env.request("GET", "/demo/webrtc", key=None).code == 404
    assert env.request("GET", "/demo/webrtc.js", key=None).code == 404
