"""An outbound call leg: we send the INVITE (with our SDP offer) and wait for an answer.

Failure reasons follow what a dialplan or the API branches on: ``busy`` (486, 600),
``no-answer`` (ring timeout, 408, 480), ``rejected`` (603, 403), ``cancelled`` (we gave
up), ``failed`` (anything else: 404, 5xx, transport errors).

An OutboundCall is a :class:`Call` (the same media leg and digit buffer) whose signalling
leg is the UAC side: :class:`OutboundSignalling` hears the INVITE's progress, answer or
failure.
"""
from __future__ import annotations

import time

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..rtp.ports import PortsExhausted
from ..sdp import SdpError
from ..sip.routing import destination_for
from ..sip.transport import Destination
from ..sip.uri import SipSyntaxError, SipUri, parse_uri
from .call import Call, MediaContext
from .encryption import sip_transport
from .interface import CallerId
from .signalling import SignallingLeg
from .telephony import LegFailed

log = Logger(namespace="ivr.call.outbound")


def failure_reason(status: int) -> str:
    if status in (486, 600):
        return "busy"
    if status in (408, 480):
        return "no-answer"
    if status in (403, 603):
        return "rejected"
    if status == 487:
        return "cancelled"
    return "failed"


class OutboundSignalling(SignallingLeg):
    """The UAC side of a leg: the INVITE we sent rings, is answered, or fails."""

    def on_progress(self, session, response) -> None:
        call = self.call
        if not call.ringing:
            call.ringing = True
            call.log_event("ringing", status=response.status)
            for callback in call.on_ringing:
                callback()
        if (response.body and response.content_type == "application/sdp"
                and call.media.negotiated is None and call.media.local_sdp is not None):
            try:
                call.media.answered(response.body)
                call.log_event("early_media")
            except SdpError as exc:
                call.log_event("bad_early_sdp", why=str(exc))

    def on_answered(self, session, response):
        call = self.call
        call._cancel_ring_timer()
        if call.ended:
            return None
        ack_sdp = None
        if response.body or call.media.local_sdp is None:
            try:
                if call.media.local_sdp is None:  # we sent no offer: the 2xx has theirs
                    if not response.body:
                        raise SdpError("no offer in the 2xx to an INVITE without one")
                    ack_sdp = call.media.answer_invite(response.body)
                else:
                    call.media.answered(response.body)
            except (SdpError, PortsExhausted) as exc:
                call.log_event("bad_answer_sdp", why=str(exc) or type(exc).__name__)
                # The dialog is up and our ACK goes out when this returns: BYE right
                # after it (hangup() would CANCEL, which does nothing once answered).
                call.clock.callLater(0, call._bad_answer)
                return None
        call.answered = True
        call.answered_at = time.time()
        call.log_event("answered")
        call._settle(call)
        return ack_sdp  # our answer to a late offer goes in the ACK

    def on_failed(self, session, status: int, reason: str) -> None:
        self.call.log_event("failed", status=status, reason=reason)
        self.call._fail(LegFailed(failure_reason(status), status, reason))

    def on_confirmed(self, session, ack) -> None:  # UAS-only
        pass

    def hangup(self, reason: str = "normal") -> None:
        """CANCEL until answered (the leg fails as ``cancelled``), BYE after."""
        call = self.call
        if call.ended:
            return
        if not call.answered:
            call.log_event("cancel", reason=reason)
            self.session.cancel()
            call._fail(LegFailed("cancelled", None, reason))
            return
        super().hangup(reason)


def _destination(target: str) -> Destination | None:
    """Where the user agent will send an INVITE for ``target`` (None: not a SIP URI)."""
    try:
        uri = parse_uri(target)
    except (SipSyntaxError, ValueError):
        return None
    return destination_for(uri) if isinstance(uri, SipUri) else None


class OutboundCall(Call):
    direction = "outbound"
    signalling_class = OutboundSignalling

    def __init__(self, ctx: MediaContext, target: str, caller: CallerId | None = None,
                 variables: dict | None = None, *, transfers=None,
                 media_encryption: str | None = None) -> None:
        self.target = target
        self._answer_outcome = None  # the OutboundCall, or a Failure(LegFailed)
        self._answer_waiters: list[defer.Deferred] = []
        self._ring_timer = None
        self.ringing = False
        self.on_ringing: list = []  # called once, on the first 18x
        super().__init__(ctx, None, caller or CallerId(None, None, ""), target, variables,
                         transfers=transfers)
        if media_encryption is not None:  # the callee's (extension, trunk); else the default
            self.media.encryption = media_encryption

    def dial(self, ua, *, timeout: float = 30.0, from_user: str = "ivr",
             from_display: str | None = None, dest: Destination | None = None,
             credentials: tuple[str, str] | None = None,
             extra: list[tuple[str, str]] | None = None) -> "OutboundCall":
        """Send the INVITE with our offer.  Raises (the caller ends the leg with
        ``could_not_dial``) when no port is free, the target is not a SIP URI, or the
        policy needs SRTP keys and the hop is not TLS (EncryptionRefused)."""
        self.media.sip_transport = sip_transport(dest or _destination(self.target))
        # A browser registered over WebSocket takes only a WebRTC (ICE + DTLS-SRTP) offer,
        # and we answer those but do not make them: its INVITE carries no offer, the
        # browser offers in its 2xx and our answer goes in the ACK (RFC 3264, 3261 13.2.1).
        late_offer = self.media.sip_transport in ("ws", "wss")
        self.session = ua.invite(self.target, self.signalling,
                                 None if late_offer else self.media.offer(),
                                 from_user=from_user, from_display=from_display, dest=dest,
                                 credentials=credentials, extra=extra,
                                 call_id=self.call_id or None, prack=True)
        self.call_id = self.session.call_id
        self.log_event("dial", target=self.target, timeout=timeout)
        self._ring_timer = self.clock.callLater(timeout, self._ring_timeout)
        return self

    def could_not_dial(self, why: str) -> None:
        """``dial`` raised before an INVITE went out: the leg ends as failed."""
        self.log_event("dial_failed", why=why)
        self._fail(LegFailed("failed", None, why))

    def when_answered(self) -> defer.Deferred:
        """Fires with this leg once answered; errbacks LegFailed if it never is."""
        if self._answer_outcome is not None:
            if isinstance(self._answer_outcome, Failure):
                return defer.fail(self._answer_outcome)
            return defer.succeed(self._answer_outcome)
        d = defer.Deferred()
        self._answer_waiters.append(d)
        return d

    def _settle(self, outcome) -> None:
        if self._answer_outcome is not None:
            return
        self._answer_outcome = outcome
        waiters, self._answer_waiters = self._answer_waiters, []
        for d in waiters:
            if isinstance(outcome, Failure):
                d.errback(outcome)
            else:
                d.callback(outcome)

    def _ring_timeout(self) -> None:
        self._ring_timer = None
        if not self.answered and not self.ended:
            self.log_event("ring_timeout")
            self.session.cancel()
            self._fail(LegFailed("no-answer", 408, "ring timeout"))

    def _cancel_ring_timer(self) -> None:
        if self._ring_timer is not None and self._ring_timer.active():
            self._ring_timer.cancel()
        self._ring_timer = None

    def _fail(self, failure: LegFailed) -> None:
        self._cancel_ring_timer()
        self._settle(Failure(failure))
        self._end(failure.reason, side="remote" if failure.status else "local")

    def _bad_answer(self) -> None:
        """The callee answered with SDP we cannot use: the leg fails, the dialog ends."""
        if not self.ended:
            self._fail(LegFailed("failed", None, "bad SDP in the answer"))
        self.session.bye("bad-sdp")

    def _end(self, reason: str, side: str = "local") -> None:
        self._cancel_ring_timer()
        known = ("busy", "no-answer", "rejected", "cancelled")
        self._settle(Failure(LegFailed(reason if reason in known else "failed", None, reason)))
        super()._end(reason, side)
