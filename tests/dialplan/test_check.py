"""`ivr check` and the bundled dialplans."""
import io
from datetime import datetime, timezone
from pathlib import Path

from ivr.dialplan.check import main
from ivr.dialplan.loader import load_dialplans
from ivr.dialplan.router import Router
from ivr.dialplan.runner import FlowRunner
from ivr.dialplan.static import static_prompts

from tests.dialplan.fakes import FakeCall

ROOT = Path(__file__).parent.parent.parent
DATA = ROOT / "tests" / "data" / "dialplans"


def test_check_ok_and_errors():
    out = io.StringIO()
    assert main([str(DATA / "good")], str(DATA / "prompts"), out) == 0
    assert out.getvalue() == "OK: 7 routes, 9 flows\n"
    out = io.StringIO()
    assert main([str(DATA / "dup")], str(DATA / "prompts"), out) == 1
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"{DATA / 'dup' / 'b.yaml'}:2:5: duplicate route")
    assert lines[-1] == "3 errors"


def test_bundled_dialplans_pass_check():
    out = io.StringIO()
    assert main([str(ROOT / "dialplans")], str(ROOT / "prompts"), out) == 0, out.getvalue()
    assert out.getvalue().startswith("OK: ")


def bundled():
    plan, errors = load_dialplans(ROOT / "dialplans", ROOT / "prompts")
    assert errors == []
    return plan


def test_bundled_routes():
    router = Router(bundled())
    assert router.route("echo").flow == "echo_test"
    assert router.route("+15550000001").flow == "echo_test"
    assert router.route("8005550100").flow == "main_menu"
    assert router.route("8885550123").flow == "main_menu"    # any toll-free number
    assert router.route("+15550000002").flow == "front_desk"
    assert router.route("+15550000003") is None
    assert len(static_prompts(bundled())) >= 10


def test_bundled_toll_free_menu_support_branch():
    call = FakeCall()
    result = []
    FlowRunner(bundled(), call).run("main_menu").addCallback(result.append)
    call.clock.advance(2)
    call.press("2")
    for _ in range(3):
        call.clock.advance(2)
    # No telephony in this in-memory run: the dial fails and the caller is told why.
    assert call.said() == ["Thank you for calling Example Company.",
                           "For sales, press 1 or say sales. For support, press 2 or say "
                           "support. For an operator, press 0 or say operator.",
                           "Please hold for the next available support agent.",
                           "Sorry, nobody can take your call right now. Please call back soon.",
                           "Thank you for calling. Goodbye."]
    assert result == ["hangup"]


def test_bundled_business_hours_closed_goes_to_voicemail(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # recordings/ is created under the working directory
    call = FakeCall(called="+15550000002")
    sunday = datetime(2025, 3, 9, 15, 0, tzinfo=timezone.utc)
    FlowRunner(bundled(), call, now=lambda: sunday).run("front_desk")
    call.clock.advance(2)
    call.clock.advance(2)
    assert call.said()[0].startswith("Our office is closed.")
    assert call.actions[-1][0] == "record"
    assert call.actions[-1][1] == "recordings/voicemail-call-1.wav"


def test_readme_examples_are_valid(tmp_path):
    """Every step example in dialplans/README.md parses (flows and prompt files they name
    are not defined there, so only those two errors are allowed)."""
    import re
    text = (ROOT / "dialplans" / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    step_blocks = [b for b in blocks if b.lstrip().startswith("- ")]
    assert len(step_blocks) >= 7
    for n, block in enumerate(step_blocks):
        body = "\n".join("    " + line for line in block.splitlines())
        (tmp_path / f"ex{n}.yaml").write_text(f"flows:\n  ex{n}:\n{body}\n")
        plan, errors = load_dialplans(tmp_path / f"ex{n}.yaml", ROOT / "prompts")
        bad = [e for e in errors if not e.message.startswith(("undefined flow", "missing prompt file",
                                                              "unreachable step"))]
        assert bad == [], "\n".join(map(str, bad)) + "\n" + block
    full = [b for b in blocks if b.startswith("settings:")][0]
    (tmp_path / "full.yaml").write_text(full)
    _plan, errors = load_dialplans(tmp_path / "full.yaml", None)
    assert [e.message for e in errors if "undefined flow" not in e.message] == []
