"""Queues across nodes (ivr/store/queue_state.py): two simulated nodes on one real
PostgreSQL, driven by a hypothesis state machine against a model (strict arrival order
across the farm, each caller and agent matched exactly once, positions counting every
node's callers), and two nodes matching at once from threads."""
from __future__ import annotations

import threading

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ivr.store.queue_state import QueueState

from .conftest import fresh_database
from .test_cdr import result

AGENTS = ["2001", "2002", "2003"]


@pytest.fixture(scope="module")
def pg_farm(pg_cluster):
    from ivr.store.pg import PgDatabase
    url = fresh_database(pg_cluster)
    dbs = [PgDatabase(url, threaded=False) for _ in range(2)]
    yield dbs
    for db in dbs:
        db.close()


def test_matching_across_two_nodes_follows_the_model(pg_farm):
    class Farm(RuleBasedStateMachine):
        @initialize()
        def reset(self):
            pg_farm[0].run(lambda c: [c.execute(f"DELETE FROM {t}") for t in
                                      ("queue_heads", "queue_callers", "queue_agents")])
            self.nodes = [QueueState(db, f"n{i}") for i, db in enumerate(pg_farm)]
            self.waiting: list[str] = []          # model: arrival order, every node
            self.idle: set[str] = set()
            self.offers: dict[str, str] = {}      # caller -> agent
            self.busy: set[str] = set()
            self.count = 0
            self.now = 0.0

        def tick(self):
            self.now += 1.0
            return self.now

        @rule(node=st.integers(0, 1))
        def caller_joins(self, node):
            self.count += 1
            caller = f"c{self.count}"
            self.waiting.append(caller)
            assert result(self.nodes[node].join("q", caller, self.tick())) == len(self.waiting)

        @rule(node=st.integers(0, 1), agent=st.sampled_from(AGENTS))
        def agent_ready(self, node, agent):
            if agent in self.offers.values():
                return
            self.busy.discard(agent)
            self.idle.add(agent)
            result(self.nodes[node].agent_idle("q", agent, self.tick()))

        @rule(node=st.integers(0, 1))
        def match(self, node):
            got = result(self.nodes[node].match("q"))
            if not self.waiting or not self.idle:
                assert got is None
                return
            caller, caller_node, agent = got
            assert caller == self.waiting[0]           # strictly the oldest, any node
            assert agent in self.idle and agent not in self.offers.values()
            self.waiting.pop(0)
            self.idle.discard(agent)
            self.offers[caller] = agent

        @precondition(lambda self: self.offers)
        @rule(data=st.data(), answered=st.booleans(), node=st.integers(0, 1))
        def offer_ends(self, data, answered, node):
            caller = data.draw(st.sampled_from(sorted(self.offers)))
            agent = self.offers.pop(caller)
            result(self.nodes[node].finish("q", caller, agent, answered, self.tick()))
            if answered:
                self.busy.add(agent)
            else:
                self.idle.add(agent)
                self.waiting.append(caller)
                self.waiting.sort(key=lambda c: int(c[1:]))   # back at its old place

        @precondition(lambda self: self.waiting)
        @rule(data=st.data(), node=st.integers(0, 1))
        def caller_hangs_up(self, data, node):
            caller = data.draw(st.sampled_from(self.waiting))
            self.waiting.remove(caller)
            assert result(self.nodes[node].leave("q", caller)) is True

        @invariant()
        def positions_count_every_node(self):
            if not hasattr(self, "nodes"):
                return
            for i, caller in enumerate(self.waiting):
                assert result(self.nodes[i % 2].position("q", caller)) == i + 1

    Farm.TestCase.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)
    Farm.TestCase().runTest()


def test_two_nodes_matching_at_once_offer_each_caller_and_agent_once(pg_cluster):
    from ivr.store.pg import PgDatabase
    url = fresh_database(pg_cluster)
    dbs = [PgDatabase(url, threaded=False) for _ in range(2)]
    try:
        a, b = (QueueState(db, f"n{i}") for i, db in enumerate(dbs))
        for i in range(40):
            result((a if i % 2 else b).join("q", f"c{i:02d}", float(i)))
        for i in range(12):
            result(a.agent_idle("q", f"a{i}", 0.0))
        got: list[list] = [[], []]
        start = threading.Barrier(2)

        def matcher(i, state):
            start.wait()
            for _ in range(10):
                m = result(state.match("q"))
                if m is not None:
                    got[i].append(m)
        threads = [threading.Thread(target=matcher, args=(i, s)) for i, s in enumerate((a, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        matches = got[0] + got[1]
        assert len(matches) == 12
        assert sorted(m[0] for m in matches) == [f"c{i:02d}" for i in range(12)]  # oldest 12
        assert len({m[2] for m in matches}) == 12                                 # each once
    finally:
        for db in dbs:
            db.close()
