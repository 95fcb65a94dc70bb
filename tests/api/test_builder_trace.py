"""A call's path through the plans from its path log (ivr/api/call_trace.py), on logs the
real runner writes (Call.log_event's own format) while a FakeCall presses keys."""
from __future__ import annotations

from pathlib import Path

from hypothesis import given, strategies as st

from ivr.api.call_trace import format_trace, parse_entry, trace_steps
from ivr.call.call import Call
from ivr.dialplan.http import HttpResponse
from ivr.dialplan.loader import load_dialplans
from ivr.dialplan.runner import FlowRunner

from tests.dialplan.fakes import FakeCall, FakeHttp
from tests.dialplan.helpers import plan_of

ROOT = Path(__file__).resolve().parents[2]
PLANS = ROOT / "tests" / "data" / "builder_plans"


class PathCall(FakeCall):
    """A FakeCall whose path log is the real Call's (same text, same digit bookkeeping)."""
    log_event = Call.log_event

    def __init__(self, **kw):
        super().__init__(**kw)
        self.path, self.gathered = [], []


def name_only(file: str) -> str:
    return Path(file).name


def run_menu(press: str) -> PathCall:
    plan, errors = load_dialplans([PLANS])
    assert errors == []
    call = PathCall()
    FlowRunner(plan, call).run("main_menu")
    for second in range(40):
        call.clock.advance(1)
        if second == 4:
            call.press(press)
    assert call.ended
    return call


def test_menu_choice_two_takes_the_support_branch():
    call = run_menu("2")
    steps = trace_steps(call.path, name_only)
    assert [s["step"] for s in steps][:5] == [
        "tollfree.yaml:11", "tollfree.yaml:12", "tollfree.yaml:13",  # answer, say, menu
        "tollfree.yaml:33", "tollfree.yaml:34"]                       # support: say, enqueue
    menu = steps[2]
    assert (menu["flow"], menu["verb"], menu["at"]) == ("main_menu", "menu", "tollfree.yaml:13:7")
    assert menu["notes"] == ["pressed 2 → support"]
    assert steps[4]["notes"] == ["enqueue failed: no queues configured"]
    assert steps[0]["notes"] == [] and steps[-1]["step"] == "tollfree.yaml:52"
    text = format_trace({"id": "c1", "outcome": "answered", "digits": call.gathered,
                         "steps": steps})
    assert text.splitlines()[0] == "call c1  outcome answered  digits 2"
    assert "tollfree.yaml:13  main_menu: menu  — pressed 2 → support" in text


def test_invalid_key_and_timeouts_are_notes_on_the_menu():
    call = run_menu("9")
    menu = [s for s in trace_steps(call.path, name_only) if s["verb"] == "menu"]
    assert menu[0]["notes"][0] == "invalid choice 9"
    assert "no choice (timeout)" in menu[0]["notes"]
    assert menu[0]["notes"][-1] == "menu: failed → goodbye"


WEBHOOK = """
flows:
  main:
    - answer
    - webhook: {url: "https://crm.example/x", on_failure: [{say: "Fallback"}]}
    - if: {var: tier, equals: gold, then: vip}
    - say: "Hello {{name}}"
  vip: [{say: "VIP"}]
"""


def test_webhook_reply_and_the_branch_it_caused(tmp_path):
    http = FakeHttp([HttpResponse(200, b'{"variables": {"name": "Bob", "tier": "gold"}}')])
    call = PathCall()
    http.clock = call.clock
    FlowRunner(plan_of(tmp_path, WEBHOOK), call, http=http).run("main")
    call.clock.advance(10)
    steps = trace_steps(call.path, name_only)
    assert [(s["step"], s["verb"]) for s in steps] == [
        ("plan.yaml:4", "answer"), ("plan.yaml:5", "webhook"), ("plan.yaml:6", "if"),
        ("plan.yaml:8", "say")]
    assert steps[1]["notes"] == ["webhook replied: set name,tier"]
    assert steps[2]["notes"] == ["tier='gold' is True → vip"]


def test_entries_are_read_as_the_call_wrote_them():
    assert parse_entry("step flow='a b' verb='say' at='x.yaml:3:5'") == (
        "step", {"flow": "a b", "verb": "say", "at": "x.yaml:3:5"})
    assert parse_entry("""say verb='say' line=4 text="it's \\"here\\"" """)[1]["text"] == \
        "it's \"here\""
    assert parse_entry("end reason=media-timeout side=local") == (
        "end", {"reason": "media-timeout", "side": "local"})
    # a step whose place cannot be read is left out rather than guessed
    assert trace_steps(["step verb='say' at='nowhere'", 42, None, "menu_choice digits='1'"]) == []


@given(st.lists(st.one_of(st.text(max_size=80), st.none(), st.integers(),
                          st.text(alphabet="steps ='\"\\:0123abc", max_size=60)), max_size=20))
def test_any_path_log_gives_a_trace_and_never_raises(entries):
    steps = trace_steps(entries)
    assert all(s["step"].count(":") >= 1 for s in steps)
    format_trace({"id": "x", "steps": steps})
