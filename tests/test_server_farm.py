"""ivr serve's farm duties (PostgreSQL mode), on a task.Clock with stand-ins for the rest of
the server: housekeeping beats the node's heartbeat (dead nodes' queue rows cleared) and
reloads the DND list (other nodes' changes); shutdown stops the farm queue matcher before
the database closes, so no round runs against a closed database."""
from __future__ import annotations

from types import SimpleNamespace
from unittest.mock import MagicMock

from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from ivr.queue import QueueConfig
from ivr.queue.farm import FarmQueueEngine
from ivr.server import IvrServer
from ivr.store.db import Database
from ivr.store.queue_state import QueueState

from tests.queue.fakes import FakeDialer


class Recording(QueueState):
    """The real queue state, noting every call the engine makes."""

    def __init__(self, db, node):
        super().__init__(db, node)
        self.calls = []

    def __getattribute__(self, name):
        attr = super().__getattribute__(name)
        if name in ("join", "leave", "positions", "match", "finish", "agent_present",
                    "agent_away", "agent_wrapup"):
            self.calls.append(name)
        return attr


def test_shutdown_stops_the_farm_queue_matcher(tmp_path):
    clock = Clock()
    db = Database(tmp_path / "q.sqlite3", threaded=False)
    shared = Recording(db, "a")
    engine = FarmQueueEngine(clock, FakeDialer(clock), [QueueConfig(name="q", agents=["2001"])],
                             shared=shared, poll=0.5, is_reachable=lambda a: True)
    clock.advance(1.0)
    assert "positions" in shared.calls              # the matcher runs its rounds
    server = SimpleNamespace(
        dialplan=MagicMock(**{"stop.return_value": succeed(None)}),
        webhooks=MagicMock(**{"close.return_value": succeed(None)}),
        _housekeeping=SimpleNamespace(running=False), queues=engine, db=db,
        media=SimpleNamespace(tts=MagicMock(**{"close.return_value": succeed(None)}),
                              speech=None))
    IvrServer._cleanup(server)
    shared.calls.clear()
    clock.advance(5.0)
    assert shared.calls == []                       # no round after the database closed
    assert clock.getDelayedCalls() == []


def test_housekeeping_beats_and_reloads_the_dnd_list_in_a_farm():
    now = 1_700_000_000.0
    server = MagicMock()
    server.reactor.seconds.return_value = now
    server.media_clock.late_ticks = 0
    server._late_ticks_seen = 0
    server.queues = None
    IvrServer._housekeep(server)
    server.liveness.beat.assert_called_once_with(now)
    server.dnd.reload.assert_called_once_with()
    # single node (SQLite): neither
    single = MagicMock(shared_location=None, queues=None, _late_ticks_seen=0)
    single.reactor.seconds.return_value = now
    single.media_clock.late_ticks = 0
    IvrServer._housekeep(single)
    single.liveness.beat.assert_not_called()
    single.dnd.reload.assert_not_called()
