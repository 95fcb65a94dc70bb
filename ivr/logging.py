"""One line per event on stdout: ``2026-11-25T14:13:00.123Z [ivr.sip.ua] message``."""
from __future__ import annotations

import sys
import time

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    globalLogBeginner,
)


def _format(event: dict) -> str:
    stamp = event.get("log_time", time.time())
    text = formatEvent(event)
    failure = event.get("log_failure")
    if failure is not None:
        text += "\n" + failure.getTraceback()
    namespace = event.get("log_namespace", "-")
    level = event.get("log_level", LogLevel.info).name.upper()
    millis = int((stamp % 1) * 1000)
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{millis:03d}Z"
    prefix = "" if level == "INFO" else f"{level} "
    return f"{when} [{namespace}] {prefix}{text}\n"


_TWISTED_CHATTER = ("(UDP Port ", "(TCP Port ", "Starting protocol", "Stopping protocol",
                    "Starting factory", "Stopping factory")


def _chatter(event: dict) -> bool:
    """Twisted's per-port open/close lines: one per RTP port, useless at call rates."""
    if event.get("log_namespace") not in ("log_legacy",) and "Factory" not in str(
            event.get("log_namespace", "")):
        return False
    text = formatEvent(event)
    return text.startswith(_TWISTED_CHATTER) or " starting on " in text


def start_logging(stream=None, level: LogLevel = LogLevel.info) -> None:
    stream = stream or sys.stdout

    def observer(event: dict) -> None:
        if _chatter(event):
            return
        stream.write(_format(event))
        stream.flush()

    _route_stdlib_logging()
    predicate = LogLevelFilterPredicate(defaultLogLevel=level)
    globalLogBeginner.beginLoggingTo([FilteringLogObserver(observer, [predicate])],
                                     redirectStandardIO=False)


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
