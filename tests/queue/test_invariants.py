"""Random event sequences against the engine; invariants checked after every step.

- an agent is never ringing for two callers at once (and never rung while busy,
  paused or unreachable);
- callers are offered in FIFO order within a queue, and without autofill answered in it;
- every entry's result fires exactly once, with a wait no longer than max_wait.
"""
from hypothesis import given, settings, strategies as st
from twisted.internet.task import Clock

from ivr.queue import AgentState, EntryState, OutcomeKind, QueueConfig, QueueEngine

from tests.queue.fakes import FakeDialer

AGENTS = ("a", "b", "c", "d")

ops = st.lists(st.one_of(
    st.tuples(st.just("enqueue"), st.integers(0, 1)),
    st.tuples(st.just("enqueue"), st.integers(0, 1)),
    st.tuples(st.just("answer"), st.integers(0, 50)),
    st.tuples(st.just("abandon"), st.integers(0, 50)),
    st.tuples(st.just("answer"), st.integers(0, 50)),
    st.tuples(st.just("reject"), st.integers(0, 50)),
    st.tuples(st.just("end"), st.sampled_from(AGENTS)),
    st.tuples(st.just("advance"), st.sampled_from([0.5, 1, 3, 5, 10, 30])),
    st.tuples(st.just("reach"), st.sampled_from(AGENTS)),
    st.tuples(st.just("pause"), st.sampled_from(AGENTS)),
), min_size=15, max_size=80)

configs = st.tuples(
    st.sampled_from(["ring-all", "round-robin", "longest-idle"]),
    st.sampled_from(["ring-all", "round-robin", "longest-idle"]),
    st.booleans(), st.booleans(), st.sampled_from([0, 2, 5]),
)


class Checker:
    def __init__(self, strategy_a, strategy_b, autofill, join_empty, wrapup):
        self.clock = Clock()
        self.dialer = FakeDialer(self.clock)
        self.reachable = set(AGENTS)
        self.queues = [
            QueueConfig("A", ("a", "b", "c"), strategy_a, ring_timeout=7, wrapup=wrapup,
                        max_wait=40, skip_after_no_answer=4, announce_position_every=9,
                        autofill=autofill, join_empty=join_empty, max_callers=5),
            QueueConfig("B", ("c", "d"), strategy_b, ring_timeout=5, wrapup=wrapup,
                        max_wait=25, skip_after_no_answer=6, autofill=autofill),
        ]
        self.engine = QueueEngine(self.clock, self.dialer, self.queues,
                                  is_reachable=lambda a: a in self.reachable)
        self.entries = []
        self.fired = {}
        self.answered_order = {"A": [], "B": []}
        self.offered_order = {"A": [], "B": []}
        self.paused = set()
        self.violations = []
        self.answers = {a: 0 for a in AGENTS}     # calls answered / ended per agent
        self.ends = {a: 0 for a in AGENTS}
        self.free_at = {a: 0.0 for a in AGENTS}   # end of the last wrap-up
        self.call_queue = {}
        self.skip_until = {a: 0.0 for a in AGENTS}   # after a rejected ring
        real_ring = self.dialer.ring

        def ring(agent, entry):
            # the engine catches dialer exceptions, so violations are collected instead
            now = self.clock.seconds()
            cfg = next(q for q in self.queues if q.name == entry.queue)
            for ok, what in ((agent in self.reachable, "unreachable"),
                             (agent not in self.paused, "paused"),
                             (not self.dialer.pending(agent), "already ringing"),
                             (self.answers[agent] == self.ends[agent], "on a call"),
                             (now >= self.free_at[agent], "in wrap-up"),
                             (now >= self.skip_until[agent], "skipped"),
                             (agent in cfg.agents, "not a member")):
                if not ok:
                    self.violations.append(f"{agent} rung at {now} while {what}")
            if entry.seq not in self.offered_order[entry.queue]:
                self.offered_order[entry.queue].append(entry.seq)
            return real_ring(agent, entry)
        self.dialer.ring = ring

    def apply(self, op, arg):
        e, d = self.engine, self.dialer
        if op == "enqueue":
            entry = e.enqueue("AB"[arg], f"caller{len(self.entries)}")
            self.entries.append(entry)
            self.fired[entry.seq] = []
            entry.result.addCallback(lambda o, s=entry.seq: self.fired[s].append(o))
            entry.on_announce(lambda pos, ewt, en=entry: self.check_announce(en, pos, ewt))
        elif op == "abandon" and self.entries:
            self.entries[arg % len(self.entries)].abandon()
        elif op in ("answer", "reject") and d.pending():
            attempt = d.pending()[arg % len(d.pending())]
            if op == "answer":
                self.answers[attempt.agent] += 1
                self.call_queue[attempt.agent] = attempt.entry.queue
                attempt.answer()
                assert attempt.entry.outcome.agent == attempt.agent
            else:
                cfg = next(q for q in self.queues if q.name == attempt.entry.queue)
                self.skip_until[attempt.agent] = max(self.skip_until[attempt.agent],
                                                     self.clock.seconds() + cfg.skip_after_no_answer)
                attempt.reject()
        elif op == "end":
            on_call = self.answers[arg] > self.ends[arg]
            if on_call:   # bookkeeping first: with no wrap-up the engine re-rings at once
                self.ends[arg] += 1
                cfg = next(q for q in self.queues if q.name == self.call_queue[arg])
                self.free_at[arg] = self.clock.seconds() + cfg.wrapup
            assert e.call_ended(arg) is on_call
        elif op == "advance":
            self.advance(arg)
        elif op == "reach":
            self.reachable ^= {arg}
            e.agent_changed(arg)
        elif op == "pause":
            self.paused ^= {arg}
            e.pause(arg, arg in self.paused)

    def advance(self, seconds):
        # half-second steps: Clock.advance(n) runs due calls *after* jumping, so one big
        # jump would make every timer fire late; all timeouts here are whole seconds
        for _ in range(int(seconds * 2)):
            self.clock.advance(0.5)

    def check_announce(self, entry, pos, ewt):
        assert entry.state is EntryState.WAITING and pos == entry.position

    def check(self):
        e = self.engine
        assert self.violations == []
        pending = self.dialer.pending()
        agents = [a.agent for a in pending]
        assert len(agents) == len(set(agents)), "an agent rings for two callers"
        for name in AGENTS:
            state = e._agents[name].state
            assert (state is AgentState.RINGING) == (name in agents), name
        for attempt in pending:
            assert attempt.entry.state is EntryState.WAITING
            assert attempt.agent in attempt.entry.ringing
        for entry in self.entries:
            fired = self.fired[entry.seq]
            assert len(fired) <= 1
            if entry.state is EntryState.WAITING:
                assert fired == [] and entry.position is not None
            else:
                assert fired == [entry.outcome] and entry.position is None
                assert entry.ringing == ()
                limit = 40 if entry.queue == "A" else 25
                assert entry.outcome.wait <= limit
                if entry.outcome.kind is OutcomeKind.TIMEOUT:
                    assert entry.outcome.wait == limit
                if (entry.outcome.kind is OutcomeKind.ANSWERED
                        and entry.seq not in self.answered_order[entry.queue]):
                    self.answered_order[entry.queue].append(entry.seq)
        for q in ("A", "B"):
            assert self.offered_order[q] == sorted(self.offered_order[q])
            if not self.queues[0].autofill:
                assert self.answered_order[q] == sorted(self.answered_order[q])
            waiting = e.waiting(q)
            assert [w.position for w in waiting] == list(range(1, len(waiting) + 1))
            assert [w.seq for w in waiting] == sorted(w.seq for w in waiting)


@settings(max_examples=300, deadline=None)
@given(configs, ops)
def test_random_sequences_keep_invariants(config, sequence):
    checker = Checker(*config)
    for op, arg in sequence:
        checker.apply(op, arg)
        checker.check()
    # drain: everybody leaves one way or another, each result exactly once
    checker.advance(100)
    for entry in checker.entries:
        entry.abandon()
    checker.check()
    assert all(len(v) == 1 for v in checker.fired.values())
    assert checker.dialer.pending() == []
