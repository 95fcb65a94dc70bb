"""The dial and transfer verbs on an in-memory call with a scripted telephony core."""
from __future__ import annotations


from twisted.internet import defer

from ivr.call.telephony import LegFailed, UnknownTarget
from ivr.config.extensions import RingGroup

from tests.dialplan.fakes import FakeCall
from tests.dialplan.helpers import start


class FakeLeg:
    def __init__(self, clock, target):
        self.clock, self.target = clock, target
        self.call_id = f"leg-{target}"
        self.ended = False
        self.end_reason = None
        self.hung_up = None
        self._answer = defer.Deferred()

    def when_answered(self):
        d = defer.Deferred()
        self._answer.addBoth(lambda r: (d.callback(r) if not isinstance(r, defer.Failure)
                                        else d.errback(r), r)[1])
        return d

    def answer(self):
        self._answer.callback(self)

    def fail(self, reason):
        self.ended, self.end_reason = True, reason
        self._answer.errback(LegFailed(reason))
        self._answer.addErrback(lambda f: None)

    def hangup(self, reason="normal"):
        self.hung_up = reason
        if not self._answer.called:
            self.fail("cancelled")
        self.ended = True


class FakeTelephony:
    def __init__(self, clock, groups=None, unknown=()):
        self.clock = clock
        self.groups = groups or {}
        self.unknown = set(unknown)
        self.legs: dict[str, FakeLeg] = {}
        self.order: list[str] = []
        self.bridged = None
        self.bridge_done = defer.Deferred()

    def ring_groups(self):
        return self.groups

    def routes(self, target, trunks=None):
        self.trunks_asked = trunks
        if target in self.unknown:
            raise UnknownTarget(target)
        return [(f"sip:{target}@phone", None, None)]

    def originate_route(self, route, target, *, caller_id=None, caller_name=None, timeout=30):
        leg = FakeLeg(self.clock, target)
        self.legs[target] = leg
        self.order.append(target)
        self.clock.callLater(timeout, lambda: leg._answer.called or leg.fail("no-answer"))
        return leg

    def bridge(self, a, b):
        self.bridged = (a, b)
        return self.bridge_done


PLAN = """
flows:
  main:
    - dial: {to: %s, timeout: 10, on_busy: busy, on_no_answer: noanswer, on_failed: failed%s}
    - say: "after"
  busy:
    - say: "busy"
  noanswer:
    - say: "no answer"
  failed:
    - say: "failed"
"""


def run(tmp_path, to, extra="", groups=None, unknown=()):
    call = FakeCall()
    tel = FakeTelephony(call.clock, groups, unknown)
    call, runner, result = start(tmp_path, PLAN % (to, extra), call=call, telephony=tel)
    return call, tel, result


def test_dial_bridges_the_first_to_answer_and_cancels_the_others(tmp_path):
    call, tel, result = run(tmp_path, '["2001", "2002"]')
    assert tel.order == ["2001", "2002"]           # simultaneous
    assert call.actions == [("ring", False)] and not call.answered  # answer on bridge
    tel.legs["2002"].answer()
    assert tel.bridged == (call, tel.legs["2002"])
    assert tel.legs["2001"].hung_up == "answered-elsewhere"
    assert call.answered and call.variables["dial_status"] == "answered"
    tel.bridge_done.callback("remote-bye")
    call.clock.advance(3)
    assert call.said() == ["after"]


def test_all_busy_takes_the_busy_branch(tmp_path):
    call, tel, result = run(tmp_path, '["2001", "2002"]')
    tel.legs["2001"].fail("busy")
    tel.legs["2002"].fail("busy")
    call.clock.advance(5)
    assert call.variables["dial_status"] == "busy"
    assert call.said()[0] == "busy"


def test_ring_timeout_takes_the_no_answer_branch(tmp_path):
    call, tel, result = run(tmp_path, '"2001"')
    call.clock.advance(9.9)
    assert tel.bridged is None and "dial_status" not in call.variables
    call.clock.advance(0.2)
    call.clock.advance(3)
    assert call.variables["dial_status"] == "no-answer"
    assert call.said()[0] == "no answer"


def test_sequential_ring_group_tries_members_in_order(tmp_path):
    groups = {"support": RingGroup("support", ("2001", "2002"), "sequential", 10)}
    call, tel, result = run(tmp_path, "support", groups=groups)
    assert tel.order == ["2001"]
    call.clock.advance(10.1)                       # 2001 does not answer
    assert tel.order == ["2001", "2002"]
    tel.legs["2002"].answer()
    assert tel.bridged[1] is tel.legs["2002"]


def test_unknown_target_fails(tmp_path):
    call, tel, result = run(tmp_path, '"9999"', unknown={"9999"})
    call.clock.advance(3)
    assert call.variables["dial_status"] == "failed"
    assert call.said()[0] == "failed"


def test_caller_hanging_up_cancels_ringing_legs(tmp_path):
    call, tel, result = run(tmp_path, '["2001", "2002"]')
    call.remote_hangup()
    assert tel.legs["2001"].hung_up == "caller-hangup"
    assert tel.legs["2002"].hung_up == "caller-hangup"


def test_dial_to_is_a_template(tmp_path):
    call = FakeCall()
    call.variables["dialled"] = "2002"
    tel = FakeTelephony(call.clock)
    start(tmp_path, PLAN % ('"{{dialled}}"', ""), call=call, telephony=tel)
    assert tel.order == ["2002"]


def test_anonymous_callers_get_no_trunk_unless_the_plan_allows_it(tmp_path):
    call, tel, result = run(tmp_path, '"+12125551234"')
    assert tel.trunks_asked == ()                  # no trunk for an unauthenticated caller
    call, tel, result = run(tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path,
                            '"+12125551234"', extra=", allow_trunk: true")
    assert tel.trunks_asked is None                # the plan opted in: any trunk


def test_a_ring_group_rings_for_its_own_timeout_unless_the_plan_says(tmp_path):
    groups = {"sales": RingGroup("sales", ("2001",), "simultaneous", 7)}
    call = FakeCall()
    tel = FakeTelephony(call.clock, groups)
    start(tmp_path, """
flows:
  main:
    - dial: {to: sales, on_no_answer: noanswer}
  noanswer:
    - say: "no answer"
""", call=call, telephony=tel)
    call.clock.advance(6.9)
    assert "dial_status" not in call.variables
    call.clock.advance(0.2)
    call.clock.advance(3)
    assert call.variables["dial_status"] == "no-answer"
