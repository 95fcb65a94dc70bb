from twisted.internet import task

from ivr.rtp.clock import MediaClock


class Recorder:
    def __init__(self):
        self.counts = []

    def tick(self, count):
        self.counts.append(count)


class Broken:
    def tick(self, count):
        raise RuntimeError("boom")


def test_ticks_every_20ms_with_counts():
    clock = task.Clock()
    mc = MediaClock(clock)
    a, b = Recorder(), Recorder()
    mc.register(a)
    mc.register(b)
    mc.register(a)  # idempotent
    assert mc.running and mc.streams == 2
    for _ in range(5):
        clock.advance(0.02)
    assert a.counts == [1] * 5 and b.counts == [1] * 5
    clock.advance(0.06)  # the reactor was late by two intervals
    assert a.counts[-1] == 3
    assert mc.late_ticks == 1 and mc.missed_intervals == 2 and mc.ticks == 6


def test_one_loopingcall_for_all_streams_and_stop_when_idle():
    clock = task.Clock()
    mc = MediaClock(clock)
    streams = [Recorder() for _ in range(100)]
    for s in streams:
        mc.register(s)
    assert len(clock.getDelayedCalls()) == 1
    for s in streams:
        mc.unregister(s)
    assert not mc.running and clock.getDelayedCalls() == []
    mc.unregister(streams[0])  # unknown stream: no error
    again = Recorder()
    mc.register(again)
    clock.advance(0.02)
    assert again.counts == [1] and streams[0].counts == []


def test_broken_stream_does_not_stop_the_clock():
    clock = task.Clock()
    mc = MediaClock(clock)
    good = Recorder()
    mc.register(Broken())
    mc.register(good)
    clock.advance(0.02)
    clock.advance(0.02)
    assert good.counts == [1, 1] and mc.stream_errors == 2 and mc.running
    assert mc.metrics()["stream_errors"] == 2


def test_unregister_during_tick():
    clock = task.Clock()
    mc = MediaClock(clock)

    class Once:
        n = 0

        def tick(self, count):
            self.n += 1
            mc.unregister(self)

    o = Once()
    mc.register(o)
    clock.advance(0.02)
    clock.advance(0.02)
    assert o.n == 1 and not mc.running


class Stamped:
    def __init__(self, clock):
        self.clock, self.calls = clock, []

    def tick(self, count):
        self.calls.append((round(self.clock.seconds(), 4), count))


# A period of 1/16 s keeps task.Clock's float sums exact (0.005 s steps would drift by an
# ulp and turn some firings into "late" ones); the logic does not depend on the period.
P = 1 / 16


def test_phases_spread_streams_but_tick_each_once_per_period():
    clock = task.Clock()
    mc = MediaClock(clock, interval=P, phases=4)
    streams = [Stamped(clock) for _ in range(8)]
    for s in streams:
        mc.register(s)
    for _ in range(4 * 10):                      # ten periods in quarter-period firings
        clock.advance(P / 4)
    offsets = sorted({s.calls[0][0] for s in streams})
    assert offsets == [round(P / 4 * k, 4) for k in (1, 2, 3, 4)]   # two streams per phase
    for s in streams:
        times = [t for t, _ in s.calls]
        assert len(times) == 10 and all(c == 1 for _, c in s.calls)
        assert all(abs(b - a - P) < 1e-3 for a, b in zip(times, times[1:]))


def test_phases_count_the_periods_a_late_firing_covers():
    clock = task.Clock()
    mc = MediaClock(clock, interval=P, phases=4)
    streams = [Stamped(clock) for _ in range(4)]
    for s in streams:
        mc.register(s)
    for _ in range(4):
        clock.advance(P / 4)                     # every phase once, on time
    assert [len(s.calls) for s in streams] == [1, 1, 1, 1]
    clock.advance(P * 10 / 4)                    # late: ten quarter-slots in one firing
    counts = sorted(s.calls[-1][1] for s in streams)
    assert counts == [2, 2, 3, 3]                # 10 slots over 4 phases
    assert sum(c for s in streams for _, c in s.calls) == 4 + 10   # no period lost or doubled
    mc.unregister(streams[0])
    for _ in range(4):
        clock.advance(P / 4)
    assert len(streams[0].calls) == 2 and all(len(s.calls) == 3 for s in streams[1:])


def test_every_firing_streams_run_at_each_firing_after_the_phase_streams():
    clock = task.Clock()
    mc = MediaClock(clock, phases=4)
    order = []

    class Named:
        def __init__(self, name):
            self.name = name

        def tick(self, count):
            order.append((self.name, count))

    a, b, batch = Named("a"), Named("b"), Named("batch")
    mc.register(a)
    mc.register(batch, every_firing=True)
    mc.register(b)
    for _ in range(4):
        clock.advance(0.005)
    assert order.count(("batch", 1)) == 4  # one per firing, not one per 20 ms
    assert sorted(o for o in order if o[0] != "batch") == [("a", 1), ("b", 1)]
    # a firing's batch work comes after its phase streams
    for i, item in enumerate(order):
        if item[0] in ("a", "b"):
            assert order[i + 1] == ("batch", 1)
    mc.unregister(batch)
    mc.unregister(a)
    mc.unregister(b)
    assert not mc.running
