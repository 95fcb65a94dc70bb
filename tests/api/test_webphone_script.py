"""The browser phones' shared module (/webphone.js): the agent softphone and the WebRTC demo
both import it; it is served like their own scripts (JavaScript, cached five minutes,
without a key), imports SIP.js from /vendor/ only, and goes with the demo pages."""
from __future__ import annotations

from .harness import Env


def test_shared_module_is_served_like_the_pages_scripts(tmp_path):
    env = Env(tmp_path, {})
    r = env.request("GET", "/webphone.js", key=None)
    assert r.code == 200 and r.header("Content-Type") == "text/javascript; charset=utf-8"
    assert r.header("Cache-Control") == env.request(
        "GET", "/agent.js", key=None).header("Cache-Control") == "public, max-age=300"
    assert b'from "/vendor/sip.js/lib/index.js"' in r.body
    for name in (b"export function userAgent", b"export function levelMeter",
                 b"export function sendDtmf", b"export function keypad"):
        assert name in r.body
    assert b"https://" not in r.body
    for script in ("/agent.js", "/demo/webrtc.js"):
        body = env.request("GET", script, key=None).body
        assert b'from "/webphone.js"' in body
        assert b"function levelMeter" not in body and b"new SIP.UserAgent" not in body


def test_shared_module_goes_with_the_demo(tmp_path):
    env = Env(tmp_path, {}, demo_enabled=False)
    assert env.request("GET", "/webphone.js", key=None).code == 404
