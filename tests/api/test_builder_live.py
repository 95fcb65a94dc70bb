"""/v1/builder/calls and /v1/builder/trace/{id}: the Flow Builder's live view (admin keys)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from twisted.internet import task

from ivr.dialplan.files import DialplanFiles
from ivr.dialplan.reload import DialplanStore

from .harness import DEV_KEY, LIMITED_KEY, Env

ROOT = Path(__file__).resolve().parents[2]
PATH = [  # a finished call's path log as its CDR keeps it (extra.path)
    "route called='+18005550100' flow='main_menu' source='number' caller='+12125551234'",
    "flow_start flow='main_menu'",
    "step flow='main_menu' verb='answer' at='{d}/tollfree.yaml:11:7'",
    "step flow='main_menu' verb='menu' at='{d}/tollfree.yaml:13:7'",
    "menu_choice verb='menu' line=13 digits='2' to='support'",
    "step flow='support' verb='say' at='{d}/tollfree.yaml:33:7'",
    "end reason=remote-bye side=remote",
]


@pytest.fixture
def env(tmp_path):
    plans = tmp_path / "dialplans"
    shutil.copytree(ROOT / "tests" / "data" / "builder_plans", plans)
    e = Env(tmp_path)
    e.plans = plans
    store = DialplanStore(plans, None, reactor=task.Clock(), use_inotify=False)
    assert store.reload() == []
    e.api.dialplan_files = DialplanFiles(plans, None, backups=tmp_path / "backups",
                                         reload=store.reload)
    return e


def finished_call(env, leg_id="abc@host"):
    env.store.record({"leg_id": leg_id, "direction": "inbound", "from_number": "+12125551234",
                      "to_number": "+18005550100", "setup_at": 1_700_000_000.0,
                      "end_at": 1_700_000_030.0, "outcome": "answered", "flow": "main_menu",
                      "route": "number:+18005550100", "digits": ["2"],
                      "path": [p.format(d=env.plans) for p in PATH]})


def test_trace_of_a_finished_call_from_its_cdr(env):
    finished_call(env)
    r = env.request("GET", "/v1/builder/trace/abc@host")
    assert r.code == 200, r.body
    t = r.json
    assert (t["source"], t["active"], t["outcome"], t["digits"]) == ("cdr", False, "answered", ["2"])
    assert [s["step"] for s in t["steps"]] == ["tollfree.yaml:11", "tollfree.yaml:13",
                                               "tollfree.yaml:33"]
    assert t["steps"][1]["notes"] == ["pressed 2 → support"]
    assert t["steps"][1]["verb"] == "menu" and t["steps"][2]["flow"] == "support"


def test_trace_of_a_live_call_from_its_path_log(env):
    leg = env.tel.originate("+15551230000")
    leg.answer()
    leg.path = [p.format(d=env.plans) for p in PATH[1:5]]
    leg.gathered = ["2"]
    r = env.request("GET", f"/v1/builder/trace/{leg.id}")
    assert r.code == 200, r.body
    assert (r.json["source"], r.json["active"], r.json["state"]) == ("live", True, "answered")
    assert [s["step"] for s in r.json["steps"]] == ["tollfree.yaml:11", "tollfree.yaml:13"]
    assert r.json["steps"][1]["notes"] == ["pressed 2 → support"]
    leg.path.append(PATH[5].format(d=env.plans))  # the trace follows the call as it goes
    r = env.request("GET", f"/v1/builder/trace/{leg.id}")
    assert r.json["steps"][-1]["step"] == "tollfree.yaml:33"


def test_calls_lists_active_legs_then_recent_cdrs(env):
    finished_call(env, "old-1")
    leg = env.tel.originate("+15551230000")
    leg.answer()
    ended = env.tel.originate("+15551239999")
    ended.fail("busy")
    r = env.request("GET", "/v1/builder/calls")
    assert r.code == 200
    calls = r.json["calls"]
    assert [(c["id"], c["active"]) for c in calls] == [(leg.id, True), ("old-1", False)]
    assert calls[0]["to"] == "+15551230000"
    assert calls[1]["to"] == "+18005550100" and calls[1]["outcome"] == "answered"
    assert env.request("GET", "/v1/builder/calls?limit=0").code == 400
    assert env.request("GET", "/v1/builder/calls?limit=x").code == 400


@pytest.mark.parametrize("call_id", ["nope", "a" * 300, "%00x", "x%0Ay"])
def test_unknown_ids_are_404_json(env, call_id):
    r = env.request("GET", f"/v1/builder/trace/{call_id}")
    assert r.code == 404 and r.error_code() == "not_found"


def test_cdr_without_a_path_is_an_empty_trace(env):
    env.store.record({"leg_id": "bare", "outcome": "failed", "extra": {"path": "not a list"}})
    r = env.request("GET", "/v1/builder/trace/bare")
    assert r.code == 200 and r.json["steps"] == []


@pytest.mark.parametrize("path", ["/v1/builder/calls", "/v1/builder/trace/abc@host"])
def test_admin_key_required(env, path):
    finished_call(env)
    assert env.request("GET", path, key=None).code == 401
    assert env.request("GET", path, key=LIMITED_KEY).code == 403
    assert env.request("GET", path, key=None,
                       headers={"Cookie": f"ivr_admin_key={DEV_KEY}"}).code == 200
