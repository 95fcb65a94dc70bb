"""Keys typed during a call: digits become RFC 4733 events, ``q`` hangs up.

On a terminal the keys are read one by one as they are typed (cbreak mode: no Enter
needed, Ctrl-C still interrupts; the terminal is restored on stop). When stdin is not a
terminal (a pipe, a file, /dev/null) it is read as text on a daemon thread, so
``printf '12#\n' | ivr phone ...`` works and EOF simply ends the keyboard, not the call.

``parse_keys`` is the pure part: text in, key events out.
"""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from enum import Enum

__all__ = ["KeyKind", "KeyEvent", "parse_keys", "Keyboard", "DIGITS"]

DIGITS = "0123456789*#ABCD"
HANGUP = "qQ"


class KeyKind(Enum):
    DIGIT = "digit"
    HANGUP = "hangup"


@dataclass(frozen=True)
class KeyEvent:
    kind: KeyKind
    digit: str = ""


def parse_keys(text: str) -> list[KeyEvent]:
    """Digits 0-9 * # A-D (a-d too) and q; everything else (spaces, newlines) is ignored."""
    events = []
    for ch in text:
        if ch in HANGUP:
            events.append(KeyEvent(KeyKind.HANGUP))
        elif ch.upper() in DIGITS:
            events.append(KeyEvent(KeyKind.DIGIT, ch.upper()))
    return events


class _TtyReader:
    """IReadDescriptor for the reactor: bytes from a terminal in cbreak mode."""

    def __init__(self, fd: int, on_text) -> None:
        self.fd = fd
        self.on_text = on_text

    def fileno(self) -> int:
        return self.fd

    def doRead(self):  # noqa: N802 (Twisted interface)
        try:
            data = os.read(self.fd, 1024)
        except OSError:
            return None
        if data:
            self.on_text(data.decode("utf-8", "ignore"))
        return None

    def connectionLost(self, reason) -> None:  # noqa: N802
        pass

    def logPrefix(self) -> str:  # noqa: N802
        return "keyboard"


class Keyboard:
    """Calls ``on_key(KeyEvent)`` on the reactor thread for every key typed."""

    def __init__(self, reactor, on_key, stream=None) -> None:
        self.reactor = reactor
        self.on_key = on_key
        self.stream = stream if stream is not None else sys.stdin
        self.interactive = False
        self._saved = None
        self._reader = None
        self._stopped = False

    def start(self) -> None:
        try:
            fd = self.stream.fileno()
        except (AttributeError, ValueError, OSError):
            return  # no stdin at all
        if os.isatty(fd):
            import termios
            import tty
            try:
                self._saved = termios.tcgetattr(fd)
                tty.setcbreak(fd)
            except termios.error:
                self._saved = None
            self.interactive = True
            self._reader = _TtyReader(fd, self._text)
            self.reactor.addReader(self._reader)
            return
        thread = threading.Thread(target=self._read_lines, args=(fd,), name="ivr-keyboard", daemon=True)
        thread.start()

    def _read_lines(self, fd: int) -> None:
        while not self._stopped:
            try:
                data = os.read(fd, 1024)
            except OSError:
                return
            if not data:
                return
            self.reactor.callFromThread(self._text, data.decode("utf-8", "ignore"))

    def _text(self, text: str) -> None:
        if self._stopped:
            return
        for event in parse_keys(text):
            self.on_key(event)

    def stop(self) -> None:
        self._stopped = True
        if self._reader is not None:
            self.reactor.removeReader(self._reader)
            self._reader = None
        if self._saved is not None:
            import termios
            try:
                termios.tcsetattr(self._reader_fd(), termios.TCSADRAIN, self._saved)
            except (termios.error, OSError, ValueError):
                pass
            self._saved = None

    def _reader_fd(self) -> int:
        return self.stream.fileno()
