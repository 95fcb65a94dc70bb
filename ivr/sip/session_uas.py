"""The UAS side of an INVITE session: answering the INVITE (RFC 3261 13.3.1) with
provisional responses, reliable ones when the caller does 100rel (RFC 3262), a 2xx
re-sent until the ACK (13.3.1.4) or a rejection; CANCEL and PRACK from the caller.

A mixin of :class:`ivr.sip.session.InviteSession`: the handlers named in
:mod:`ivr.sip.session_table` for the UAS rows.
"""
from __future__ import annotations

from twisted.logger import Logger

from .message import Request, Response, make_response
from .prack import peer_supports
from .prack_uas import ReliableProvisionals
from .session_table import Event, Role, SessionState
from .session_timer import SessionTimerError, uas_negotiate

log = Logger(namespace="ivr.sip.session")


class UasSide:
    # -- ours ----------------------------------------------------------------------------
    def ring(self, status: int = 180, sdp: bytes | None = None) -> None:
        """Send a provisional response (reliably when the caller does 100rel)."""
        self._fire(Event.RING, status, sdp)

    def accept(self, sdp: bytes | None) -> None:
        """Answer 200; held back until the PRACK of a reliable 1xx with SDP (RFC 3262 3)."""
        blocked = self.reliable is not None and self.reliable.blocks_2xx
        self._fire(Event.ACCEPT_AFTER_PRACK if blocked else Event.ACCEPT, sdp)

    def reject(self, status: int, reason: str | None = None,
               extra: list[tuple[str, str]] | None = None) -> None:
        """Answer the INVITE with a final error response; the session ends."""
        self._fire(Event.REJECT, status, reason, extra)

    @property
    def reliable_provisionals(self) -> bool:
        """Whether our 18x to this INVITE are sent reliably (the caller does 100rel), so
        one carrying SDP is early media the caller has acknowledged (RFC 3262)."""
        return self.role is Role.UAS and peer_supports(self.invite, "100rel")

    def _send_provisional(self, status: int, sdp: bytes | None) -> None:
        response = self._uas_response(status, sdp)
        if sdp:
            self.local_sdp = sdp
        if status > 100 and peer_supports(self.invite, "100rel"):
            self._reliable_provisionals().send(response)  # RFC 3262 3
        else:
            self.ua.layer.respond(self.invite_txn, response)

    def _queue_accept(self, sdp: bytes | None) -> None:
        self._accept_after_prack[:] = [sdp]

    def _send_2xx_to_invite(self, sdp: bytes | None) -> None:
        try:
            timer, timer_headers = uas_negotiate(self.invite, self.refresh.min_se,
                                                 getattr(self.ua, "session_expires", 1800))
        except SessionTimerError:
            timer, timer_headers = None, []  # checked (400) before the call was offered
        response = self._uas_response(200, sdp, timer_headers)
        self._final(response)
        self._stop_reliable()
        if sdp:
            self.local_sdp = sdp
        self.ua.pending_uas.pop(self.invite_txn, None)
        self.dialog.confirm()
        self._send_2xx(self.invite_txn, response)
        self.refresh.peer_allow = self.invite.headers.get_all("Allow")
        self.refresh.negotiated(timer)

    def _send_rejection(self, status: int, reason: str | None,
                        extra: list[tuple[str, str]] | None) -> None:
        self._answer_invite(make_response(self.invite, status, reason,
                                          to_tag=self.dialog.local_tag, extra=extra))
        self._end(f"rejected-{status}", notify=False)
        self.listener = None  # the listener rejected: nothing more to tell it (_notify)

    def _hang_up_unanswered(self, reason: str) -> None:
        self._answer_invite(make_response(self.invite, 480, to_tag=self.dialog.local_tag))
        self._end("rejected-480", notify=False)
        self._notify(reason)

    def _bye_after_ack(self, reason: str) -> None:
        self._bye_reason = reason  # sent when the ACK comes or we give up on it (15)

    def _answer_invite(self, response: Response) -> None:
        self._final(response)
        self._stop_reliable()
        self.ua.layer.respond(self.invite_txn, response)

    def _uas_response(self, status: int, sdp: bytes | None,
                      more: list[tuple[str, str]] = ()) -> Response:
        extra = [("Contact", self.dialog.local_contact), ("Allow", self.ua_allow()),
                 ("Supported", self.ua_supported())] + list(more)
        if sdp:
            extra.append(("Content-Type", "application/sdp"))
        for rr in self.invite.headers.get_raw("Record-Route"):
            extra.append(("Record-Route", rr))
        return make_response(self.invite, status, to_tag=self.dialog.local_tag,
                             body=sdp or b"", extra=extra)

    # -- reliable provisionals (RFC 3262 3) ------------------------------------------------
    def _reliable_provisionals(self) -> ReliableProvisionals:
        if self.reliable is None:
            self.reliable = ReliableProvisionals(
                self.ua.clock, self.ua.timers,
                send=lambda r: self.ua.layer.respond(self.invite_txn, r),
                on_no_prack=self._no_prack, invite_cseq=self.invite.cseq[0],
                reliable_transport=self.source is not None and self.source.transport != "UDP")
        return self.reliable

    def _no_prack(self) -> None:
        self._from_below(Event.NO_PRACK)

    def _on_no_prack(self) -> None:
        """64*T1 without a PRACK: reject the INVITE with a 5xx."""
        log.info("call {cid}: no PRACK for our reliable provisional within 64*T1",
                 cid=self.call_id)
        self._answer_invite(make_response(self.invite, 504, "No PRACK",
                                          to_tag=self.dialog.local_tag))
        self._end("no-prack")

    def _stop_reliable(self) -> None:
        if self.reliable is not None:
            self.reliable.stop()

    def prack_received(self, txn, request: Request) -> None:
        self._receive(Event.PRACK_IN, txn, request)

    def _on_prack(self, txn, request: Request) -> None:
        """200 for the reliable 1xx the PRACK's RAck names, else 481."""
        acked = self.reliable.prack(request.headers.get("RAck")) if self.reliable else None
        if acked is None:
            self._answer_481(txn, request)
            return
        offer = request.body if request.content_type == "application/sdp" else None
        answer = None
        if offer is not None and acked.has_sdp and self.remote_sdp is None:
            # The INVITE had no offer; our reliable 1xx made one and this is the answer.
            self.remote_sdp = offer
            if self.listener is not None:
                self.listener.on_answer(self, offer)
        elif offer is not None:
            answer = self._offer(txn, request, offer)
            if answer is False:
                return
            self.local_sdp = answer or self.local_sdp
        extra = [("Content-Type", "application/sdp")] if answer else None
        self.ua.layer.respond(txn, make_response(request, 200, body=answer or b"", extra=extra))
        self.reliable.send_queued()
        if self._accept_after_prack and not self.reliable.blocks_2xx:
            self.accept(self._accept_after_prack.pop())

    # -- the 2xx until its ACK (13.3.1.4) -------------------------------------------------
    def _send_2xx(self, txn, response: Response) -> None:
        self._2xx_cseq = response.cseq[0]
        self.retransmission = self.ua.layer.retransmit_2xx(txn, response, self._no_ack)

    def _stop_2xx(self) -> None:
        if self.retransmission is not None:
            self.retransmission.ack_received()
            self.retransmission = None

    def _no_ack(self) -> None:
        self.retransmission = None
        self._from_below(Event.NO_ACK)

    def _on_no_ack(self) -> None:
        log.info("call {cid}: no ACK for our 2xx within 64*T1, sending BYE", cid=self.call_id)
        self._send_bye(self._bye_reason or "no-ack")

    def ack_received(self, ack: Request) -> None:
        if self.retransmission is None or ack.cseq[0] != self._2xx_cseq:
            return  # a retransmitted ACK, or one for an older INVITE: nothing to stop
        self._from_below(Event.ACK_IN, ack)

    def _on_ack(self, ack: Request) -> None:
        self._stop_2xx()
        if self._bye_reason is not None:
            self.bye(self._bye_reason)
        elif self.listener is not None:
            self.listener.on_confirmed(self, ack)

    def _on_reinvite_ack(self, ack: Request) -> None:
        self._stop_2xx()
        if ack.body and self.listener is not None:
            self.listener.on_answer(self, ack.body)  # answer to our late offer in a re-INVITE

    # -- CANCEL (9.2) ---------------------------------------------------------------------
    def cancel_received(self, request: Request) -> None:
        self._from_below(Event.CANCEL_IN)

    def _on_cancel(self) -> None:
        self._answer_invite(make_response(self.invite, 487, to_tag=self.dialog.local_tag))
        self._end("cancelled")
