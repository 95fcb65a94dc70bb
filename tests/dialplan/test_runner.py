from twisted.internet import defer

from ivr.dialplan.runner import FlowRunner
from ivr.dialplan.verbs import build_verb

from tests.dialplan.fakes import FakeCall
from tests.dialplan.helpers import plan_of, start


def test_goto_gosub_return_and_goto_inside_a_sub(tmp_path):
    call, _r, result = start(tmp_path, """
        flows:
          main:
            - set: {trail: "main"}
            - gosub: sub
            - set: {trail: "{{trail}},back"}
            - goto: last
          sub:
            - set: {trail: "{{trail}},sub"}
            - goto: sub2            # still inside the gosub: return goes back to main
          sub2:
            - set: {trail: "{{trail}},sub2"}
            - return
          last:
            - set: {trail: "{{trail}},last"}
            - return                # top level: ends the flow
        """)
    assert call.variables["trail"] == "main,sub,sub2,back,last"
    assert result == ["completed"]
    steps = [f["verb"] for e, f in call.events if e == "step"]
    assert steps == ["set", "gosub", "set", "goto", "set", "return", "set", "goto", "set", "return"]
    assert call.events[-1] == ("flow_end", {"reason": "completed", "steps": 10})


def test_loop_guard_stops_an_endless_plan(tmp_path):
    call, runner, result = start(tmp_path, """
        settings: {max_steps: 50}
        flows:
          main: [{goto: again}]
          again: [{log: "round"}, {goto: main}]
        """)
    assert result == ["loop_guard"]
    assert runner.steps_run == 51
    assert call.actions == [("reject", 480, None)]
    assert "loop_guard" in call.event_names()


def test_default_loop_guard_is_1000(tmp_path):
    call, runner, result = start(tmp_path, "flows:\n  main: [answer, {goto: main}]\n")
    assert result == ["loop_guard"] and runner.steps_run == 1001
    assert call.actions[-1] == ("hangup", "loop_guard")


def test_remote_hangup_mid_prompt_stops_quietly(tmp_path):
    call, _r, result = start(tmp_path, """
        flows:
          main: [{say: "Long"}, {say: "Never"}]
        """)
    call.clock.advance(1)
    call.remote_hangup()
    assert result == ["ended"]
    assert call.said() == ["Long"]
    assert not any(a[0] == "hangup" for a in call.actions)


def test_hangup_while_waiting_on_a_timer_cancels_it(tmp_path):
    call, _r, result = start(tmp_path, "flows:\n  main: [answer, {pause: 10}, {say: x}]\n")
    call.remote_hangup()
    assert result == ["ended"] and call.clock.getDelayedCalls() == []


def test_cancel(tmp_path):
    call, runner, result = start(tmp_path, "flows:\n  main: [answer, {pause: 10}, {say: x}]\n")
    runner.cancel()
    assert result == ["cancelled"] and call.clock.getDelayedCalls() == []
    assert call.said() == []


def test_verb_error_is_logged_and_call_hung_up(tmp_path):
    plan = plan_of(tmp_path, "flows:\n  main: [answer, {say: boom}]\n")
    call = FakeCall()

    def factory(step, env):
        verb = build_verb(step, env)
        if step.verb == "say":
            verb.execute = lambda c: defer.fail(RuntimeError("tts exploded"))
        return verb
    result = []
    FlowRunner(plan, call, factory).run("main").addCallback(result.append)
    assert result == ["error"]
    assert ("error", {"detail": "tts exploded"}) in call.events
    assert call.actions[-1] == ("hangup", "error")


def test_unknown_flow_and_already_ended_call(tmp_path):
    plan = plan_of(tmp_path, "flows:\n  main: [hangup]\n")
    result = []
    FlowRunner(plan, FakeCall()).run("nope").addCallback(result.append)
    call = FakeCall()
    call.remote_hangup()
    FlowRunner(plan, call).run("main").addCallback(result.append)
    assert result == ["error", "ended"]


def test_calls_keep_the_plan_they_started_with(tmp_path):
    old = plan_of(tmp_path, "flows:\n  main: [{say: old}, {say: old2}]\n")
    call = FakeCall()
    FlowRunner(old, call).run("main")
    plan_of(tmp_path, "flows:\n  main: [{say: new}]\n", name="plan.yaml")  # a reload
    call.clock.advance(2)
    assert call.said() == ["old", "old2"]
