"""A call leg: one SIP INVITE session plus its RTP session, as dialplan verbs see it.

DTMF arrives three ways and is buffered once: RFC 4733 from the RTP session, SIP INFO
(application/dtmf-relay, application/dtmf) and in-band tones.  In-band detection runs
only when telephone-event was not negotiated, so a phone that sends both RFC 4733 and
tones never produces a digit twice.
"""
from __future__ import annotations

import os
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np
from twisted.internet import defer
from twisted.logger import Logger

from ..media.player import PcmSource
from ..rtp.ports import PortsExhausted
from ..rtp.session import PlaybackStopped, RtpSession, SessionClosed
from ..sdp import SdpError, make_answer, make_offer, make_reanswer, negotiate_answer, parse_sdp, serialize_sdp
from ..sip.session import InviteSession, OfferRejected
from .interface import CallEnded, CallerId, PlaybackResult
from .telephony import leg_info
from . import media_ops

log = Logger(namespace="ivr.call")

DIGITS = set("0123456789*#ABCD")
#: The final response when we hang up a call we never answered: 500 only for our own
#: failures (a plan error, a plan that loops), never for what the caller did.
UNANSWERED_HANGUP_STATUS = {"error": 500, "loop_guard": 500, "shutdown": 503}
PORTS_RETRY_AFTER = 5  # seconds a caller is asked to wait when every RTP port is in use


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
    control: object = None  # ivr.call.control.CallControl (transfers)
    data_dir: str | None = None  # --data: relative dialplan paths (recordings) live here


class Call:
    def __init__(self, ctx: MediaContext, session: InviteSession, caller: CallerId,
                 called: str, variables: dict | None = None) -> None:
        self.ctx = ctx
        self.clock = ctx.reactor
        self.session = session
        if session is not None:
            session.listener = self
        self.call_id = session.call_id if session is not None else ""
        self.leg_id: str | None = None  # set by the CallTable when the Call-ID is taken
        self._table = None  # the CallTable that owns this leg (ivr/call/table.py)
        self.caller = caller
        self.called = called
        self.variables: dict[str, str] = dict(variables or {})
        self.answered = False
        self.ended = False
        self.end_reason: str | None = None
        self.started_at = time.time()
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.rtp: RtpSession | None = None
        self.negotiated = None
        self._local_sdp = None
        self._sdp_version = 1
        self._session_id = secrets.randbelow(2**31)
        self._digits: deque[str] = deque()
        self._digit_waiter: defer.Deferred | None = None
        self._digit_timer = None
        self._barge_in: Callable[[str], None] | None = None
        self._answer_d: defer.Deferred | None = None
        self._ended_waiters: list[defer.Deferred] = []
        self._inband = None
        self.digits_by_mode = {"rfc4733": 0, "info": 0, "inband": 0}
        self.path: list[str] = []
        self.gathered: list[str] = []  # digits the plan gathered, for the CDR
        self.on_end: list[Callable[["Call"], None]] = []
        self._digit_listeners: list[Callable[[str], None]] = []
        self.bridge = None  # the Bridge this leg is in, if any
        self._refer_waiter: defer.Deferred | None = None

    @property
    def id(self) -> str:
        """The leg's id in the API and the CDRs (``ivr.call.telephony.Leg``): its SIP
        Call-ID, with a suffix when another live leg has the same one (see CallTable)."""
        return self.leg_id or self.call_id

    # -- path log ----------------------------------------------------------------------
    def log_event(self, event: str, **fields) -> None:
        detail = " ".join(f"{k}={v!r}" for k, v in fields.items())
        self.path.append(f"{event} {detail}".strip())
        if event in ("gathered", "menu_choice") and fields.get("digits"):
            self.gathered.append(str(fields["digits"]))
        log.info("call {cid} {event} {detail}", cid=self.call_id, event=event, detail=detail)

    # -- media setup -------------------------------------------------------------------
    def _ensure_rtp(self) -> RtpSession:
        if self.rtp is None:
            self.rtp = RtpSession(self.ctx.reactor, self.ctx.media_clock, host=self.ctx.bind_host,
                                  ports=self.ctx.ports, media_timeout=self.ctx.media_timeout)
            self.rtp.on_dtmf(lambda digit, source="rfc4733": self._digit(digit, "rfc4733"))
            self.rtp.on_timeout(self._media_timeout)
        return self.rtp

    def _apply(self, negotiated) -> None:
        self.negotiated = negotiated
        rtp = self._ensure_rtp()
        rtp.set_remote(negotiated.remote_ip, negotiated.remote_port, negotiated.payload_type,
                       negotiated.codec, negotiated.telephone_event_pt,
                       ptime=negotiated.ptime, rtcp_port=negotiated.rtcp_port,
                       rtcp_ip=negotiated.rtcp_ip, rtcp_mux=negotiated.rtcp_mux)
        rtp.set_direction(negotiated.direction.value)
        if negotiated.telephone_event_pt is None and self.ctx.inband is not None:
            if self._inband is None:
                self._inband = self.ctx.inband.open(lambda d: self._digit(d, "inband"))
                rtp.add_audio_listener(self._inband)
        elif self._inband is not None:
            rtp.remove_audio_listener(self._inband)
            self._inband.close()
            self._inband = None

    def _answer_sdp(self) -> bytes | None:
        """Our SDP for a 18x/200: an answer to the INVITE's offer, or a (late) offer."""
        if self._local_sdp is not None:
            return serialize_sdp(self._local_sdp)
        offer = self.session.remote_sdp
        if offer:
            offer = parse_sdp(offer)  # a malformed offer is a 400 before any port is taken
            try:
                rtp = self._ensure_rtp()
            except PortsExhausted:
                # An offer with no codec of ours is still a 488, not a 503.
                make_answer(offer, self.ctx.advertise, 9, session_id=self._session_id,
                            version=self._sdp_version)
                raise
            answer, negotiated = make_answer(offer, self.ctx.advertise, rtp.local_port,
                                             session_id=self._session_id, version=self._sdp_version)
            self._local_sdp = answer
            self._apply(negotiated)
        else:
            self._local_sdp = make_offer(self.ctx.advertise, self._ensure_rtp().local_port,
                                         session_id=self._session_id, version=self._sdp_version)
        return serialize_sdp(self._local_sdp)

    def _sdp_or_reject(self) -> bytes | None:
        """Our SDP for the INVITE's answer, or None once the INVITE got 400 (its offer is
        malformed) or 488 (NoCommonCodec, nothing we can send to) with a Warning saying
        why.  The SDP layer checks everything it hands on, so anything else raised here
        is a bug of ours (the runner logs it and answers 500)."""
        try:
            return self._answer_sdp()
        except SdpError as exc:
            why = f"bad SDP: {exc}" if exc.status == 400 else str(exc)
            self.log_event("reject", status=exc.status, why=why)
            self.session.reject(exc.status, "Bad SDP" if exc.status == 400 else None,
                                extra=[self.session.warning(why, exc.warn_code)])
        except PortsExhausted as exc:  # every RTP port is in use: try again later
            self.log_event("reject", status=503, why=str(exc))
            log.warn("call {cid}: no free RTP port, answering 503", cid=self.call_id)
            self.session.reject(503, "No Free Media Ports",
                                extra=[("Retry-After", str(PORTS_RETRY_AFTER))])
            self._end("no-media-ports")
            return None
        self._end("rejected")
        return None

    # -- CallLeg: call control -----------------------------------------------------------
    def answer(self) -> defer.Deferred:
        if self.ended:
            return defer.fail(CallEnded(self.end_reason))
        if self.answered:
            return defer.succeed(None)
        sdp = self._sdp_or_reject()
        if sdp is None:
            return defer.fail(CallEnded("rejected"))
        self.session.accept(sdp)
        self.answered = True
        self.answered_at = time.time()
        self._answer_d = defer.Deferred()
        return self._answer_d

    def ring(self, early_media: bool = False) -> None:
        if self.ended or self.answered:
            return
        if early_media:
            sdp = self._sdp_or_reject()
            if sdp is not None:
                # Sent reliably (RFC 3262: RSeq, re-sent until PRACK) when the caller
                # does 100rel, so the announcement it carries is known to have arrived.
                self.session.ring(183, sdp)
                self.log_event("early_media",
                               reliable=getattr(self.session, "reliable_provisionals", False))
        else:
            self.session.ring(180)
            self.log_event("ring")

    def reject(self, status: int, reason: str | None = None, *,
               end_reason: str | None = None) -> None:
        if self.ended:
            return
        self.log_event("reject", status=status)
        try:
            self.session.reject(status, reason)
        finally:
            self._end(end_reason or f"rejected-{status}")

    def hangup(self, reason: str = "normal") -> None:
        if self.ended:
            return
        self.log_event("hangup", reason=reason)
        if self.answered:
            self._end(reason, side="local")  # first, so the session's own callback is a no-op
            self.session.bye(reason)
            return
        try:  # the final response first, so the record has its status
            self.session.reject(UNANSWERED_HANGUP_STATUS.get(reason, 480))
        finally:
            self._end(reason, side="local")

    def when_ended(self) -> defer.Deferred:
        if self.ended:
            return defer.succeed(self.end_reason)
        d = defer.Deferred()
        self._ended_waiters.append(d)
        return d

    # -- playback ----------------------------------------------------------------------
    def play_audio(self, audio: np.ndarray, barge_in: bool = False) -> defer.Deferred:
        if self.ended:
            return defer.fail(CallEnded(self.end_reason))
        if barge_in and self._digits:
            return defer.succeed(PlaybackResult(False, self._digits[0]))
        rtp = self._ensure_rtp()
        result = defer.Deferred()
        interrupted: list[str] = []

        def on_digit(digit: str) -> None:
            interrupted.append(digit)
            rtp.stop_playback("barge-in")

        if barge_in:
            self._barge_in = on_digit

        def done(_):
            self._barge_in = None
            result.callback(PlaybackResult(True))

        def stopped(failure):
            self._barge_in = None
            if self.ended:
                result.errback(CallEnded(self.end_reason))
            elif failure.check(PlaybackStopped) and interrupted:
                result.callback(PlaybackResult(False, interrupted[0]))
            elif failure.check(PlaybackStopped, SessionClosed):
                result.callback(PlaybackResult(False))
            else:
                result.errback(failure)

        rtp.play(PcmSource(audio)).addCallbacks(done, stopped)
        return result

    def say(self, text: str, voice: str | None = None, language: str | None = None,
            rate: int | None = None, barge_in: bool = False) -> defer.Deferred:
        tts = self.ctx.tts
        audio = tts.cached(text, voice, language, rate)
        if self.ctx.metrics is not None:
            self.ctx.metrics.prompt_lookup(audio is not None)
        if audio is not None:
            return self.play_audio(audio, barge_in)
        d = tts.render_or_fallback(text, voice, language, rate)
        d.addCallback(lambda audio: self.play_audio(audio, barge_in))
        return d

    def play_file(self, name: str, barge_in: bool = False) -> defer.Deferred:
        audio = self.ctx.prompts.cached(name)
        if audio is not None:
            return self.play_audio(audio, barge_in)
        d = self.ctx.prompts.load(name)
        d.addCallback(lambda audio: self.play_audio(audio, barge_in))
        return d

    def stop_playback(self) -> None:
        if self.rtp is not None:
            self.rtp.stop_playback("stopped")

    # -- digits ------------------------------------------------------------------------
    def _digit(self, digit: str, mode: str) -> None:
        if self.ended or digit not in DIGITS:
            return
        self.digits_by_mode[mode] += 1
        if self.ctx.metrics is not None:
            self.ctx.metrics.dtmf_digit(mode)
        self.log_event("dtmf", digit=digit, mode=mode)
        for listener in list(self._digit_listeners):
            listener(digit)
        if self._digit_waiter is not None:
            waiter, self._digit_waiter = self._digit_waiter, None
            if self._digit_timer is not None and self._digit_timer.active():
                self._digit_timer.cancel()
            waiter.callback(digit)
        else:
            self._digits.append(digit)
        if self._barge_in is not None:
            self._barge_in(digit)

    def add_digit_listener(self, cb: Callable[[str], None]) -> None:
        self._digit_listeners.append(cb)

    def remove_digit_listener(self, cb) -> None:
        if cb in self._digit_listeners:
            self._digit_listeners.remove(cb)

    def next_digit(self, timeout: float) -> defer.Deferred:
        if self._digits:
            return defer.succeed(self._digits.popleft())
        if self.ended:
            return defer.fail(CallEnded(self.end_reason))
        d = defer.Deferred()
        self._digit_waiter = d

        def expire():
            if self._digit_waiter is d:
                self._digit_waiter = None
                d.callback(None)

        self._digit_timer = self.clock.callLater(timeout, expire)
        return d

    def flush_digits(self) -> None:
        self._digits.clear()

    def send_digits(self, digits: str) -> defer.Deferred:
        """RFC 4733 digits to the far end (``,`` or ``w`` waits half a second)."""
        return media_ops.send_digits(self, digits)

    def start_recording(self, path: str, max_seconds: float = 4 * 3600) -> None:
        """Record what this leg hears from its far end until the call ends."""
        media_ops.record_until_end(self, path, max_seconds)

    def info(self):
        return leg_info(self)

    # -- recording and echo (see media_ops) --------------------------------------------
    def record(self, path: str, max_seconds: float, finish_on_key: str = "#",
               beep: bool = True) -> defer.Deferred:
        return media_ops.record(self, path, max_seconds, finish_on_key, beep)

    def echo(self, seconds: float) -> defer.Deferred:
        return media_ops.echo(self, seconds)

    # -- InviteSession listener ----------------------------------------------------------
    def on_confirmed(self, session, ack) -> None:
        if ack.body and self._local_sdp is not None and self.negotiated is None:
            try:
                self._apply(negotiate_answer(self._local_sdp, parse_sdp(ack.body)))
            except SdpError as exc:
                self.log_event("bad_ack_sdp", why=str(exc))
                self.hangup("bad-sdp")
                return
        if self.negotiated is None and self._local_sdp is not None:
            # Our 2xx carried the offer (the INVITE had none) and the ACK must carry the
            # answer (RFC 3261 13.2.1, RFC 3264): without one there is no media to run the
            # plan on, and a session that never got an address would wait forever.
            self.log_event("bad_ack_sdp", why="the ACK has no answer to our offer")
            self.hangup("no-sdp-answer")
            return
        d, self._answer_d = self._answer_d, None
        if d is not None:
            d.callback(None)

    def on_offer(self, session, sdp: bytes | None) -> bytes:
        """A re-INVITE or UPDATE: hold, unhold, or a new address."""
        rtp = self._ensure_rtp()
        if sdp is None:  # re-INVITE without SDP: we offer, the answer comes in the ACK
            self._local_sdp = make_offer(self.ctx.advertise, rtp.local_port,
                                         session_id=self._session_id,
                                         version=self._local_sdp.origin.sess_version + 1
                                         if self._local_sdp else 1)
            self.negotiated = None
            return serialize_sdp(self._local_sdp)
        try:
            offer = parse_sdp(sdp)
            if self._local_sdp is not None:
                answer, negotiated = make_reanswer(offer, self._local_sdp, self.ctx.advertise,
                                                   rtp.local_port)
            else:
                answer, negotiated = make_answer(offer, self.ctx.advertise, rtp.local_port,
                                                 session_id=self._session_id, version=1)
        except SdpError as exc:  # the session answers 400 or 488 with a Warning
            why = f"bad SDP: {exc}" if exc.status == 400 else str(exc)
            self.log_event("offer_rejected", status=exc.status, why=why)
            raise OfferRejected(why, exc.status, exc.warn_code) from None
        self._local_sdp = answer
        self._apply(negotiated)
        self.log_event("hold" if negotiated.on_hold else "media_update",
                       remote=f"{negotiated.remote_ip}:{negotiated.remote_port}")
        return serialize_sdp(answer)

    def on_answer(self, session, sdp: bytes) -> None:
        if self._local_sdp is None:
            return
        try:
            self._apply(negotiate_answer(self._local_sdp, parse_sdp(sdp)))
        except SdpError as exc:
            self.log_event("bad_answer", why=str(exc))

    def on_info(self, session, request) -> int:
        digit = media_ops.digit_from_info(request.content_type, request.body)
        if digit is None:
            return 415 if request.content_type not in (None, "application/dtmf-relay",
                                                       "application/dtmf") else 200
        self._digit(digit, "info")
        return 200

    def on_refer(self, session, request) -> int:
        """A phone transfers its call, bridged or in the IVR (blind transfer, RFC 3515):
        CallControl.blind_transfer decides and answers (202, or 403/404/503)."""
        target = media_ops.refer_target(request, self.ctx.advertise)
        if target is None:
            return 400
        if self.ctx.control is None:
            self.log_event("refer_refused", to=target, why="no call control")
            return 403
        return self.ctx.control.blind_transfer(self, target)

    def on_notify(self, session, request) -> int:
        """Progress of a REFER we sent (``transfer`` verb): a message/sipfrag status."""
        code = media_ops.sipfrag_status(request.body)
        final = "terminated" in (request.headers.get("Subscription-State") or "")
        self.log_event("refer_progress", status=code)
        if self._refer_waiter is not None and code is not None and (final or code >= 200):
            waiter, self._refer_waiter = self._refer_waiter, None
            waiter.callback(code)
        return 200

    def refer(self, target: str, timeout: float = 30.0) -> defer.Deferred:
        """Ask the caller's phone to call ``target`` (blind transfer by REFER).  Fires with
        the final status the phone reports (200 = transferred), or the REFER's rejection."""
        if self.ended or not self.answered:
            return defer.fail(CallEnded(self.end_reason))
        d = self._refer_waiter = defer.Deferred()

        def on_response(response):
            if response.status >= 300 and self._refer_waiter is d:
                self._refer_waiter = None
                d.callback(response.status)

        def expire():
            if self._refer_waiter is d:
                self._refer_waiter = None
                d.callback(408)

        self.session.refer(target, on_response)
        timer = self.clock.callLater(timeout, expire)
        d.addBoth(lambda r: (timer.cancel() if timer.active() else None, r)[1])
        return d

    def on_terminated(self, session, reason: str) -> None:
        # A session timer that ran out (or whose refresh failed) is our own BYE.
        self._end(reason, side="local" if reason.startswith("session-timer") else "remote")

    # UAC-side callbacks are not used for inbound legs
    def on_progress(self, session, response) -> None: ...
    def on_answered(self, session, response): return None
    def on_failed(self, session, status, reason) -> None:
        self._end(f"failed-{status}", side="remote")

    # -- ending ------------------------------------------------------------------------
    def _media_timeout(self) -> None:
        self.log_event("media_timeout", seconds=self.ctx.media_timeout)
        self.hangup("media-timeout")

    def _release_media(self) -> None:
        """Stop the digit timer and in-band detector, close the RTP session (its ports)."""
        if self._digit_timer is not None and self._digit_timer.active():
            self._digit_timer.cancel()
        if self._inband is not None:
            inband, self._inband = self._inband, None
            inband.close()
        self.rtp_stats = self.rtp.stats() if self.rtp is not None else {}
        if self.rtp is not None:
            self.rtp.close()

    def _end(self, reason: str, side: str = "local") -> None:
        if self.ended:
            return
        self.ended = True
        self.end_reason = reason
        self.hangup_side = side
        self.ended_at = time.time()
        self.rtp_stats = {}
        if reason != "normal" or side == "remote":
            self.path.append(f"end reason={reason} side={side}")
        log.info("call {cid} ended: {reason} ({side})", cid=self.call_id, reason=reason, side=side)
        try:
            self._release_media()
        except Exception:  # the record and the owner's bookkeeping must still happen
            log.failure("call {cid}: releasing media failed", cid=self.call_id)
        for d in [self._digit_waiter, self._answer_d]:
            if d is not None and not d.called:
                d.errback(CallEnded(reason))
        self._digit_waiter = self._answer_d = None
        waiters, self._ended_waiters = self._ended_waiters, []
        for d in waiters:
            d.callback(reason)
        for hook in self.on_end:
            try:
                hook(self)
            except Exception:
                log.failure("call end hook failed")
