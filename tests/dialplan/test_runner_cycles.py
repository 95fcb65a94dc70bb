"""A call that ends while a verb waits leaves no reference cycle behind (#17 item 3): the
cancelled verb's Failure would otherwise hold, through its traceback, every frame from
the hang-up down to the verb, and the frames the Failure, so only the garbage collector
could free them (at B1's rates a full collection every few seconds)."""
import gc

from twisted.python.failure import Failure

from tests.dialplan.helpers import start


def test_hangup_during_a_pause_leaves_no_garbage_cycle(tmp_path):
    call, runner, result = start(tmp_path, "flows:\n  main: [answer, {pause: 10}, {say: x}]\n")
    seen = []
    apply = runner._apply

    def keep(result):
        seen.append(result)
        return apply(result)
    runner._apply = keep
    gc.collect()
    gc.disable()
    try:
        call.remote_hangup()
        assert result == ["ended"]
        failures = [r for r in seen if isinstance(r, Failure)]
        assert failures, "the pause was not cancelled"
        for failure in failures:
            assert failure.tb is None and failure.value.__traceback__ is None
        del seen[:], failures, failure
        gc.set_debug(gc.DEBUG_SAVEALL)
        found = gc.collect()
    finally:
        gc.set_debug(0)
        garbage, gc.garbage[:] = list(gc.garbage), []
        gc.enable()
    frames = [o for o in garbage if type(o).__name__ in ("frame", "traceback", "Failure")]
    assert not frames, f"{found} objects in cycles, among them {len(frames)} frames/tracebacks"
