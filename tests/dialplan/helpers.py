"""Build plans from YAML text and run flows on a FakeCall."""
from __future__ import annotations

import textwrap

from ivr.dialplan.loader import load_dialplans
from ivr.dialplan.runner import FlowRunner

from tests.dialplan.fakes import FakeCall


def load_text(tmp_path, text: str, name: str = "plan.yaml", prompts_dir=None):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_dialplans(path, prompts_dir)


def plan_of(tmp_path, text: str, **kw):
    plan, errors = load_text(tmp_path, text, **kw)
    assert errors == [], "\n".join(map(str, errors))
    return plan


def start(tmp_path, text: str, flow: str = "main", call: FakeCall | None = None, **kw):
    """(call, runner, result list): the run's reason lands in the list when it ends."""
    plan = plan_of(tmp_path, text)
    call = call or FakeCall()
    runner = FlowRunner(plan, call, **kw)
    result = []
    runner.run(flow).addCallback(result.append)
    return call, runner, result
