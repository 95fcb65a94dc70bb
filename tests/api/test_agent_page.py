"""The agent softphone page (/agent) and its script: served without a key, locked to the
server's own origin and microphone, SIP.js imported from /vendor/, nothing from a third
party, its password never sent on as a Referer, and gone with the demo pages."""
from __future__ import annotations

from .harness import Env


def test_page_and_script_are_served(tmp_path):
    env = Env(tmp_path, {})
    r = env.request("GET", "/agent", key=None)
    assert r.code == 200 and r.header("Content-Type").startswith("text/html")
    assert r.header("Content-Security-Policy").startswith("default-src 'self'")
    assert r.header("Permissions-Policy") == "microphone=(self)"
    assert r.header("Referrer-Policy") == "no-referrer"
    assert b'<script type="module" src="/agent.js">' in r.body
    for element in (b'id="agent-answer"', b'id="agent-decline"', b'id="agent-hangup"',
                    b'id="agent-keypad"', b'id="agent-autoanswer"', b'id="agent-password"'):
        assert element in r.body
    r = env.request("GET", "/agent.js", key=None)
    assert r.code == 200 and r.header("Content-Type").startswith("text/javascript")
    assert b'from "/vendor/sip.js/lib/index.js"' in r.body
    for name in (b"register", b"answer", b"hangup", b"sendDigits", b"inboundLevel",
                 b"window.agent = agent"):
        assert name in r.body
    assert b"https://" not in r.body


def test_page_goes_with_the_demo(tmp_path):
    env = Env(tmp_path, {}, demo_enabled=False)
    assert env.request("GET", "/agent", key=None).code == 404
    assert env.request("GET", "/agent.js", key=None).code == 404
