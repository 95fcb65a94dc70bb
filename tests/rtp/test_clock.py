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
