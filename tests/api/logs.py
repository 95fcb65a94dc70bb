"""Collect what a request logged as an error, from both logging systems in play.

The API logs through the stdlib ``logging``; klein and twisted.web log failures through
``twisted.logger`` (a ``log.err``/``log.failure`` is a critical event with a traceback).
"""
from __future__ import annotations

import logging

from twisted.logger import LogLevel, formatEvent, globalLogPublisher


class ErrorLog(logging.Handler):
    """Every stdlib record at ERROR or above and every twisted error/failure event."""

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.records: list[str] = []

    def emit(self, record):
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.records.append(text)

    def twisted_event(self, event):
        level = event.get("log_level")
        if event.get("log_failure") is not None or event.get("isError") or (
                level is not None and level >= LogLevel.error):
            failure = event.get("log_failure")
            text = formatEvent(event)
            if failure is not None:
                text += "\n" + failure.getTraceback()
            self.records.append(text)

    def __enter__(self):
        logging.getLogger().addHandler(self)
        globalLogPublisher.addObserver(self.twisted_event)
        return self

    def __exit__(self, *exc):
        logging.getLogger().removeHandler(self)
        globalLogPublisher.removeObserver(self.twisted_event)

    def clear(self):
        self.records.clear()
