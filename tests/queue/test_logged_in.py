"""Who counts as "there" for a queue: logged in (registered, perhaps busy) vs reachable
(may be rung now); and the enqueue verb's per-caller join_empty."""
from types import SimpleNamespace

from twisted.internet.task import Clock

from ivr.call.telephony import UnknownTarget
from ivr.call.queue_dialer import QueueDialer
from ivr.queue import EntryState, OutcomeKind, QueueConfig, QueueEngine

from tests.queue.fakes import FakeDialer, outcomes


def make(config, logged_in, free):
    clock = Clock()
    dialer = FakeDialer(clock)
    engine = QueueEngine(clock, dialer, [config], is_reachable=lambda a: a in free,
                         is_logged_in=lambda a: a in logged_in)
    return clock, dialer, engine


def test_join_empty_false_for_one_caller_refuses_when_nobody_is_logged_in():
    clock, dialer, engine = make(QueueConfig("q", ("a",)), logged_in=set(), free=set())
    entry = engine.enqueue("q", "c1", join_empty=False)
    assert outcomes(entry)[0].kind is OutcomeKind.NO_AGENTS and entry.state is EntryState.REFUSED
    # the queue's own setting (join_empty: true) still holds for other callers
    assert engine.enqueue("q", "c2").state is EntryState.WAITING


def test_a_busy_agent_is_logged_in_but_not_rung():
    logged_in, free = {"a"}, set()
    config = QueueConfig("q", ("a",), join_empty=False, leave_when_empty=True)
    clock, dialer, engine = make(config, logged_in, free)
    entry = engine.enqueue("q", "c1")
    assert entry.state is EntryState.WAITING and dialer.attempts == []
    clock.advance(5)
    engine.agent_changed("a")
    assert entry.state is EntryState.WAITING          # busy is not "no agents"
    free.add("a")                                      # the other call ended
    engine.agent_changed("a")
    assert [a.agent for a in dialer.pending()] == ["a"]
    logged_in.clear()
    free.clear()                                       # unregistered
    dialer.last("a").reject()
    engine.agent_changed("a")
    assert entry.outcome.kind is OutcomeKind.NO_AGENTS


def test_the_dialer_tells_logged_in_from_reachable():
    registered = {"2001", "2002"}

    def routes(target, trunks=None):
        if target not in registered:
            raise UnknownTarget(target)
        return [(f"sip:{target}@phone", None, None)]

    on_a_call = SimpleNamespace(variables={"target": "2002"}, ended=False)
    control = SimpleNamespace(routes=routes)
    dialer = QueueDialer(control, {"x": on_a_call})
    assert dialer.is_logged_in("2001") and dialer.is_reachable("2001")
    assert dialer.is_logged_in("2002") and not dialer.is_reachable("2002")
    assert not dialer.is_logged_in("2003") and not dialer.is_reachable("2003")
