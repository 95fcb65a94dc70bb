"""Requests inside an INVITE dialog, in either role: BYE (RFC 3261 15), re-INVITE and
UPDATE offers answered through the listener (14, RFC 3311) with the session timer
(RFC 4028) kept, INFO/REFER/NOTIFY passed to the listener, and the requests we send:
BYE, re-INVITE (a randomised retry after 491, 14.1), REFER (RFC 3515) and its NOTIFYs.

In-dialog requests from a UAS session with no route set go back to the address the
INVITE came from (symmetric signalling), which reaches phones behind NAT whose Contact
holds a private address.

A mixin of :class:`ivr.sip.session.InviteSession`: the handlers named in
:mod:`ivr.sip.session_table` for in-dialog requests.
"""
from __future__ import annotations

from twisted.logger import Logger

from .message import Request, Response, make_response
from .routing import destination_for
from .session_listener import OfferRejected
from .session_table import Event, Role, SessionError
from .session_timer import SessionTimerError, uas_check, uas_negotiate
from .transport import Destination, Source
from .uri import SipUri, parse_name_addr, parse_uri

log = Logger(namespace="ivr.sip.session")

#: Methods with their own way in (reinvite, bye, cancel) and the ACK the session sends.
_NOT_BY_SEND_IN_DIALOG = ("INVITE", "ACK", "BYE", "CANCEL")


class InDialog:
    # -- the peer's requests -----------------------------------------------------------
    def bye_received(self, txn, request: Request) -> None:
        self._receive(Event.BYE_IN, txn, request)

    def reinvite_received(self, txn, request: Request, source: Source) -> None:
        self._receive(Event.REINVITE_IN, txn, request)

    def update_received(self, txn, request: Request) -> None:
        self._receive(Event.UPDATE_IN, txn, request)

    def info_received(self, txn, request: Request) -> None:
        """INFO (DTMF relay): the listener answers with a status (200, or 415)."""
        self._receive(Event.REQUEST_IN, txn, request, "on_info", 200)

    def refer_received(self, txn, request: Request) -> None:
        """REFER (RFC 3515): the listener decides (202 Accepted, or 403/501...)."""
        self._receive(Event.REQUEST_IN, txn, request, "on_refer", 501)

    def notify_received(self, txn, request: Request) -> None:
        """NOTIFY, e.g. the progress of a REFER we sent (message/sipfrag)."""
        self._receive(Event.REQUEST_IN, txn, request, "on_notify", 200)

    def _on_bye(self, txn, request: Request) -> None:
        self.ua.layer.respond(txn, make_response(request, 200))
        self._end("remote-bye")

    def _on_early_bye(self, txn, request: Request) -> None:
        """15.1.2: a BYE on the early dialog; the INVITE still needs its final answer."""
        self.ua.layer.respond(txn, make_response(request, 200))
        self._answer_invite(make_response(self.invite, 487, to_tag=self.dialog.local_tag))
        self._end("remote-bye")

    def _answer_481(self, txn, request: Request, *unused) -> None:
        self.ua.layer.respond(txn, make_response(request, 481))

    def _answer_491(self, txn, request: Request) -> None:
        """14.2: our own INVITE on this dialog is still in progress."""
        self.ua.layer.respond(txn, make_response(request, 491))

    def _answer_500_retry(self, txn, request: Request) -> None:
        """14.2: our final response to the previous INVITE is not sent, or its 2xx awaits
        the ACK."""
        self.ua.layer.respond(txn, make_response(
            request, 500, extra=[("Retry-After", str(self._retry_after()))]))

    def _on_reinvite(self, txn, request: Request) -> None:
        if self.dialog.outgoing_invite_pending:
            self._answer_491(txn, request)
            return
        if self.retransmission is not None:
            self._answer_500_retry(txn, request)
            return
        timer = self._timer_check(txn, request)
        if timer is False:
            return
        offer = request.body if request.content_type == "application/sdp" else None
        answer = self._offer(txn, request, offer)
        if answer is False:
            return
        self.dialog.target_refresh(request)  # only an accepted re-INVITE refreshes (12.2)
        extra = [("Contact", self.dialog.local_contact), ("Supported", self.ua_supported())]
        extra += timer[1]
        if answer:
            extra.append(("Content-Type", "application/sdp"))
            self.local_sdp = answer
        self._send_2xx(txn, make_response(request, 200, body=answer or b"", extra=extra))
        self.refresh.negotiated(timer[0])

    def _on_update(self, txn, request: Request) -> None:
        timer = self._timer_check(txn, request)
        if timer is False:
            return
        offer = request.body if request.content_type == "application/sdp" else None
        extra = [("Contact", self.dialog.local_contact), ("Supported", self.ua_supported())]
        extra += timer[1]
        answer = None
        if offer is not None:
            answer = self._offer(txn, request, offer)
            if answer is False:
                return
            self.dialog.target_refresh(request)
        if answer:
            extra.append(("Content-Type", "application/sdp"))
            self.local_sdp = answer
        self.ua.layer.respond(txn, make_response(request, 200, body=answer or b"", extra=extra))
        self.refresh.negotiated(timer[0])

    def _timer_check(self, txn, request: Request):
        """RFC 4028 for a re-INVITE / UPDATE: ``(outcome, headers for our 2xx)``, or
        ``False`` once answered 422 (interval below our Min-SE) or 400 (unreadable)."""
        try:
            small = uas_check(request, self.refresh.min_se)
            if small is None:
                keep = self.refresh.machine.interval if self.refresh.active else None
                return uas_negotiate(request, self.refresh.min_se,
                                     getattr(self.ua, "session_expires", 1800), keep=keep)
        except SessionTimerError as exc:
            self.ua.layer.respond(txn, make_response(request, 400, f"Bad Session Timer ({exc})"[:80]))
            return False
        self.ua.layer.respond(txn, make_response(request, 422,
                                                 extra=[("Min-SE", str(small.min_se))]))
        return False

    def _offer(self, txn, request: Request, offer: bytes | None):
        """The listener's answer to an offer, or ``False`` once the request has been
        answered with an error (488 for a rejected offer, 500 if the listener failed:
        an unanswered INVITE server transaction would never end)."""
        try:
            return self.listener.on_offer(self, offer) if self.listener else None
        except OfferRejected as exc:
            extra = [self.warning(exc.why, exc.warn_code)] if exc.why else None
            self.ua.layer.respond(txn, make_response(request, exc.status, extra=extra))
        except Exception:
            log.failure("call {cid}: listener failed on an offer", cid=self.call_id)
            self.ua.layer.respond(txn, make_response(request, 500))
        return False

    def _to_listener(self, txn, request: Request, callback: str, default: int) -> None:
        handler = getattr(self.listener, callback, None)
        try:
            status = handler(self, request) if handler is not None else default
        except Exception:
            log.failure("call {cid}: listener failed on {m}", cid=self.call_id, m=request.method)
            status = 500
        self.ua.layer.respond(txn, make_response(request, status or default))

    # -- ours ---------------------------------------------------------------------------
    def bye(self, reason: str = "local-bye") -> None:
        """Hang up: BYE once answered (after the ACK of our 2xx, 15), CANCEL or a 480 before
        that; hanging up an ended session does nothing (the peer's BYE may cross ours)."""
        self._fire(Event.HANG_UP, reason)

    def _send_bye(self, reason: str) -> None:
        self._send_in_dialog(self.dialog.create_request("BYE"), lambda r: None)
        self._end(reason)

    def refer(self, target: str, on_response=None) -> Request:
        """Ask the peer to call ``target`` (blind transfer, RFC 3515)."""
        return self.send_in_dialog("REFER", extra=[("Refer-To", f"<{target}>"),
                                                   ("Referred-By", self.dialog.local_contact)],
                                   on_response=on_response)

    def notify_refer(self, status: int, reason: str, final: bool) -> None:
        """Report a REFER's progress to the referrer as a message/sipfrag NOTIFY."""
        state = "terminated;reason=noresource" if final else "active;expires=60"
        try:
            self.send_in_dialog("NOTIFY", body=f"SIP/2.0 {status} {reason}\r\n".encode(),
                                content_type="message/sipfrag;version=2.0",
                                extra=[("Event", "refer"), ("Subscription-State", state)])
        except SessionError:
            pass  # the referrer already hung up

    def send_in_dialog(self, method: str, body: bytes = b"", content_type: str | None = None,
                       on_response=None, extra: list[tuple[str, str]] | None = None,
                       on_timeout=None) -> Request:
        """Send an in-dialog request other than INVITE/ACK/BYE/CANCEL (INFO, UPDATE, ...).
        ``on_response(response)`` gets every response; ``on_timeout()`` Timer F."""
        if method in _NOT_BY_SEND_IN_DIALOG:
            raise SessionError(f"use reinvite()/bye()/cancel(), not send_in_dialog({method})")
        return self._fire(Event.SEND_REQUEST, method, body, content_type, on_response, extra,
                          on_timeout)

    def _send_request(self, method, body, content_type, on_response, extra, on_timeout):
        if self.dialog is None:
            raise SessionError(f"no dialog to send {method} in ({self.state.name})")
        request = self.dialog.create_request(method, body=body, content_type=content_type,
                                             extra=extra)
        self._send_in_dialog(request, on_response or (lambda r: None), on_timeout)
        return request

    def reinvite(self, sdp: bytes, on_done=None, extra: list[tuple[str, str]] | None = None,
                 fail_reason: str = "no-response") -> bool:
        """Send a re-INVITE (hold / unhold).  Returns False if an INVITE is already in
        progress on the dialog in either direction (14.1).  ``on_done(response)`` gets
        the final response, or ``None`` when none came (the call is then hung up)."""
        return self._fire(Event.REINVITE, sdp, on_done, extra, fail_reason)

    def _invite_in_progress(self, *unused) -> bool:
        return False

    def _send_reinvite(self, sdp: bytes, on_done, extra, fail_reason: str) -> bool:
        if self.dialog.outgoing_invite_pending or self.retransmission is not None:
            return False
        self.dialog.outgoing_invite_pending = True
        if extra is None:
            extra = self.refresh.request_headers()  # keep the session timer going
        request = self.dialog.create_request("INVITE", body=sdp, content_type="application/sdp",
                                             extra=extra)
        self.local_sdp = sdp

        def no_response() -> None:
            # 12.2.1.2: no answer to an in-dialog request ends the dialog.
            self.dialog.outgoing_invite_pending = False
            if on_done is not None:
                on_done(None)
            self.bye(reason=fail_reason)

        def on_response(response: Response) -> None:
            if response.status < 200:
                return
            self.dialog.outgoing_invite_pending = False
            if response.status < 300:
                ack = self.dialog.create_request("ACK", cseq=request.cseq[0])
                self._send_ack(ack)
                self.refresh.response_2xx(response)
                if response.body and self.listener is not None:
                    self.listener.on_answer(self, response.body)
            elif response.status in (408, 481):
                # 12.2.1.2: the dialog is gone (481) or unreachable (408).
                if on_done is not None:
                    on_done(response)
                if response.status == 481:
                    self._from_below(Event.DIALOG_GONE)
                else:
                    self.bye(reason=fail_reason)
                return
            elif response.status == 491:
                self._retry_reinvite_later(sdp, on_done, extra, fail_reason)  # 14.1
                return
            if on_done is not None:
                on_done(response)

        self._send_in_dialog(request, on_response, no_response)
        return True

    def _on_dialog_gone(self) -> None:
        self._end("remote-gone")

    # -- sending ------------------------------------------------------------------------
    def _in_dialog_destination(self) -> Destination:
        if self.role is Role.UAS and not self.dialog.route_set and self.source is not None:
            return Destination(self.source.transport, self.source.host, self.source.port)
        if self.role is Role.UAC and not self.dialog.route_set and self.dest is not None \
                and self.dest.transport == "TLS":
            return self.dest  # the TLS connection the INVITE went over (a phone's own)
        if self.dialog.route_set:
            uri = parse_name_addr(self.dialog.route_set[0]).uri
        else:
            uri = parse_uri(self.dialog.remote_target)
        if not isinstance(uri, SipUri):
            return self.dest
        return destination_for(uri)

    def _send_in_dialog(self, request: Request, on_response, on_timeout=None) -> None:
        dest = self._in_dialog_destination()
        request.headers.prepend("Via", self.ua.via(dest.transport))
        if request.method not in ("ACK", "CANCEL") and "Supported" not in request.headers:
            request.headers.add("Supported", self.ua_supported())
        self.ua.layer.send_request(request, dest, on_response=on_response,
                                   on_timeout=on_timeout, on_transport_error=on_timeout)

    def _send_in_dialog_stateless(self, request: Request) -> None:
        dest = self._in_dialog_destination()
        if "Via" not in request.headers:
            request.headers.prepend("Via", self.ua.via(dest.transport))
        self.ua.transport.send_request(request, dest)
