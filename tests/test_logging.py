"""ivr.logging: the line format, the fast formatter and the batched writer."""
from __future__ import annotations

import io
import threading
import time

from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent

from ivr.logging import FLUSH_DELAY, LineBuffer, _chatter, _format, _text


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)

    def flush(self) -> None:
        self.flushes += 1


def _buffer(in_io: bool = True):
    clock, stream, from_thread = Clock(), CountingStream(), []
    buf = LineBuffer(stream, clock.callLater, lambda f, *a: from_thread.append((f, a)),
                     lambda: in_io)
    return buf, clock, stream, from_thread


def test_lines_are_written_together_after_the_delay():
    buf, clock, stream, _ = _buffer()
    for i in range(5):
        buf.write(f"line {i}\n")
    assert stream.getvalue() == ""
    clock.advance(FLUSH_DELAY - 0.001)
    assert stream.getvalue() == ""
    clock.advance(0.001)
    assert stream.getvalue() == "".join(f"line {i}\n" for i in range(5))
    assert (stream.writes, stream.flushes) == (1, 1)
    assert FLUSH_DELAY <= 0.05  # tools tailing the log need lines within ~100 ms


def test_one_timer_per_batch_and_a_new_batch_after_a_flush():
    buf, clock, stream, _ = _buffer()
    buf.write("a\n")
    buf.write("b\n")
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(FLUSH_DELAY)
    buf.write("c\n")
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(FLUSH_DELAY)
    assert stream.getvalue() == "a\nb\nc\n"
    assert stream.writes == 2


def test_explicit_flush_writes_everything_and_the_timer_then_writes_nothing():
    buf, clock, stream, _ = _buffer()
    buf.write("last words\n")
    buf.flush()  # what the shutdown trigger and atexit call
    assert stream.getvalue() == "last words\n"
    clock.advance(FLUSH_DELAY)
    assert (stream.getvalue(), stream.writes) == ("last words\n", 1)


def test_other_threads_schedule_through_call_from_thread():
    buf, clock, stream, from_thread = _buffer(in_io=False)
    buf.write("from a worker\n")
    assert clock.getDelayedCalls() == [] and len(from_thread) == 1
    func, args = from_thread[0]
    func(*args)  # what the reactor does with callFromThread
    clock.advance(FLUSH_DELAY)
    assert stream.getvalue() == "from a worker\n"


def test_concurrent_writers_lose_nothing():
    buf, clock, stream, _ = _buffer(in_io=False)

    def worker(n):
        for i in range(500):
            buf.write(f"{n} {i}\n")
            if i % 50 == 0:
                buf.flush()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    buf.flush()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2000 and len(set(lines)) == 2000
    for n in range(4):  # each thread's lines stay in order
        mine = [int(line.split()[1]) for line in lines if line.startswith(f"{n} ")]
        assert mine == list(range(500))


def test_a_closed_stream_does_not_raise():
    buf, clock, stream, _ = _buffer()
    buf.write("x\n")
    stream.close()
    buf.flush()


def test_line_format_matches_strftime_per_line():
    for when in (1_795_000_000.0, 1_795_000_000.999, 1_795_000_001.5, 1_795_000_000.25):
        event = {"log_format": "call {cid} {event} {detail}", "cid": "a@b", "event": "answer",
                 "detail": "verb='answer' line=19", "log_time": when,
                 "log_namespace": "ivr.call", "log_level": LogLevel.info}
        millis = int((when % 1) * 1000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{millis:03d}Z"
        assert _format(event) == f"{stamp} [ivr.call] call a@b answer verb='answer' line=19\n"
    event["log_level"] = LogLevel.warn
    assert " [ivr.call] WARN call a@b" in _format(event)


def test_fast_text_matches_twisted_formatter():
    events = [
        {"log_format": "x={x!r} y={y:.2f} {z[0]}", "x": "a", "y": 1.234, "z": [7]},
        {"log_format": "plain text"},
        {"log_format": "missing {nope}"},                  # Twisted's error text
        {"log_format": "called {f()}", "f": lambda: 42},  # Twisted's call syntax
        {"log_format": "literal {{braces}} ({paren})", "paren": 1},
        {"log_format": None, "log_io": "raw"},
    ]
    for event in events:
        assert _text(event) == formatEvent(event)


def test_twisted_port_chatter_is_dropped():
    assert _chatter({"log_namespace": "log_legacy", "log_format": "(UDP Port 4000 Closed)"})
    assert not _chatter({"log_namespace": "ivr.call", "log_format": "(UDP Port 4000 Closed)"})
