"""A dead node's queue state (ivr/store/node_liveness.py): two simulated nodes on one
throwaway PostgreSQL.  A node that stops beating has its waiting and offered callers
deleted and its offered/busy agents made idle by a live node after ``dead_after`` seconds,
so the farm's line moves again; a node restarting clears its own previous life's rows."""
from __future__ import annotations

import pytest

from ivr.store.node_liveness import NodeLiveness
from ivr.store.queue_state import QueueState

from .test_cdr import result

AGENTS = ["2001", "2002", "2003"]


@pytest.fixture
def farm(pg_url):
    from ivr.store.pg import PgDatabase
    dbs = [PgDatabase(pg_url, threaded=False) for _ in range(2)]
    yield dbs
    for db in dbs:
        db.close()


def two_nodes(dbs, dead_after=10.0):
    a, b = QueueState(dbs[0], "a"), QueueState(dbs[1], "b")
    la, lb = NodeLiveness(dbs[0], "a", dead_after), NodeLiveness(dbs[1], "b", dead_after)
    assert la.start(0.0) == {"callers": 0, "agents": 0} and lb.start(0.0)["callers"] == 0
    for agent in AGENTS:
        result(a.agent_idle("q", agent, 0.0))
    return a, b, la, lb


def test_a_dead_nodes_callers_and_agents_are_cleared_and_the_line_moves(farm):
    a, b, la, lb = two_nodes(farm)
    for i, caller in enumerate(["b1", "b2", "b3"], 1):    # b's callers first ...
        result(b.join("q", caller, float(i)))
    assert result(a.join("q", "a1", 4.0)) == 4           # ... then a's
    assert result(b.match("q", AGENTS, 4.0, only_node="b")) == ("b1", "b", "2001")
    result(b.finish("q", "b1", "2001", True, 4.0))       # 2001 busy on b's call
    assert result(b.match("q", AGENTS, 4.0, only_node="b")) == ("b2", "b", "2002")
    result(lb.beat(6.0))                                  # b's last sign of life
    assert result(la.beat(8.0)) == {}
    # b is gone: its waiting b3 heads the farm's line, a may not pass it
    assert result(a.match("q", AGENTS, 8.0, only_node="a")) is None
    assert result(la.beat(16.0)) == {}                    # 10 s: not yet
    assert result(la.nodes(16.0)) == {"a": True, "b": True}
    assert result(la.beat(16.5)) == {"b": {"callers": 2, "agents": 2}}
    assert result(la.nodes(16.5)) == {"a": True, "b": False}
    agents = result(a.agents())
    assert {n: agents[n][:2] for n in AGENTS} == {n: ("idle", None) for n in AGENTS}
    assert result(a.positions("q")) == ({"a1": 1}, 0)
    # 2003 idle the longest: a's caller is matched at last
    assert result(a.match("q", AGENTS, 17.0, only_node="a")) == ("a1", "a", "2003")
    assert result(la.beat(18.0)) == {}                    # nothing left to clear


def test_a_live_nodes_rows_are_never_cleared(farm):
    a, b, la, lb = two_nodes(farm)
    result(b.join("q", "b1", 1.0))
    assert result(b.match("q", AGENTS, 1.0, only_node="b")) == ("b1", "b", "2001")
    for t in range(2, 60, 2):
        result(lb.beat(float(t)))
        assert result(la.beat(float(t) + 1)) == {}
    assert result(a.agents())["2001"][:2] == ("offered", "b1")


def test_a_restarted_node_clears_its_own_rows_at_start(farm):
    a, b, la, lb = two_nodes(farm)
    result(b.join("q", "b1", 1.0))
    result(a.join("q", "a1", 2.0))
    assert result(b.match("q", AGENTS, 2.0, only_node="b")) == ("b1", "b", "2001")
    result(a.join("q", "a2", 3.0))
    # b restarts within dead_after (same node id): it never looks dead to a
    assert NodeLiveness(farm[1], "b").start(4.0) == {"callers": 1, "agents": 1}
    assert result(a.agents())["2001"][:2] == ("idle", None)
    assert result(a.positions("q")) == ({"a1": 1, "a2": 2}, 0)
    assert result(a.match("q", AGENTS, 5.0, only_node="a"))[0] == "a1"


def test_an_agent_whose_offer_ended_no_longer_names_a_node(farm):
    a, b, la, lb = two_nodes(farm)
    result(b.join("q", "b1", 1.0))
    assert result(b.match("q", AGENTS, 1.0, only_node="b")) == ("b1", "b", "2001")
    result(b.finish("q", "b1", "2001", True, 2.0))
    result(a.agent_wrapup("2001", 30.0))  # the call ended (written by any node)
    result(lb.beat(3.0))
    assert result(la.beat(20.0)) == {}    # b dead, but 2001 is in wrap-up, not b's any more
    assert result(a.agents())["2001"] == ("wrapup", None, 30.0)
