"""The SIP side of one call leg: the InviteSession's listener, and the responses and
requests the leg sends through its session (ring, answer, reject, BYE, REFER).

The signalling leg belongs to a :class:`ivr.call.call.Call`; it keeps the call's state
(answered, ended) there, takes its SDP from the call's media leg, hands INFO digits to the
call's digit buffer and reports the session's end to the call, the one owner of its end.
"""
from __future__ import annotations

import time
import weakref

from twisted.internet import defer
from twisted.logger import Logger

from ..rtp.ports import PortsExhausted
from ..sdp import SdpError
from ..sip.session import OfferRejected
from .encryption import inbound_policy, sip_transport
from .interface import CallEnded
from . import media_ops

log = Logger(namespace="ivr.call")

#: The final response when we hang up a call we never answered: 500 only for our own
#: failures (a plan error, a plan that loops), never for what the caller did.
UNANSWERED_HANGUP_STATUS = {"error": 500, "loop_guard": 500, "shutdown": 503}
PORTS_RETRY_AFTER = 5  # seconds a caller is asked to wait when every RTP port is in use
DTMF_INFO_TYPES = (None, "application/dtmf-relay", "application/dtmf")


def _why(exc: SdpError) -> str:
    return f"bad SDP: {exc}" if exc.status == 400 else str(exc)


class SignallingLeg:
    def __init__(self, call, session) -> None:
        # The call owns this leg and holds it; the leg refers back to the call weakly, so
        # an ended call is freed by reference counting, not by the cyclic collector (the
        # session drops us, its listener, once it has told us it ended).
        self._call = weakref.ref(call)
        self.session = session  # ivr.sip.session.InviteSession (None until an outbound dial)
        media = call.media
        media.on_event = call.log_event
        if session is not None:
            session.listener = self
            # the INVITE's hop and who sent it decide what media encryption the leg takes
            media.sip_transport = sip_transport(getattr(session, "source", None))
            media.encryption = inbound_policy(session, media.encryption)
        self._answer_d: defer.Deferred | None = None
        self._refer_waiter: defer.Deferred | None = None

    @property
    def call(self):
        return self._call()

    # -- what the leg sends ------------------------------------------------------------
    def answer(self) -> defer.Deferred:
        """200 OK with our SDP; fires once the ACK confirms it."""
        call = self.call
        if call.ended:
            return defer.fail(CallEnded(call.end_reason))
        if call.answered:
            return defer.succeed(None)
        sdp = self._sdp_or_reject()
        if sdp is None:
            return defer.fail(CallEnded("rejected"))
        self.session.accept(sdp)
        call.answered = True
        call.answered_at = time.time()
        self._answer_d = defer.Deferred()
        return self._answer_d

    def ring(self, early_media: bool = False) -> None:
        call = self.call
        if call.ended or call.answered:
            return
        if not early_media:
            self.session.ring(180)
            call.log_event("ring")
            return
        sdp = self._sdp_or_reject()
        if sdp is not None:
            # Sent reliably (RFC 3262: RSeq, re-sent until PRACK) when the caller
            # does 100rel, so the announcement it carries is known to have arrived.
            self.session.ring(183, sdp)
            call.log_event("early_media",
                           reliable=getattr(self.session, "reliable_provisionals", False))

    def reject(self, status: int, reason: str | None = None, *,
               end_reason: str | None = None) -> None:
        call = self.call
        if call.ended:
            return
        call.log_event("reject", status=status)
        try:
            self.session.reject(status, reason)
        finally:
            call._end(end_reason or f"rejected-{status}")

    def hangup(self, reason: str = "normal") -> None:
        """BYE once answered; before that the INVITE's final response (480, or 500/503
        for our own failures)."""
        call = self.call
        if call.ended:
            return
        call.log_event("hangup", reason=reason)
        if call.answered:
            call._end(reason, side="local")  # first, so the session's own callback is a no-op
            self.session.bye(reason)
            return
        try:  # the final response first, so the record has its status
            self.session.reject(UNANSWERED_HANGUP_STATUS.get(reason, 480))
        finally:
            call._end(reason, side="local")

    def refer(self, target: str, timeout: float = 30.0) -> defer.Deferred:
        """Ask the caller's phone to call ``target`` (blind transfer by REFER).  Fires with
        the final status the phone reports (200 = transferred), or the REFER's rejection,
        or 408 when neither came within ``timeout`` seconds."""
        call = self.call
        if call.ended or not call.answered:
            return defer.fail(CallEnded(call.end_reason))
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
        timer = call.clock.callLater(timeout, expire)
        d.addBoth(lambda r: (timer.cancel() if timer.active() else None, r)[1])
        return d

    def _sdp_or_reject(self) -> bytes | None:
        """Our SDP for the INVITE's answer, or None once the INVITE got 400 (its offer is
        malformed) or 488 (no common codec) with a Warning saying why, or 503 when no RTP
        port is free.  The SDP layer checks everything it hands on, so anything else raised
        here is a bug of ours (the runner logs it and answers 500)."""
        call = self.call
        try:
            return call.media.answer_invite(self.session.remote_sdp)
        except SdpError as exc:
            why = _why(exc)
            call.log_event("reject", status=exc.status, why=why)
            self.session.reject(exc.status, "Bad SDP" if exc.status == 400 else None,
                                extra=[self.session.warning(why, exc.warn_code)])
            call._end("rejected")
        except PortsExhausted as exc:
            call.log_event("reject", status=503, why=str(exc))
            log.warn("call {cid}: no free RTP port, answering 503", cid=call.call_id)
            self.session.reject(503, "No Free Media Ports",
                                extra=[("Retry-After", str(PORTS_RETRY_AFTER))])
            call._end("no-media-ports")
        return None

    def ended(self, reason: str) -> None:
        """The call ended: an answer still waiting for its ACK fails with CallEnded."""
        d, self._answer_d = self._answer_d, None
        if d is not None and not d.called:
            d.errback(CallEnded(reason))

    # -- InviteSession listener --------------------------------------------------------
    def on_confirmed(self, session, ack) -> None:
        call = self.call
        media = call.media
        if ack.body and media.local_sdp is not None and media.negotiated is None:
            try:
                media.answered(ack.body)
            except SdpError as exc:
                call.log_event("bad_ack_sdp", why=str(exc))
                call.hangup("bad-sdp")
                return
        if media.negotiated is None and media.local_sdp is not None:
            # Our 2xx carried the offer (the INVITE had none) and the ACK must carry the
            # answer (RFC 3261 13.2.1, RFC 3264): without one there is no media to run the
            # plan on, and a session that never got an address would wait forever.
            call.log_event("bad_ack_sdp", why="the ACK has no answer to our offer")
            call.hangup("no-sdp-answer")
            return
        d, self._answer_d = self._answer_d, None
        if d is not None:
            d.callback(None)

    def on_offer(self, session, sdp: bytes | None) -> bytes:
        """A re-INVITE or UPDATE: hold, unhold, or a new address."""
        try:
            answer = self.call.media.reoffered(sdp)
        except SdpError as exc:  # the session answers 400 or 488 with a Warning
            self.call.log_event("offer_rejected", status=exc.status, why=_why(exc))
            raise OfferRejected(_why(exc), exc.status, exc.warn_code) from None
        negotiated = self.call.media.negotiated
        if sdp is not None:
            self.call.log_event("hold" if negotiated.on_hold else "media_update",
                                remote=f"{negotiated.remote_ip}:{negotiated.remote_port}")
        return answer

    def on_answer(self, session, sdp: bytes) -> None:
        if self.call.media.local_sdp is None:
            return
        try:
            self.call.media.answered(sdp)
        except SdpError as exc:
            self.call.log_event("bad_answer", why=str(exc))

    def on_info(self, session, request) -> int:
        digit = media_ops.digit_from_info(request.content_type, request.body)
        if digit is None:
            return 200 if request.content_type in DTMF_INFO_TYPES else 415
        self.call.digits.push(digit, "info")
        return 200

    def on_refer(self, session, request) -> int:
        """A phone transfers its call, bridged or in the IVR (blind transfer, RFC 3515):
        CallControl.blind_transfer decides and answers (202, or 403/404/503)."""
        call = self.call
        target = media_ops.refer_target(request, call.ctx.advertise)
        if target is None:
            return 400
        if call.transfers is None:
            call.log_event("refer_refused", to=target, why="no call control")
            return 403
        return call.transfers.blind_transfer(call, target)

    def on_notify(self, session, request) -> int:
        """Progress of a REFER we sent (``transfer`` verb): a message/sipfrag status."""
        code = media_ops.sipfrag_status(request.body)
        final = "terminated" in (request.headers.get("Subscription-State") or "")
        self.call.log_event("refer_progress", status=code)
        if self._refer_waiter is not None and code is not None and (final or code >= 200):
            waiter, self._refer_waiter = self._refer_waiter, None
            waiter.callback(code)
        return 200

    def on_terminated(self, session, reason: str) -> None:
        # A session timer that ran out (or whose refresh failed) is our own BYE.
        self.call._end(reason, side="local" if reason.startswith("session-timer") else "remote")

    # UAC-side callbacks: an inbound leg's session never sends them but a failure.
    def on_progress(self, session, response) -> None: ...
    def on_answered(self, session, response): return None
    def on_failed(self, session, status, reason) -> None:
        self.call._end(f"failed-{status}", side="remote")
