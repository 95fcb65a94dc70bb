"""Queue config validation."""
import pytest

from ivr.queue import (Outcome, OutcomeKind, QueueConfig, QueueConfigError, Strategy,
                       queue_config_from_dict)


def test_full_config_from_dict():
    cfg = queue_config_from_dict({
        "name": "support", "agents": ["101", 102], "strategy": "longest-idle",
        "ring_timeout": 20, "wrapup": 0, "max_wait": 600, "skip_after_no_answer": 45,
        "announce_position_every": 60, "hold_prompt": "welcome", "music": "moh",
        "max_callers": 10, "join_empty": False, "leave_when_empty": True,
        "autofill": True, "ewt_samples": 5})
    assert cfg == QueueConfig("support", ("101", "102"), Strategy.LONGEST_IDLE, 20.0, 0.0,
                              600.0, 45.0, 60.0, "welcome", "moh", 10, False, True, True, 5)


def test_defaults_and_disabling_with_null_or_zero():
    cfg = queue_config_from_dict({"name": "q", "agents": ["a"], "max_wait": None,
                                  "announce_position_every": 0})
    assert cfg.strategy is Strategy.RING_ALL and cfg.ring_timeout == 15
    assert cfg.wrapup == 5 and cfg.skip_after_no_answer == 30
    assert cfg.max_wait is None and cfg.announce_position_every is None


@pytest.mark.parametrize("d, key, words", [
    ({"agents": ["a"]}, "name", "required"),
    ({"name": "", "agents": ["a"]}, "name", "name"),
    ({"name": "q"}, "agents", "required"),
    ({"name": "q", "agents": []}, "agents", "non-empty"),
    ({"name": "q", "agents": ["a", "a"]}, "agents", "twice"),
    ({"name": "q", "agents": [True]}, "agents", "extensions"),
    ({"name": "q", "agents": ["a"], "strategy": "random"}, "strategy", "ring-all"),
    ({"name": "q", "agents": ["a"], "ring_timeout": 0}, "ring_timeout", "greater than 0"),
    ({"name": "q", "agents": ["a"], "ring_timeout": "15s"}, "ring_timeout", "number"),
    ({"name": "q", "agents": ["a"], "wrapup": -1}, "wrapup", "negative"),
    ({"name": "q", "agents": ["a"], "max_wait": -5}, "max_wait", "greater than 0"),
    ({"name": "q", "agents": ["a"], "max_wait": float("nan")}, "max_wait", "number"),
    ({"name": "q", "agents": ["a"], "skip_after_no_answer": 0}, "skip_after_no_answer", "greater"),
    ({"name": "q", "agents": ["a"], "max_callers": 0}, "max_callers", "positive"),
    ({"name": "q", "agents": ["a"], "max_callers": 2.5}, "max_callers", "positive"),
    ({"name": "q", "agents": ["a"], "join_empty": "no"}, "join_empty", "true or false"),
    ({"name": "q", "agents": ["a"], "music": 3}, "music", "prompt"),
    ({"name": "q", "agents": ["a"], "strategey": "ring-all"}, "strategey", "unknown"),
])
def test_errors_name_their_key(d, key, words):
    errors = queue_config_from_dict(d)
    assert isinstance(errors, list) and errors
    assert all(isinstance(e, QueueConfigError) for e in errors)
    assert [e.key for e in errors] == [key]
    assert words in errors[0].message


def test_all_errors_reported_at_once_and_garbage_never_raises():
    errors = queue_config_from_dict({"name": 5, "agents": "a", "wrapup": "x", "zz": 1})
    assert sorted(e.key for e in errors) == ["agents", "name", "wrapup", "zz"]
    for junk in (None, [], "queue", 3, {1: 2}):
        assert isinstance(queue_config_from_dict(junk), list)


def test_direct_construction_validates():
    with pytest.raises(ValueError, match="ring_timeout"):
        QueueConfig("q", ("a",), ring_timeout=0)
    with pytest.raises(ValueError):
        QueueConfig("q", ("a",), strategy="nope")


def test_outcome_kind_accepts_strings():
    assert Outcome("timeout") == Outcome(OutcomeKind.TIMEOUT)
    assert Outcome("answered", agent="a", wait=2.0).kind is OutcomeKind.ANSWERED
    assert OutcomeKind.NO_AGENTS == "no-agents"
