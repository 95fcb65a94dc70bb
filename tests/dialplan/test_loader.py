from pathlib import Path

import pytest

from ivr.dialplan.loader import load_dialplans
from ivr.dialplan.model import Target
from ivr.dialplan.static import static_prompts
from ivr.dialplan.verbs import REGISTRY

from tests.dialplan.helpers import load_text

DATA = Path(__file__).parent.parent / "data" / "dialplans"
PROMPTS = DATA / "prompts"


def test_good_plan_loads_every_verb():
    plan, errors = load_dialplans(DATA / "good", PROMPTS)
    assert errors == []
    assert len(plan.routes) == 7 and len(plan.flows) == 9
    used = set()

    def walk(steps):
        for s in steps:
            used.add(s.verb)
            for _k, v in s.args.items():
                for t in (v if isinstance(v, tuple) else (v,)):
                    t = t[1] if isinstance(t, tuple) and len(t) == 2 else t
                    if isinstance(t, Target):
                        walk(t.steps)
    for f in plan.flows.values():
        walk(f.steps)
    assert used == set(REGISTRY)
    assert plan.settings.default_region == "US" and plan.settings.voice == "en-us"
    numbers = [r.value for r in plan.routes if r.kind == "number"]
    assert numbers == ["+18005550100", "+12125550100"]
    say = plan.flows["main"].steps[3]
    assert say.verb == "say" and say.args.barge_in is True
    assert (say.where.line, say.where.col) == (28, 7)
    assert say.where.file.endswith("good/main.yaml")


def test_plan_is_frozen():
    plan, _ = load_dialplans(DATA / "good", PROMPTS)
    with pytest.raises(Exception):
        plan.settings.voice = "x"
    with pytest.raises(TypeError):
        plan.flows["x"] = None
    with pytest.raises(AttributeError):
        plan.flows["main"].steps[0].args.seconds = 3


BAD_EXPECTED = [
    ("errors.yaml", 2, 19, "'XX' is not a region code"),
    ("errors.yaml", 3, 3, "unknown setting 'colour'"),
    ("errors.yaml", 5, 13, "'not a number' is not a phone number (region US)"),
    ("errors.yaml", 8, 11, "undefined flow 'nowhere'"),
    ("errors.yaml", 9, 19, "bad pattern: '[' is never closed"),
    ("errors.yaml", 11, 12, "bad regular expression: nothing to repeat at position 2"),
    ("errors.yaml", 13, 12, "unknown number class 'tollfree'"),
    ("errors.yaml", 15, 5, "a route needs exactly one of number, name, prefix, pattern, regex, class (found number, name)"),
    ("errors.yaml", 21, 7, "unknown verb 'sya' (did you mean 'say'?)"),
    ("errors.yaml", 22, 19, "bad template: '{{' is never closed with '}}'"),
    ("errors.yaml", 23, 25, "unknown key 'lop' in 'say' (did you mean 'loop'?)"),
    ("errors.yaml", 24, 14, "expected a number, got 'soon'"),
    ("errors.yaml", 25, 15, "use either num_digits or min_digits/max_digits, not both"),
    ("errors.yaml", 26, 52, "'x' is not a DTMF key sequence"),
    ("errors.yaml", 28, 7, "unreachable step: 'goto' at line 27 never continues"),
    ("errors.yaml", 30, 13, "missing prompt file 'missing_prompt'"),
    ("errors.yaml", 31, 24, "unknown time zone 'Mars/Base'"),
    ("errors.yaml", 31, 48, "'funday' is not a day or day range"),
    ("errors.yaml", 32, 7, "a step is a single verb, found 2 keys (say, play)"),
    ("errors.yaml", 34, 11, "'if' needs exactly one test of"),
    ("errors.yaml", 35, 13, "'call.id' is read-only"),
    ("more.yaml", 1, 1, "unknown section 'routs' (expected settings, routes, flows) (did you mean 'routes'?)"),
    ("more.yaml", 6, 5, "flow 'helper2' must be a list, not a mapping"),
    ("more.yaml", 8, 63, "duplicate key 'timeout' in 'menu' (first at line 8)"),
    ("more.yaml", 9, 16, "webhook url must start with http:// or https://"),
    ("more.yaml", 10, 15, "reject status must be 400-699"),
    ("syntax.yaml", 3, 4, "YAML: expected ',' or ']', but got ':'"),
]


def test_every_error_class_with_line_and_column():
    plan, errors = load_dialplans(DATA / "bad", PROMPTS)
    assert plan is None
    got = [(Path(e.file).name, e.line, e.col, e.message) for e in errors]
    assert len(got) == len(BAD_EXPECTED), "\n".join(map(str, errors))
    for (f, line, col, msg), (ef, eline, ecol, emsg) in zip(got, BAD_EXPECTED):
        assert (f, line, col) == (ef, eline, ecol), (f, line, col, msg)
        assert msg.startswith(emsg), msg
    first = str(errors[0])
    assert first == f"{DATA / 'bad' / 'errors.yaml'}:2:19: {errors[0].message}"


def test_duplicates_across_files():
    plan, errors = load_dialplans(DATA / "dup", PROMPTS)
    assert plan is None
    assert [(Path(e.file).name, e.line, e.col) for e in errors] == [
        ("b.yaml", 2, 5), ("b.yaml", 6, 5), ("b.yaml", 9, 3)]
    assert "number '+18005550100' is already routed at" in errors[0].message
    assert "a.yaml:2:5" in errors[0].message
    assert "name 'echo' is already routed" in errors[1].message
    assert "duplicate flow 'main'" in errors[2].message


def test_missing_directory_and_empty_directory(tmp_path):
    plan, errors = load_dialplans(tmp_path, None)
    assert plan is None and "no dialplan files" in errors[0].message
    plan, errors = load_dialplans(tmp_path / "nope.yaml", None)
    assert plan is None and errors[0].message.startswith("cannot read")


def test_scalar_shorthands_and_bare_verbs(tmp_path):
    plan, errors = load_text(tmp_path, """
        flows:
          main:
            - answer
            - say: "Hi {{caller.number}}"
            - pause
            - goto: other
          other:
            - reject: decline
        """)
    assert errors == []
    steps = plan.flows["main"].steps
    assert [s.verb for s in steps] == ["answer", "say", "pause", "goto"]
    assert steps[2].args.seconds == 1 and steps[3].args.flow == "other"
    assert plan.flows["other"].steps[0].args.status == 603


@pytest.mark.parametrize("text,line,col,message", [
    ("flows:\n  main:\n    - hangup: now\n", 3, 15, "'hangup' takes no arguments"),
    ("flows:\n  main:\n    - [answer]\n", 3, 7, "a step must be a verb name"),
    ("flows:\n  main: []\n", 2, 9, "flow 'main' has no steps"),
    ("flows:\n  main:\n    - say: {text: 1, barge_in: maybe}\n", 3, 32, "expected true or false"),
    ("flows:\n  main:\n    - gather: {num_digits: 0}\n", 3, 28, "must be at least 1"),
    ("flows:\n  main:\n    - menu: {options: {'1': main}}\n", 3, 13, "'menu' needs 'prompt'"),
    ("flows:\n  main:\n    - goto: main\n    - hangup\n", 4, 7, "unreachable step"),
    ("flows:\n  main:\n    - goto: mian\n", 3, 13, "undefined flow 'mian' (did you mean 'main'?)"),
    ("routes:\n  - {name: x}\nflows:\n  main: [hangup]\n", 2, 5, "a route needs 'flow'"),
    ("routes:\n  - {pattern: '_1!X', flow: main}\nflows:\n  main: [hangup]\n", 2, 18, "bad pattern: '!' must end"),
    ("flows:\n  main:\n    - gather: {min_digits: 5, max_digits: 3}\n", 3, 15, "min_digits (5) is more than max_digits (3)"),
    ("flows:\n  main:\n    - time: {when: {hours: '9-17'}}\n", 3, 28, "is not an hours range"),
    ("flows:\n  main:\n    - time: {holidays: ['02-30']}\n", 3, 25, "'02-30' is not a real date"),
])
def test_single_errors(tmp_path, text, line, col, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    plan, errors = load_dialplans(path, None)
    assert plan is None
    assert [(e.line, e.col) for e in errors] == [(line, col)], errors
    assert message in errors[0].message


def test_static_prompts_skip_templates_and_apply_defaults(tmp_path):
    plan, errors = load_text(tmp_path, """
        settings: {voice: v1, language: en}
        flows:
          main:
            - say: "Static"
            - say: "Dynamic {{x}}"
            - say: {text: "Fast", rate: 200, voice: v2}
            - say_digits: "123"
            - gather: {prompt: "Enter", invalid_prompt: [{say: "Bad"}, {say: "Bad {{x}}"}]}
            - if: {var: x, empty: true, then: [{say: "Inner"}]}
            - say: "Static"
        """)
    assert errors == []
    assert static_prompts(plan) == [
        ("Static", "v1", "en", None), ("Fast", "v2", "en", 200),
        ("one, two, three", "v1", "en", None), ("Enter", "v1", "en", None),
        ("Bad", "v1", "en", None), ("Inner", "v1", "en", None)]
