"""`ivr serve` names the file its start-up errors come from (issue #13): a bad
config/api.yaml or config/extensions.yaml is not "errors in the dialplans"."""
from __future__ import annotations

import pytest

from tests.test_cli import serve

GOOD_PLAN = "routes:\n  - {name: echo, flow: main}\nflows:\n  main: [hangup]\n"


@pytest.fixture
def dirs(tmp_path):
    plans, config = tmp_path / "plans", tmp_path / "config"
    plans.mkdir()
    config.mkdir()
    (plans / "a.yaml").write_text(GOOD_PLAN)
    return plans, config


def start(tmp_path, plans, config):
    return serve(tmp_path, "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0",
                 "--dialplans", str(plans), "--config", str(config))


def test_bad_api_yaml_is_reported_as_api_yaml(tmp_path, dirs):
    plans, config = dirs
    (config / "api.yaml").write_text("rate: fast\n")
    r = start(tmp_path, plans, config)
    assert r.returncode == 2, r.stderr
    assert f"{config / 'api.yaml'}:1:7:" in r.stderr
    assert f"not starting: 1 error(s) in {config / 'api.yaml'}" in r.stderr
    assert "dialplan" not in r.stderr and "Traceback" not in r.stderr


def test_bad_extensions_yaml_is_reported_as_extensions_yaml(tmp_path, dirs):
    plans, config = dirs
    (config / "extensions.yaml").write_text("extensions: 5\n")
    r = start(tmp_path, plans, config)
    assert r.returncode == 2, r.stderr
    assert f"{config / 'extensions.yaml'}:1:" in r.stderr
    assert f"error(s) in {config / 'extensions.yaml'}" in r.stderr
    assert "dialplan" not in r.stderr and "Traceback" not in r.stderr


def test_bad_dialplan_is_still_reported_as_the_dialplans(tmp_path, dirs):
    plans, config = dirs
    (plans / "a.yaml").write_text("flows:\n  main:\n    - sya: hi\n")
    r = start(tmp_path, plans, config)
    assert r.returncode == 2
    assert "not starting: 1 error(s) in the dialplans" in r.stderr


def test_extension_contexts_name_the_flows_extensions_calls_run_in():
    from types import SimpleNamespace

    from ivr.server import extension_contexts
    directory = SimpleNamespace(extensions={"2002": SimpleNamespace(context="internal"),
                                            "2001": SimpleNamespace(context="internal"),
                                            "3000": SimpleNamespace(context="lobby")})
    assert extension_contexts(directory) == {"internal": "context of extensions 2001, 2002",
                                             "lobby": "context of extensions 3000"}
