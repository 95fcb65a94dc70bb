"""Each node's published calls (ivr/store/node_calls.py), on SQLite and PostgreSQL."""
from __future__ import annotations

from ivr.store.node_calls import NodeCalls

from .test_cdr import result


def test_nodes_see_each_others_fresh_calls_only(backend):
    a, b = NodeCalls(backend.open(), "a"), NodeCalls(backend.open(), "b")
    assert result(a.publish([{"id": "l1", "state": "ringing"}, {"id": "l2"}], 100.0)) == 2
    assert result(b.publish([{"id": "l3"}], 100.0)) == 1
    assert result(b.others(101.0)) == [{"id": "l1", "state": "ringing", "node": "a"},
                                       {"id": "l2", "node": "a"}]
    result(a.publish([{"id": "l2", "state": "answered"}], 102.0))   # l1 ended
    assert result(b.others(103.0)) == [{"id": "l2", "state": "answered", "node": "a"}]
    assert result(b.others(112.1)) == []                 # a has gone quiet: left out
    assert result(a.others(105.0)) == [{"id": "l3", "node": "b"}]
    result(b.publish([], 200.0))                         # a's stale rows are deleted
    assert result(backend.open().run(lambda c: c.execute(
        "SELECT count(*) FROM node_calls").fetchone()[0])) == 0
