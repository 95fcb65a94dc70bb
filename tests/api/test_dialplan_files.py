"""/v1/dialplans: the schema, reading with ETags, checked atomic saves, backups, restore."""
from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
from twisted.internet import task

from ivr.dialplan.files import DialplanFiles
from ivr.dialplan.reload import DialplanStore
from ivr.dialplan.verbs import REGISTRY

from .harness import DEV_KEY, LIMITED_KEY, Env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path):
    plans = tmp_path / "dialplans"
    shutil.copytree(ROOT / "tests" / "data" / "builder_plans", plans)  # the bundled plans as of this test
    e = Env(tmp_path)
    e.plans = plans
    e.plan_store = DialplanStore(plans, None, reactor=task.Clock(), use_inotify=False)
    assert e.plan_store.reload() == []
    e.api.dialplan_files = DialplanFiles(plans, None, backups=tmp_path / "data" / "backups",
                                         reload=e.plan_store.reload,
                                         current_errors=lambda: e.plan_store.errors,
                                         entries=lambda: {"internal": "context of extensions 2001"})
    return e


def put(env, name, doc, etag, **headers):
    h = dict(headers)
    if etag is not None:
        h["If-Match"] = etag
    return env.request("PUT", f"/v1/dialplans/{name}", {"document": doc}, headers=h)


def test_schema_names_every_verb(env):
    r = env.request("GET", "/v1/dialplans/schema")
    assert r.code == 200
    assert set(r.json["$defs"]["verbs"]) == set(REGISTRY)


@pytest.mark.parametrize("path", ["/v1/dialplans/schema", "/v1/dialplans",
                                  "/v1/dialplans/tollfree.yaml"])
def test_admin_key_required(env, path):
    r = env.request("GET", path, key=None)
    assert r.code == 401 and r.error_code() == "unauthorized"
    r = env.request("GET", path, key="wrong-key-000000")
    assert r.code == 401
    r = env.request("GET", path, key=LIMITED_KEY)  # a key without admin: true
    assert r.code == 403 and r.error_code() == "forbidden"


def test_list_and_read_with_lines_and_etag(env):
    r = env.request("GET", "/v1/dialplans")
    assert r.code == 200
    names = [f["file"] for f in r.json["files"]]
    assert "tollfree.yaml" in names and "settings.yaml" in names
    # flows that run without a route (extensions' context), for the builder's reachability
    assert r.json["entries"] == {"internal": "context of extensions 2001"}
    r = env.request("GET", "/v1/dialplans/tollfree.yaml")
    assert r.code == 200
    assert r.header("ETag") == r.json["etag"]
    doc = r.json["document"]
    assert doc["flows"]["main_menu"][2]["menu"]["options"] == {"1": "sales", "2": "support",
                                                               "0": "operator"}
    assert r.json["lines"]["/flows/main_menu/2"] == [13, 7]
    assert env.request("GET", "/v1/dialplans/nope.yaml").code == 404
    # the step's line is where the running plan says the step is
    plan = env.plan_store.current
    assert plan.flows["main_menu"].steps[2].where.line == 13


@pytest.mark.parametrize("name", ["../settings.yaml", "..%2Fsettings.yaml", ".hidden.yaml",
                                  "x.txt", "%2Fetc%2Fpasswd", "a%00.yaml"])
def test_no_path_traversal(env, name):
    r = env.request("GET", f"/v1/dialplans/{name}")
    assert r.code == 404
    r = env.request("PUT", f"/v1/dialplans/{name}", {"document": {}},
                    headers={"If-Match": "*", "If-None-Match": "*"})
    assert r.code in (404, 422)
    assert not (env.plans.parent / "settings.yaml").exists()


def test_save_keeps_comments_reloads_and_backs_up(env):
    r = env.request("GET", "/v1/dialplans/tollfree.yaml")
    before = (env.plans / "tollfree.yaml").read_text()
    doc = copy.deepcopy(r.json["document"])
    doc["flows"]["goodbye"][0]["say"] = "Thanks, bye."
    s = put(env, "tollfree.yaml", doc, r.json["etag"])
    assert s.code == 200, s.body
    assert s.json["backup"] == 1 and s.header("ETag") == s.json["etag"] != r.json["etag"]
    after = (env.plans / "tollfree.yaml").read_text()
    assert after == before.replace('"Thank you for calling. Goodbye."', '"Thanks, bye."')
    assert "# 1 rings extension 2001" in after
    assert env.plan_store.current.flows["goodbye"].steps[0].args.text.source == "Thanks, bye."
    b = env.request("GET", "/v1/dialplans/tollfree.yaml/backups")
    assert [x["number"] for x in b.json["backups"]] == [1]
    assert env.request("GET", "/v1/dialplans/tollfree.yaml/backups/1").json["yaml"] == before
    # restore the backup: it is checked and saved like any edit (and backed up itself)
    stale = env.request("POST", "/v1/dialplans/tollfree.yaml/backups/1/restore",
                        headers={"If-Match": r.json["etag"]})
    assert stale.code == 412
    ok = env.request("POST", "/v1/dialplans/tollfree.yaml/backups/1/restore",
                     headers={"If-Match": s.json["etag"]})
    assert ok.code == 200 and ok.json["backup"] == 2
    assert (env.plans / "tollfree.yaml").read_text() == before
    assert env.request("GET", "/v1/dialplans/tollfree.yaml/backups/9").code == 404


def test_stale_etag_is_412_and_missing_if_match_is_428(env):
    r = env.request("GET", "/v1/dialplans/tollfree.yaml")
    doc = r.json["document"]
    assert put(env, "tollfree.yaml", doc, None).code == 428
    first = put(env, "tollfree.yaml", doc | {"routes": doc["routes"][:1]}, r.json["etag"])
    assert first.code == 200
    second = put(env, "tollfree.yaml", doc, r.json["etag"])
    assert second.code == 412 and second.error_code() == "precondition_failed"


def test_invalid_save_is_422_with_positions_and_writes_nothing(env):
    r = env.request("GET", "/v1/dialplans/tollfree.yaml")
    before = (env.plans / "tollfree.yaml").read_bytes()
    doc = copy.deepcopy(r.json["document"])
    doc["flows"]["main_menu"][2]["menu"]["prompt"] = ""
    s = put(env, "tollfree.yaml", doc, r.json["etag"])
    assert s.code == 422 and s.error_code() == "invalid"
    errors = s.json["error"]["errors"]
    assert [(e["file"], e["line"]) for e in errors] == [("tollfree.yaml", 14)]
    assert errors[0]["text"].startswith("tollfree.yaml:14:17: an empty prompt")
    assert (env.plans / "tollfree.yaml").read_bytes() == before
    assert env.request("GET", "/v1/dialplans/tollfree.yaml/backups").json["backups"] == []
    # a reference to another file's flow is checked across the whole directory
    doc = copy.deepcopy(r.json["document"])
    doc["flows"]["goodbye"][1] = {"goto": "front_desk"}   # business.yaml: fine
    assert put(env, "tollfree.yaml", doc, r.json["etag"]).code == 200


def test_new_file_needs_if_none_match(env):
    doc = {"routes": [{"number": "+15550009999", "flow": "hello"}],
           "flows": {"hello": [{"say": "Hello"}, "hangup"]}}
    r = put(env, "new.yaml", doc, None)
    assert r.code == 428
    r = put(env, "new.yaml", doc, None, **{"If-None-Match": "*"})
    assert r.code == 200, r.body
    assert "hello" in env.plan_store.current.flows
    assert (env.plans / "new.yaml").read_text().startswith("routes:\n  - number: \"+15550009999\"")


@pytest.mark.parametrize("body", [{"document": 1, "yaml": "x"}, {}, {"yaml": 5}])
def test_bad_bodies_are_400(env, body):
    r = env.request("GET", "/v1/dialplans/tollfree.yaml")
    s = env.request("PUT", "/v1/dialplans/tollfree.yaml", body,
                    headers={"If-Match": r.json["etag"]})
    assert s.code == 400


def test_yaml_text_save_with_a_syntax_error_is_422(env):
    r = env.request("GET", "/v1/dialplans/echo.yaml")
    s = env.request("PUT", "/v1/dialplans/echo.yaml", {"yaml": "flows: [\n"},
                    headers={"If-Match": r.json["etag"]})
    assert s.code == 422
    assert s.json["error"]["errors"][0]["file"] == "echo.yaml"
