"""ivr.logging.Logger (#17 item 3): the per-call lines skip Twisted's level check, which
sorts every level on each line, and publish the same event Twisted's Logger would."""
import time

import pytest
from hypothesis import given, strategies as st
from twisted.logger import LogLevel, LogPublisher, formatEvent
from twisted.logger import Logger as TwistedLogger

from ivr.logging import Logger, _StampCache


def _events(cls):
    publisher = LogPublisher()
    seen = []
    publisher.addObserver(seen.append)
    cls(namespace="ivr.call", observer=publisher).info(
        "call {cid} {event} {detail}", cid="a@b", event="step", detail="verb='pause'")
    return seen


def test_the_event_is_the_one_twisted_publishes():
    (ours,), (theirs,) = _events(Logger), _events(TwistedLogger)
    assert formatEvent(ours) == formatEvent(theirs) == "call a@b step verb='pause'"
    assert set(ours) == set(theirs)
    for key in set(ours) - {"log_time", "log_logger"}:
        assert ours[key] == theirs[key], key
    assert abs(ours["log_time"] - time.time()) < 5


def test_emit_does_not_sort_the_levels_per_line(monkeypatch):
    def sorted_levels():
        raise AssertionError("iterconstants called per line")
    monkeypatch.setattr(LogLevel, "iterconstants", sorted_levels)
    assert len(_events(Logger)) == 1


def test_an_unknown_level_still_gets_twisteds_complaint():
    publisher = LogPublisher()
    seen = []
    publisher.addObserver(seen.append)
    Logger(namespace="x", observer=publisher).emit("loud", "hi")
    (event,) = seen
    assert event["log_level"] is LogLevel.critical and "invalid log level" in formatEvent(event)


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_the_time_stamp_is_unchanged(when):
    prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(when)))
    assert _StampCache().stamp(when) == f"{prefix}.{int((when % 1) * 1000):03d}Z"
