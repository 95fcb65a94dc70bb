"""What a dialplan verb may do to a call leg.

Verbs (``ivr/dialplan/verbs/``) talk to this protocol only; the real implementation is
:class:`ivr.call.call.Call` (SIP session + RTP session + media), and tests use an
in-memory fake with a ``task.Clock``.  Every method that takes time returns a Deferred.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from twisted.internet.defer import Deferred

from ..sip.address import PartyNumber


class CallEnded(Exception):
    """The call hung up (either side) while a verb was waiting on it."""


@dataclass(frozen=True)
class CallerId:
    number: str | None   # E.164 where it parses, else the raw user part; None if withheld
    name: str | None
    raw: str             # the From / P-Asserted-Identity value as received
    private: bool = False  # Privacy: id / header (RFC 3323/3325): do not reveal
    #: the From / P-Asserted-Identity as parsed once (ivr/sip/address.py); None when the
    #: caller is not a SIP party (an extension's own identity, an API-originated leg)
    address: PartyNumber | None = field(default=None, compare=False)


@dataclass(frozen=True)
class PlaybackResult:
    completed: bool           # played to the end
    digit: str | None = None  # the digit that barged in, if any


@dataclass(frozen=True)
class RecordingResult:
    path: str
    seconds: float
    finished_by: str  # "key", "max_length", "silence", "hangup"
    digit: str | None = None


class CallLeg(Protocol):
    call_id: str
    caller: CallerId
    called: str                # normalised called number (E.164) or the raw user part
    variables: dict[str, str]  # plan variables; verbs read and write them
    clock: object              # IReactorTime for timeouts
    answered: bool
    ended: bool

    def answer(self) -> Deferred: ...
    def ring(self, early_media: bool = False) -> None: ...
    def reject(self, status: int, reason: str | None = None) -> None: ...
    def hangup(self, reason: str = "normal") -> None: ...

    def play_audio(self, audio: np.ndarray, barge_in: bool = False) -> Deferred:
        """Play int16 8 kHz mono; fires PlaybackResult.  A buffered digit with barge_in
        stops playback at once."""
        ...

    def say(self, text: str, voice: str | None = None, language: str | None = None,
            rate: int | None = None, barge_in: bool = False) -> Deferred:
        """TTS (cached when pre-rendered) then play; fires PlaybackResult."""
        ...

    def play_file(self, name: str, barge_in: bool = False) -> Deferred:
        """A prompt file from prompts/; fires PlaybackResult."""
        ...

    def stop_playback(self) -> None: ...

    def next_digit(self, timeout: float) -> Deferred:
        """The next digit (typed-ahead digits are buffered), or None after ``timeout``."""
        ...

    def flush_digits(self) -> None: ...

    def record(self, path: str, max_seconds: float, finish_on_key: str = "#",
               beep: bool = True) -> Deferred:
        """Record the caller to a WAV file; fires RecordingResult."""
        ...

    def echo(self, seconds: float) -> Deferred:
        """Send the caller's audio (and digits) back for ``seconds``."""
        ...

    def log_event(self, event: str, **fields) -> None:
        """One line in the call's path log (verbs run, digits, branches)."""
        ...

    def when_ended(self) -> Deferred:
        """Fires (with the reason) when the call ends."""
        ...
