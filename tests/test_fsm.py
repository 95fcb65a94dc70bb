"""The one transition helper (ivr/fsm.py) that every state table uses."""
from __future__ import annotations

import enum

import pytest

from ivr.fsm import Machine, TransitionError, next_state


class S(enum.Enum):
    IDLE = "Idle"
    BUSY = "Busy"


TABLE = {(S.IDLE, "go"): S.BUSY, (S.BUSY, "stop"): S.IDLE}


def test_next_state_follows_the_table():
    assert next_state(TABLE, S.IDLE, "go", what="thing") is S.BUSY
    assert next_state(TABLE, S.BUSY, "stop", what="thing") is S.IDLE


def test_next_state_raises_naming_the_machine_event_and_state():
    with pytest.raises(TransitionError, match=r"^thing: stop not allowed in state Idle$"):
        next_state(TABLE, S.IDLE, "stop", what="thing")


def test_next_state_raises_the_machines_own_error():
    class Mine(TransitionError):
        pass

    with pytest.raises(Mine):
        next_state(TABLE, S.IDLE, "stop", what="thing", error=Mine)


class Door(Machine):
    TABLE = {(S.IDLE, "open"): ("_on_open", S.BUSY),
             (S.BUSY, "close"): (None, S.IDLE)}

    def __init__(self):
        self.state = S.IDLE
        self.seen = []

    def _on_open(self, who):
        self.seen.append((who, self.state))  # the handler sees the state it arrived in
        return ["opened"]


def test_machine_runs_the_handler_then_moves():
    door = Door()
    assert door._fire("open", "alice") == ["opened"]
    assert door.seen == [("alice", S.IDLE)] and door.state is S.BUSY
    assert door._fire("close") is None and door.state is S.IDLE


def test_machine_misuse_raises_and_keeps_the_state():
    door = Door()
    with pytest.raises(TransitionError, match="Door: close not allowed in state Idle"):
        door._fire("close")
    assert door.state is S.IDLE


def test_a_machines_error_may_keep_its_own_wording():
    class Worded(TransitionError):
        @classmethod
        def not_allowed(cls, what, state, event):
            return cls(f"{event} not allowed in {state.name}")

    with pytest.raises(Worded, match=r"^stop not allowed in IDLE$"):
        next_state(TABLE, S.IDLE, "stop", what="thing", error=Worded)
