"""One line per event on stdout: ``2026-11-25T14:13:00.123Z [ivr.sip.ua] message``.

Lines are formatted at once but written in batches: a :class:`LineBuffer` collects them
and writes (and flushes) everything collected once per ``FLUSH_DELAY``, so a call's eight
or so lines cost one ``write`` instead of eight write+flush syscalls at call rates.  A
line is on the stream at most ``FLUSH_DELAY`` after it was logged (tools that tail the
log, like the interop suite, see it well within 100 ms); whatever is still buffered is
written when the reactor shuts down and again at interpreter exit, so nothing logged
before a clean exit is lost.
"""
from __future__ import annotations

import atexit
import sys
import threading
import time
from typing import Callable

from twisted.logger import LogLevel, formatEvent, globalLogBeginner
from twisted.logger import Logger as _TwistedLogger

#: Longest time a line waits in the buffer (seconds).
FLUSH_DELAY = 0.02


class _StampCache:
    """``time.strftime`` once per second, not once per line."""

    __slots__ = ("cached",)

    def __init__(self) -> None:
        self.cached = (-1, "")  # (second, prefix) as one tuple: threads may log too

    def stamp(self, when: float) -> str:
        second = int(when)
        cached_second, prefix = self.cached
        if second != cached_second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self.cached = (second, prefix)
        return "%s.%03dZ" % (prefix, (when - second) * 1000)  # %d truncates, as int() did


_stamps = _StampCache()

_LEVELS = frozenset(LogLevel.iterconstants())


class Logger(_TwistedLogger):
    """``twisted.logger.Logger`` with a cheaper ``emit``, for the lines logged per call.

    Twisted's ``emit`` checks the level with ``level not in LogLevel.iterconstants()``,
    which sorts the five levels on every line (a fifth of a line's cost at B1's call
    rates); this one looks the level up in a frozenset and otherwise builds and publishes
    the same event (an unknown level still goes through Twisted's complaint).
    """

    def emit(self, level, format=None, **kwargs) -> None:  # noqa: A002 (Twisted's name)
        if level not in _LEVELS:
            return super().emit(level, format, **kwargs)
        kwargs.update(log_logger=self, log_level=level, log_namespace=self.namespace,
                      log_source=self.source, log_format=format, log_time=time.time())
        if "log_trace" in kwargs:
            kwargs["log_trace"].append((self, self.observer))
        self.observer(kwargs)


def _text(event: dict) -> str:
    """``formatEvent``, with a fast path for plain ``{name}`` formats.

    Twisted's formatter also supports ``{f()}`` (calling a field) and swallows
    formatting errors; a format without ``()`` formats the same with ``str.format_map``,
    and anything unusual (or failing) falls back to Twisted's own formatter.
    """
    fmt = event.get("log_format")
    if fmt is not None and "()" not in fmt:
        try:
            return fmt.format_map(event)
        except Exception:
            pass
    return formatEvent(event)


def _format(event: dict, text: str | None = None) -> str:
    stamp = event.get("log_time")
    if stamp is None:
        stamp = time.time()
    if text is None:
        text = _text(event)
    failure = event.get("log_failure")
    if failure is not None:
        text += "\n" + failure.getTraceback()
    namespace = event.get("log_namespace", "-")
    level = event.get("log_level", LogLevel.info)
    prefix = "" if level is LogLevel.info else f"{level.name.upper()} "
    return f"{_stamps.stamp(stamp)} [{namespace}] {prefix}{text}\n"


_TWISTED_CHATTER = ("(UDP Port ", "(TCP Port ", "Starting protocol", "Stopping protocol",
                    "Starting factory", "Stopping factory")


def _chatter(event: dict, text: str | None = None) -> bool:
    """Twisted's per-port open/close lines: one per RTP port, useless at call rates."""
    if event.get("log_namespace") not in ("log_legacy",) and "Factory" not in str(
            event.get("log_namespace", "")):
        return False
    if text is None:
        text = formatEvent(event)
    return text.startswith(_TWISTED_CHATTER) or " starting on " in text


class LineBuffer:
    """Collects lines from any thread; writes them in one batch ``delay`` after the first.

    ``call_later`` schedules on the reactor thread, ``call_from_thread`` reaches it from
    another thread and ``in_io_thread`` tells which one we are on (all injected, so tests
    drive it with a ``Clock``).  ``flush()`` writes at once; it is safe from any thread.
    """

    def __init__(self, stream, call_later: Callable, call_from_thread: Callable,
                 in_io_thread: Callable[[], bool], delay: float = FLUSH_DELAY) -> None:
        self.stream = stream
        self.delay = delay
        self._call_later = call_later
        self._call_from_thread = call_from_thread
        self._in_io_thread = in_io_thread
        self._lines: list[str] = []
        self._pending = False
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)
            if self._pending:
                return
            self._pending = True
        if self._in_io_thread():
            self._call_later(self.delay, self.flush)
        else:
            self._call_from_thread(self._call_later, self.delay, self.flush)

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
            self._pending = False
            if not lines:
                return
            # Written under the lock so two threads flushing cannot reorder lines.
            try:
                self.stream.write("".join(lines))
                self.stream.flush()
            except (OSError, ValueError):
                pass  # stdout closed (a pipe whose reader went away): nowhere to log to


def start_logging(stream=None, level: LogLevel = LogLevel.info, reactor=None,
                  delay: float = FLUSH_DELAY) -> LineBuffer:
    stream = stream or sys.stdout
    if reactor is None:
        from twisted.internet import reactor  # type: ignore[no-redef]
    from twisted.python import threadable

    buffer = LineBuffer(stream, reactor.callLater, reactor.callFromThread,
                        threadable.isInIOThread, delay)
    reactor.addSystemEventTrigger("after", "shutdown", buffer.flush)
    atexit.register(buffer.flush)  # lines logged after the reactor stopped, or without one
    write = buffer.write
    wanted = _levels_from(level)

    def observer(event: dict) -> None:
        if not _passes(event, wanted):
            return
        text = _text(event)
        if _chatter(event, text):
            return
        write(_format(event, text))

    _route_stdlib_logging()
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    return buffer


def _levels_from(level: LogLevel) -> frozenset:
    """The levels ``LogLevelFilterPredicate(defaultLogLevel=level)`` lets through."""
    return frozenset(candidate for candidate in LogLevel.iterconstants()
                     if not candidate < level)


def _passes(event: dict, wanted: frozenset) -> bool:
    """Twisted's ``LogLevelFilterPredicate(defaultLogLevel=level)``, inline: an event
    needs a level of at least ``level`` and a namespace.  (A FilteringLogObserver around
    the observer cost a quarter of every line.)"""
    return event.get("log_level") in wanted and bool(event.get("log_namespace"))


def _route_stdlib_logging() -> None:
    """Modules (and libraries) that use the standard ``logging`` end up in the same log."""
    import logging

    from twisted.logger import Logger

    levels = {logging.DEBUG: LogLevel.debug, logging.INFO: LogLevel.info,
              logging.WARNING: LogLevel.warn, logging.ERROR: LogLevel.error,
              logging.CRITICAL: LogLevel.critical}

    class ToTwisted(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            level = levels.get(record.levelno, LogLevel.info)
            Logger(namespace=record.name).emit(level, "{msg}", msg=record.getMessage())

    root = logging.getLogger()
    root.handlers[:] = [ToTwisted()]
    root.setLevel(logging.INFO)
