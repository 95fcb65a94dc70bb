"""The demo page's server-side endpoints: no key, per-visitor limits, visitor labels."""
from __future__ import annotations

import pytest

from .harness import Env

PLANS = {"2001": {"ring": 0.5, "answer": 2}, "+12025550143": {"answer": 3, "hangup": 5}}


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path, PLANS)


def test_page_and_script_are_served(env):
    r = env.request("GET", "/demo/click-to-call", key=None)
    assert r.code == 200 and r.header("Content-Type").startswith("text/html")
    assert b'src="/demo/click-to-call.js"' in r.body and b"data-ivr-click-to-call" in r.body
    assert b"key" not in r.body.lower().replace(b"keyboard", b"")
    r = env.request("GET", "/demo/click-to-call.js", key=None)
    assert r.code == 200 and r.header("Content-Type").startswith("text/javascript")
    assert b"IvrClickToCall" in r.body and b"/demo/api/click-to-call" in r.body


def test_visitor_sees_status_progress(env):
    r = env.request("POST", "/demo/api/click-to-call", {"number": "202-555-0143"}, key=None)
    assert r.code == 201
    sid = r.json["id"]
    assert r.json["status"] == "Ringing the agent…" and set(r.json) == {"id", "state", "status",
                                                                        "reason"}
    seen = []
    for _ in range(60):
        seen.append(env.request("GET", f"/demo/api/sessions/{sid}", key=None).json["status"])
        env.advance(0.25)
    distinct = [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]]
    assert distinct == ["Ringing the agent…", "Connecting you…", "Connected", "Ended"]
    agent = env.tel.all[0]
    assert agent.target == "2001"     # the configured agent, not something from the browser


def test_visitor_rate_limit_is_per_ip(env):
    codes = [env.request("POST", "/demo/api/click-to-call", {"number": "2025550143"},
                         key=None).code for _ in range(4)]
    assert codes == [201, 201, 201, 429]
    env.clock.advance(20)   # 3 per 60 s: one call back every 20 s
    assert env.request("POST", "/demo/api/click-to-call", {"number": "2025550143"},
                       key=None).code == 201
    assert env.request("POST", "/demo/api/click-to-call", {"number": "2025550143"},
                       key=None).code == 429
    # another visitor (behind a trusted proxy) is not limited by the first one
    env2 = Env(env.db.path.parent / "x", PLANS, trust_forwarded_for=True)
    for ip in ("198.51.100.1", "198.51.100.2"):
        codes = [env2.request("POST", "/demo/api/click-to-call", {"number": "2025550143"},
                              key=None, headers={"X-Forwarded-For": ip}).code
                 for _ in range(4)]
        assert codes == [201, 201, 201, 429]


@pytest.mark.parametrize("body,status", [({}, 400), ({"number": ""}, 400),
                                          ({"number": "hello"}, 400), ({"number": "+1202"}, 422)])
def test_visitor_bad_input(env, body, status):
    r = env.request("POST", "/demo/api/click-to-call", body, key=None)
    assert r.code == status and r.json["error"]["message"]


def test_failed_session_tells_the_visitor_why(tmp_path):
    env = Env(tmp_path, {"2001": {"fail": ("busy", 1)}})
    sid = env.request("POST", "/demo/api/click-to-call", {"number": "2025550143"},
                      key=None).json["id"]
    env.advance(1)
    r = env.request("GET", f"/demo/api/sessions/{sid}", key=None).json
    assert (r["status"], r["detail"]) == ("Ended", "all agents are busy")
    assert env.request("GET", "/demo/api/sessions/unknown", key=None).code == 404


def test_demo_can_be_disabled(tmp_path):
    env = Env(tmp_path, PLANS, demo_enabled=False)
    assert env.request("GET", "/demo/click-to-call", key=None).code == 404
    assert env.request("POST", "/demo/api/click-to-call", {"number": "2025550143"},
                       key=None).code == 404
