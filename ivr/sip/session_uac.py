"""The UAC side of an INVITE session: sending the INVITE (RFC 3261 13.2), answering a
digest challenge or a 422 (RFC 4028 7.4) with a new INVITE, PRACKing reliable
provisionals (RFC 3262 4), ACKing the 2xx (and its retransmissions, 13.2.2.4) and
CANCEL, which waits for a provisional response (9.1).

A mixin of :class:`ivr.sip.session.InviteSession`: the handlers named in
:mod:`ivr.sip.session_table` for the UAC rows.
"""
from __future__ import annotations

from twisted.logger import Logger

from .auth import AuthError
from .dialog import Dialog, DialogState
from .message import Request, Response
from .prack import RSeqVerdict, parse_rseq, requires
from .session_table import Event
from .session_timer import retry_interval
from .transaction import make_cancel
from .uac_auth import authorized_retry

log = Logger(namespace="ivr.sip.session")


class UacSide:
    def send_invite(self) -> None:
        if self.local_sdp is None and self.invite.body:
            self.local_sdp = self.invite.body
        self.ua.layer.send_request(self.invite, self.dest, on_response=self._invite_response,
                                   on_timeout=lambda: self._from_below(Event.TIMED_OUT),
                                   on_transport_error=lambda: self._from_below(
                                       Event.TRANSPORT_ERROR))

    def cancel(self) -> None:
        """Abandon an unanswered outgoing call (CANCEL once a provisional arrived)."""
        self._fire(Event.CANCEL)

    def _invite_response(self, response: Response) -> None:
        self._from_below(self._classify(response.status), response)

    def _classify(self, status: int) -> Event:
        if status == 100:
            return Event.TRYING
        if status < 200:
            return Event.PROVISIONAL
        if status < 300:
            return Event.ANSWERED
        if self._cancel_pending:
            return Event.FAILED
        if status in (401, 407) and self.credentials and not self._auth_tried:
            return Event.CHALLENGED
        if status == 422 and not self._se_retried:
            return Event.SESSION_TOO_SMALL
        return Event.FAILED

    # -- provisional responses -------------------------------------------------------------
    def _on_trying(self, response: Response) -> None:
        self._provisional_seen = True
        if self._cancel_pending:
            self._send_cancel()

    def _on_provisional(self, response: Response) -> None:
        self._on_trying(response)
        if response.to.tag and self.dialog is None:
            self.dialog = Dialog.from_uac(self.invite, response)
            self.ua.register_session(self)
        if requires(response, "100rel") and not self._prack(response):
            return  # a retransmitted (or out-of-order) reliable 1xx: discarded
        self.listener.on_progress(self, response)

    def _prack(self, response: Response) -> bool:
        """RFC 3262 4: PRACK a reliable 1xx in our (first) early dialog; ``False`` for a
        retransmission or one out of order, which is discarded."""
        rseq = parse_rseq(response.headers.get("RSeq"))
        if rseq is None or self.dialog is None or response.to.tag != self.dialog.remote_tag:
            return True  # not usable as reliable (or another fork): pass it up as it is
        if self._rseq.check(rseq) is not RSeqVerdict.PRACK:
            return False
        self.dialog.update_from_response(response)
        body, content_type = b"", None
        if (not self.invite.body and response.body
                and response.content_type == "application/sdp" and self.listener is not None):
            # Our INVITE had no offer, so this 1xx's SDP is one: answer it in the PRACK.
            try:
                body = self.listener.on_offer(self, response.body) or b""
            except Exception:
                log.failure("call {cid}: no answer to the offer in a reliable 1xx",
                            cid=self.call_id)
            content_type = "application/sdp" if body else None
            self.local_sdp = body or self.local_sdp
        prack = self.dialog.create_request(
            "PRACK", body=body, content_type=content_type,
            extra=[("RAck", f"{rseq} {self.invite.cseq[0]} INVITE")])
        self._send_in_dialog(prack, lambda r: None)
        return True

    # -- final responses -------------------------------------------------------------------
    def _on_answered(self, response: Response) -> None:
        self._final(response)
        if self.dialog is None or self.dialog.remote_tag != response.to.tag:
            if self.dialog is not None:
                self.ua.forget_session(self)
            self.dialog = Dialog.from_uac(self.invite, response)
        else:
            self.dialog.update_from_response(response)
            if self.dialog.state is DialogState.EARLY:
                self.dialog.confirm()
        self.ua.register_session(self)
        body = self.listener.on_answered(self, response) if self.listener else None
        if body:
            self.local_sdp = body
        self.refresh.peer_allow = response.headers.get_all("Allow")
        self.refresh.response_2xx(response)
        # 13.2.2.4: the ACK carries the INVITE's CSeq number and the same credentials.
        credentials = [(name, value) for name in ("Authorization", "Proxy-Authorization")
                       for value in self.invite.headers.get_raw(name)]
        ack = self.dialog.create_request(
            "ACK", body=body or b"", content_type="application/sdp" if body else None,
            extra=credentials, cseq=self.invite.cseq[0])
        self._send_ack(ack)
        if self._cancel_pending:
            self.bye(reason="cancelled")  # our CANCEL crossed the 2xx

    def _on_failed(self, response: Response) -> None:
        self._fail(response.status, response.reason)

    def _on_timeout(self) -> None:
        self._fail(408, "Request Timeout")

    def _on_transport_error(self) -> None:
        self._fail(503, "Transport Error")

    def _fail(self, status: int, reason: str) -> None:
        if self.final_status is None:
            self.final_status, self.final_reason = status, reason
        self._end(f"failed-{status}", notify=False)
        listener, self.listener = self.listener, None  # told once (see _notify)
        if listener is not None:
            listener.on_failed(self, status, reason)

    # -- a new INVITE after a challenge or a 422 ----------------------------------------------
    def _retry_with_credentials(self, challenge: Response) -> None:
        self._auth_tried = True
        try:
            self.invite = authorized_retry(self.invite, challenge, self.credentials,
                                           self.ua.via(self.dest.transport))
        except AuthError as exc:
            log.info("call {cid}: cannot answer the challenge: {e}", cid=self.call_id, e=exc)
            self._fail(challenge.status, challenge.reason)
            return
        self._send_new_invite()

    def _retry_with_min_se(self, response: Response) -> None:
        """RFC 4028 7.4: a 422 to our INVITE: send it again with its Min-SE."""
        self._se_retried = True
        asked = 0
        for value in self.invite.headers.get_raw("Session-Expires"):
            asked = int(value.split(";")[0]) if value.split(";")[0].strip().isdigit() else 0
        interval = retry_interval(response, asked)
        if interval is None:
            self._fail(response.status, response.reason)
            return
        request = Request("INVITE", self.invite.uri, self.invite.headers.copy(), self.invite.body)
        request.headers.set("CSeq", f"{self.invite.cseq[0] + 1} INVITE")
        request.headers.pop_first("Via")
        request.headers.prepend("Via", self.ua.via(self.dest.transport))
        request.headers.set("Session-Expires", str(interval))
        request.headers.set("Min-SE", str(interval))
        self.invite = request
        self.refresh.min_se = interval
        self._send_new_invite()

    def _send_new_invite(self) -> None:
        # A new INVITE transaction: CANCEL waits for *its* provisional (9.1).
        self._provisional_seen = False
        self._cancel_sent = False
        self.send_invite()

    # -- ACK ---------------------------------------------------------------------------------
    def retransmitted_2xx(self, response: Response) -> None:
        """A 2xx to one of our INVITEs came again: re-send that INVITE's ACK (13.2.2.4)."""
        number, method = response.cseq
        ack = self._acks.get(number)
        if ack is not None and method == "INVITE":
            self._send_in_dialog_stateless(ack)

    def _send_ack(self, ack: Request) -> None:
        self._acks[ack.cseq[0]] = ack
        while len(self._acks) > 4:  # keep the last few INVITEs' ACKs
            del self._acks[min(self._acks)]
        self._send_in_dialog_stateless(ack)

    # -- CANCEL ------------------------------------------------------------------------------
    def _cancel(self, reason: str | None = None) -> None:
        self._cancel_pending = True
        if self._provisional_seen:
            self._send_cancel()

    def _send_cancel(self) -> None:
        if self._cancel_sent:
            return
        self._cancel_sent = True
        self.ua.layer.send_request(make_cancel(self.invite), self.dest, on_response=lambda r: None)
