"""A call leg as the dialplan, call control and the API see it: one SIP INVITE session and
its RTP session, composed of three parts --

* the signalling leg (:mod:`ivr.call.signalling`): the session's listener; ring, answer,
  reject, hang up, transfer;
* the media leg (:mod:`ivr.call.media_leg`): the RTP session and its ports, the SDP
  offer/answer, playback, and (with :mod:`ivr.call.media_ops`) recording and echo;
* the digit buffer (:mod:`ivr.call.digits`): DTMF from RFC 4733, SIP INFO and in-band tones.

The Call keeps the leg's identity and state (answered, ended, the path log) and is the one
place a leg ends (:meth:`Call._end`), which releases every part and tells the owner.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from twisted.internet import defer
from ..logging import Logger  # twisted's, with a cheaper emit (per-call lines)

from .digits import DigitBuffer
from .interface import CallEnded, CallerId, PlaybackResult
from .media_leg import MediaLeg
from .signalling import SignallingLeg
from .telephony import leg_info
from . import media_ops

log = Logger(namespace="ivr.call")


@dataclass
class MediaContext:
    """Shared, per-server media services a call uses."""

    reactor: object
    media_clock: object
    ports: object
    advertise: str
    bind_host: str
    tts: object = None
    prompts: object = None
    inband: object = None
    media_timeout: float = 30.0
    recordings_dir: str = "."
    metrics: object = None
    data_dir: str | None = None  # --data: relative dialplan paths (recordings) live here
    media_encryption: str = "optional"  # SRTP policy of legs with no extension or trunk
    allow_insecure_srtp_keys: bool = False  # SDES keys over plain UDP/TCP (logged per use)
    dtls_certificate: object = None  # ivr.rtp.dtls.DtlsCertificate: WebRTC legs (None: 488)
    speech: object = None  # ivr.media.asr_worker.RecognizerPool (None: no speech input)


class Call:
    direction = "inbound"
    signalling_class = SignallingLeg

    def __init__(self, ctx: MediaContext, session, caller: CallerId,
                 called: str, variables: dict | None = None, *, transfers=None) -> None:
        self.ctx = ctx
        # Who answers this leg's REFERs (ivr.call.control.CallControl.blind_transfer);
        # None: REFER gets 403.
        self.transfers = transfers
        self._stops = 0  # stop_playback calls so far (a rendering prompt checks it)
        self.clock = ctx.reactor
        self.call_id = session.call_id if session is not None else ""
        self.leg_id: str | None = None  # set by the CallTable when the Call-ID is taken
        self._table = None  # the CallTable that owns this leg (ivr/call/table.py)
        self.caller = caller
        self.called = called
        self.variables: dict[str, str] = dict(variables or {})
        self.answered = False
        self.ended = False
        self.end_reason: str | None = None
        self.hangup_side: str | None = None
        self.started_at = time.time()
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.path: list[str] = []
        self.gathered: list[str] = []  # digits the plan gathered, for the CDR
        self.speech_heard: list[dict] = []  # what speech input heard (text, confidence, times)
        self.on_end: list[Callable[["Call"], None]] = []
        self.bridge = None  # the Bridge this leg is in, if any
        self._ended_waiters: list[defer.Deferred] = []
        self.digits = DigitBuffer(self.clock, self._saw_digit)
        self.media = MediaLeg(ctx, self.digits.push, self._media_timeout)
        self.signalling = self.signalling_class(self, session)

    @property
    def id(self) -> str:
        """The leg's id in the API and the CDRs (``ivr.call.telephony.Leg``): its SIP
        Call-ID, with a suffix when another live leg has the same one (see CallTable)."""
        return self.leg_id or self.call_id

    # -- the parts, as the leg's collaborators (bridge, media_ops, records) see them ---
    @property
    def session(self):
        return self.signalling.session

    @session.setter
    def session(self, session) -> None:
        self.signalling.session = session

    @property
    def rtp(self):
        return self.media.rtp

    @rtp.setter
    def rtp(self, rtp) -> None:
        self.media.rtp = rtp

    @property
    def negotiated(self):
        return self.media.negotiated

    def want_inband(self, wanted: bool) -> None:
        """Whether anything needs this leg's in-band digits (a bridge: MediaLeg.want_inband)."""
        self.media.want_inband(wanted)

    @property
    def rtp_stats(self) -> dict:
        return self.media.stats

    @property
    def digits_by_mode(self) -> dict[str, int]:
        return self.digits.by_mode

    def _ensure_rtp(self):
        return self.media.ensure_rtp()

    # -- path log ----------------------------------------------------------------------
    def log_event(self, event: str, **fields) -> None:
        detail = " ".join(f"{k}={v!r}" for k, v in fields.items())
        # interned: most lines ("step flow='main' verb='say' at=...") are the same in every
        # call, so thousands of calls share one copy (an interned string is still freed
        # with its last reference)
        self.path.append(sys.intern(f"{event} {detail}".strip()))
        if event in ("gathered", "menu_choice") and fields.get("digits"):
            self.gathered.append(str(fields["digits"]))
        log.info("call {cid} {event} {detail}", cid=self.call_id, event=event, detail=detail)

    # -- call control (the signalling leg) ---------------------------------------------
    def answer(self) -> defer.Deferred:
        return self.signalling.answer()

    def ring(self, early_media: bool = False) -> None:
        self.signalling.ring(early_media)

    def reject(self, status: int, reason: str | None = None, *,
               end_reason: str | None = None) -> None:
        self.signalling.reject(status, reason, end_reason=end_reason)

    def hangup(self, reason: str = "normal") -> None:
        self.signalling.hangup(reason)

    def refer(self, target: str, timeout: float = 30.0) -> defer.Deferred:
        """Ask the caller's phone to call ``target`` (blind transfer by REFER)."""
        return self.signalling.refer(target, timeout)

    def when_ended(self) -> defer.Deferred:
        if self.ended:
            return defer.succeed(self.end_reason)
        d = defer.Deferred()
        self._ended_waiters.append(d)
        return d

    def info(self):
        return leg_info(self)

    # -- playback (the media leg) ------------------------------------------------------
    def play_audio(self, audio: np.ndarray, barge_in: bool = False) -> defer.Deferred:
        if self.ended:
            return defer.fail(CallEnded(self.end_reason))
        return self.media.play(audio, self.digits if barge_in else None)

    def say(self, text: str, voice: str | None = None, language: str | None = None,
            rate: int | None = None, barge_in: bool = False) -> defer.Deferred:
        tts = self.ctx.tts
        audio = tts.cached(text, voice, language, rate)
        if self.ctx.metrics is not None:
            self.ctx.metrics.prompt_lookup(audio is not None)
        if audio is not None:
            return self.play_audio(audio, barge_in)
        d = tts.render_or_fallback(text, voice, language, rate)
        d.addCallback(self._play_rendered, barge_in, self._stops)
        return d

    def _play_rendered(self, audio, barge_in: bool, stops: int) -> defer.Deferred | PlaybackResult:
        """Play a prompt whose audio was not ready when it was asked for -- unless playback
        was stopped while it rendered (an agent answered the queue, a bridge took the leg's
        audio): then it is not played at all, as a stopped prompt."""
        if stops != self._stops:
            return PlaybackResult(False)
        return self.play_audio(audio, barge_in)

    def play_file(self, name: str, barge_in: bool = False) -> defer.Deferred:
        audio = self.ctx.prompts.cached(name)
        if audio is not None:
            return self.play_audio(audio, barge_in)
        d = self.ctx.prompts.load(name)
        d.addCallback(self._play_rendered, barge_in, self._stops)
        return d

    def stop_playback(self) -> None:
        self._stops += 1  # a prompt still rendering is not played when it is ready
        self.media.stop_playback()

    # -- recording, echo, digits out (see media_ops) -----------------------------------
    def record(self, path: str, max_seconds: float, finish_on_key: str = "#",
               beep: bool = True) -> defer.Deferred:
        return media_ops.record(self, path, max_seconds, finish_on_key, beep)

    def echo(self, seconds: float) -> defer.Deferred:
        return media_ops.echo(self, seconds)

    def start_recording(self, path: str, max_seconds: float = 4 * 3600) -> None:
        """Record what this leg hears from its far end until the call ends."""
        media_ops.record_until_end(self, path, max_seconds)

    def send_digits(self, digits: str) -> defer.Deferred:
        """RFC 4733 digits to the far end (``,`` or ``w`` waits half a second)."""
        return media_ops.send_digits(self, digits)

    # -- speech in (ivr/call/speech.py) ------------------------------------------------
    def listen(self, hints, language: str = "en-us", speech_timeout: float = 0.8):
        """A SpeechListener for ``hints`` on the caller's audio; None when the server has
        no recogniser or the leg has ended."""
        if self.ctx.speech is None or self.ended:
            return None
        from .speech import SpeechListener
        return SpeechListener(self, self.ctx.speech, hints, language, speech_timeout)

    # -- digits in (the digit buffer) --------------------------------------------------
    def _saw_digit(self, digit: str, mode: str) -> None:
        if self.ctx.metrics is not None:
            self.ctx.metrics.dtmf_digit(mode)
        self.log_event("dtmf", digit=digit, mode=mode)

    def add_digit_listener(self, cb: Callable[[str], None]) -> None:
        self.digits.add_listener(cb)

    def remove_digit_listener(self, cb) -> None:
        self.digits.remove_listener(cb)

    def next_digit(self, timeout: float) -> defer.Deferred:
        return self.digits.next_digit(timeout)

    def flush_digits(self) -> None:
        self.digits.flush()

    # -- ending ------------------------------------------------------------------------
    def _media_timeout(self) -> None:
        self.log_event("media_timeout", seconds=self.ctx.media_timeout)
        self.hangup("media-timeout")

    def _end(self, reason: str, side: str = "local") -> None:
        """The one way a leg ends: release its media and digits, fail what waits on it,
        then tell ``when_ended`` waiters and the ``on_end`` hooks (its owner's record)."""
        if self.ended:
            return
        self.ended = True
        self.end_reason = reason
        self.hangup_side = side
        self.ended_at = time.time()
        if reason != "normal" or side == "remote":
            self.path.append(f"end reason={reason} side={side}")
        log.info("call {cid} ended: {reason} ({side})", cid=self.call_id, reason=reason, side=side)
        try:
            self.media.release(reason)
        except Exception:  # the record and the owner's bookkeeping must still happen
            log.failure("call {cid}: releasing media failed", cid=self.call_id)
        self.digits.close(reason)
        self.digits._observe = None  # our bound method: no cycle left once ended
        self.signalling.ended(reason)
        waiters, self._ended_waiters = self._ended_waiters, []
        for d in waiters:
            d.callback(reason)
        for hook in self.on_end:
            try:
                hook(self)
            except Exception:
                log.failure("call end hook failed")
        self.on_end = []  # told once: the owners' bound methods are not kept in a cycle
