"""The CDR row a leg leaves (ivr/call/records.py): route and recording."""
from __future__ import annotations

from types import SimpleNamespace

from ivr.call.interface import CallerId
from ivr.call.records import call_summary


def leg(**variables):
    return SimpleNamespace(
        call_id="leg-1", id="leg-1", session=None, direction="inbound",
        caller=CallerId("+12025550143", "Alice", "<sip:+12025550143@x>"), called="611",
        started_at=10.0, answered_at=11.0, ended_at=20.0, end_reason="normal",
        hangup_side="caller", variables=dict(variables), gathered=[], digits_by_mode={},
        path=[], rtp_stats={})


def test_route_and_recording_come_from_the_call():
    row = call_summary(leg(route="number:611", flow="support",
                           recording="/data/recordings/vm-leg-1.wav"))
    assert (row["route"], row["flow"]) == ("number:611", "support")
    assert row["recording"] == "/data/recordings/vm-leg-1.wav"


def test_no_recording_is_none():
    assert call_summary(leg(route="name:echo"))["recording"] is None
