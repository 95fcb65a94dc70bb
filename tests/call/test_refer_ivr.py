"""REFER from a caller in an IVR call (not bridged): we call the Refer-To target and, once
it answers, the target gets the IVR (the caller's flow from its start) and the caller's leg
ends "transferred"; progress goes back as NOTIFY 100 then 200 (RFC 3515).  Driven through
the real call core in memory (tests/call/harness.py) with a second phone as the target."""
from __future__ import annotations

import pytest

from ivr.config.extensions import parse_extensions
from ivr.sip.ua import UserAgent
from ivr.sip.timers import TimerConfig

from tests.sip.test_ua_pair import HOST, App, FakeTransport, Listener

from .harness import SERVER_PORT, CallCore, offer
from .test_call_lifecycle import assert_all_ended_once

DESK_PORT = 5072

PLAN = """
routes:
  - {name: ivr, flow: ivr}
flows:
  ivr:
    - answer
    - say: "welcome"
    - pause: 30
    - hangup
"""

EXTENSIONS = f"""
realm: ivr.local
algorithms: [MD5]
extensions:
  "2002": {{ha1_md5: 45f510763d8d21f7a0b550d7d493a274, static_contacts: ["sip:2002@{HOST}:{DESK_PORT}"]}}
trunks:
  carrier: {{address: "192.0.2.10:5080", transport: udp}}
"""


class Phone(Listener):
    """Our caller's phone: records the sipfrag status of every NOTIFY it gets."""

    def __init__(self):
        super().__init__()
        self.notified: list[tuple[str, str]] = []

    def on_notify(self, session, request):
        self.notified.append((request.body.decode().strip(),
                              request.headers.get("Subscription-State").split(";")[0]))
        return 200


@pytest.fixture
def core(tmp_path):
    core = CallCore(tmp_path / "plans", PLAN, rtp_pairs=4)
    config, errors = parse_extensions(EXTENSIONS)
    assert errors == []
    core.control.directory = config
    core.desk = App()   # rings, then answers
    desk_ua = UserAgent(core.clock, FakeTransport(core.network, DESK_PORT), core.desk,
                        HOST, DESK_PORT, TimerConfig())
    core.network.uas[(HOST, DESK_PORT)] = desk_ua
    yield core
    core.close()


def in_the_ivr(core):
    phone = Phone()
    session = core.phone.invite(f"sip:ivr@{HOST}:{SERVER_PORT}", phone, offer())
    core.run(0.5)
    assert "answered" in phone.names()
    (leg,) = core.calls.values()
    return session, phone, leg


def refer(core, session, target):
    statuses = []
    session.refer(target, lambda response: statuses.append(response.status))
    core.run(0.3)
    return statuses


def test_refer_in_an_ivr_call_hands_the_ivr_to_the_target(core):
    session, phone, leg = in_the_ivr(core)
    assert refer(core, session, f"sip:2002@{HOST}:{SERVER_PORT}") == [202]
    core.run(1.0)
    assert phone.notified[0] == ("SIP/2.0 100 Trying", "active")
    assert phone.notified[-1] == ("SIP/2.0 200 OK", "terminated")
    # The caller's leg is over ("transferred"); the desk phone now has the IVR.
    assert leg.ended and leg.end_reason == "transferred"
    assert "terminated" in phone.names()
    (desk_leg,) = core.calls.values()
    assert desk_leg.answered and desk_leg.variables["transferred_from"] == leg.caller.number
    assert desk_leg.variables["flow"] == "ivr"
    assert any(p.startswith("flow_start flow='ivr'") for p in desk_leg.path), desk_leg.path
    assert core.dialplan.runners.get(desk_leg.call_id) is not None
    (desk_session,) = core.desk.sessions
    desk_session.bye()
    core.run(1.0)
    assert_all_ended_once(core, 2)
    assert {r["end_reason"] for r in core.cdrs.records} >= {"transferred"}


def test_a_target_that_does_not_answer_leaves_the_caller_in_the_ivr(core):
    core.desk.behaviour = lambda s: s.reject(486)
    session, phone, leg = in_the_ivr(core)
    assert refer(core, session, f"sip:2002@{HOST}:{SERVER_PORT}") == [202]
    core.run(1.0)
    assert phone.notified[-1][1] == "terminated" and phone.notified[-1][0].startswith("SIP/2.0 486")
    assert not leg.ended and core.dialplan.runners.get(leg.call_id) is not None
    session.bye()
    core.run(1.0)
    assert_all_ended_once(core, 2)


@pytest.mark.parametrize("target, status", [
    (f"sip:9999@{HOST}:{SERVER_PORT}", 404),       # no such extension
    ("sip:someone@elsewhere.example", 403),         # an outside caller may not send us there
    (f"sip:+12125551234@{HOST}:{SERVER_PORT}", 404),  # ... nor out through a trunk
])
def test_an_outside_caller_may_refer_only_to_extensions(core, target, status):
    session, phone, leg = in_the_ivr(core)
    assert refer(core, session, target) == [status]
    assert phone.notified == [] and not leg.ended and len(core.calls) == 1
    session.bye()
    core.run(1.0)
    assert_all_ended_once(core, 1)
