"""One INVITE dialog usage (a call leg's signalling), in either role.

UAS: ring / accept / reject an incoming INVITE; retransmit the 2xx until ACK (RFC 3261
13.3.1.4) and send BYE if none comes; CANCEL before the final answer gives 487.
UAC: send the INVITE, answer digest challenges, ACK 2xx (and re-ACK retransmissions),
CANCEL (deferred until a provisional arrives, 9.1).
Both: BYE either way, re-INVITE / UPDATE offers (hold, unhold) answered through the
listener, 491 on glare (14.1) and a randomised retry of our own re-INVITE.

In-dialog requests from a UAS session with no route set go back to the address the
INVITE came from (symmetric signalling), which reaches phones behind NAT whose Contact
holds a private address.
"""
from __future__ import annotations

import random
import secrets
from enum import Enum
from typing import Protocol

from twisted.logger import Logger

from .dialog import Dialog, DialogState
from .message import Request, Response, make_response
from .transaction import make_cancel
from .transport import Destination, Source
from .uri import SipUri, parse_name_addr, parse_uri

log = Logger(namespace="ivr.sip.session")


class Role(Enum):
    UAS = "uas"
    UAC = "uac"


class SessionState(Enum):
    CALLING = "calling"        # UAC: INVITE sent
    EARLY = "early"            # provisional with tag seen / sent
    INCOMING = "incoming"      # UAS: INVITE received, no answer yet
    WAIT_ACK = "wait_ack"      # UAS: 2xx sent
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class OfferRejected(Exception):
    """The listener cannot accept an SDP offer: answer ``status`` (488, or 400 for SDP
    that is malformed) with a Warning of code ``warn_code`` saying ``why``, if given."""

    def __init__(self, why: str = "", status: int = 488, warn_code: int = 399) -> None:
        super().__init__(why)
        self.why, self.status, self.warn_code = why, status, warn_code


#: Longest Warning text we send: it quotes what the peer sent, which may be anything.
MAX_WARNING_TEXT = 200


def warning_header(agent: str, text: str, code: int = 399) -> tuple[str, str]:
    """``("Warning", 'code agent "text"')`` (RFC 3261 20.43).  ``text`` usually quotes
    the peer's own bytes, so it becomes a safe quoted-string: characters that are not
    printable (CR, LF, NUL, other controls) turn into ``?``, ``"`` and ``\\`` are escaped,
    and it is cut at MAX_WARNING_TEXT characters."""
    if not 300 <= code <= 399:
        raise ValueError(f"a Warning code is 3xx, not {code}")
    if len(text) > MAX_WARNING_TEXT:
        text = text[: MAX_WARNING_TEXT - 3] + "..."
    text = "".join(c if c.isprintable() else "?" for c in text)
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return ("Warning", f'{code} {agent} "{text}"')


class SessionError(Exception):
    """Our own misuse of a session (a request the session's state does not allow)."""


class SessionListener(Protocol):
    def on_progress(self, session: "InviteSession", response: Response) -> None: ...
    def on_answered(self, session: "InviteSession", response: Response) -> bytes | None: ...
    def on_failed(self, session: "InviteSession", status: int, reason: str) -> None: ...
    def on_confirmed(self, session: "InviteSession", ack: Request) -> None: ...
    def on_offer(self, session: "InviteSession", sdp: bytes | None) -> bytes: ...
    def on_answer(self, session: "InviteSession", sdp: bytes) -> None: ...
    def on_info(self, session: "InviteSession", request: Request) -> int: ...
    def on_terminated(self, session: "InviteSession", reason: str) -> None: ...


class InviteSession:
    def __init__(self, ua, role: Role, listener: SessionListener | None = None) -> None:
        self.ua = ua
        self.role = role
        self.listener = listener
        self.state = SessionState.INCOMING if role is Role.UAS else SessionState.CALLING
        self.dialog: Dialog | None = None
        self.invite: Request | None = None
        self.invite_txn = None
        self.source: Source | None = None
        self.dest: Destination | None = None
        self.retransmission = None
        self._2xx_cseq: int | None = None  # the INVITE whose 2xx is being retransmitted
        self._acks: dict[int, Request] = {}  # our ACKs for 2xx, by CSeq number (re-ACK)
        self._bye_after_ack: str | None = None
        self.credentials: tuple[str, str] | None = None
        self._auth_tried = False
        self._cancel_pending = False
        self._cancel_sent = False
        self._provisional_seen = False
        self.end_reason: str | None = None
        self.remote_sdp: bytes | None = None
        self.caller = None  # who an incoming INVITE is from (ivr.sip.authenticator.Caller)
        # The INVITE's final response, sent (UAS) or received (UAC; 408/503 when none
        # came), for the call's record.
        self.final_status: int | None = None
        self.final_reason: str | None = None

    # -- construction ------------------------------------------------------------------
    @classmethod
    def incoming(cls, ua, txn, request: Request, source: Source) -> "InviteSession":
        session = cls(ua, Role.UAS)
        session.invite, session.invite_txn, session.source = request, txn, source
        session.dialog = Dialog.from_uas(request, secrets.token_hex(6), ua.contact(source.transport))
        session.remote_sdp = request.body if request.content_type == "application/sdp" else None
        return session

    @classmethod
    def outgoing(cls, ua, request: Request, dest: Destination, listener, credentials):
        session = cls(ua, Role.UAC, listener)
        session.invite, session.dest, session.credentials = request, dest, credentials
        return session

    @property
    def call_id(self) -> str:
        return self.invite.call_id if self.invite is not None else ""

    @property
    def answered(self) -> bool:
        return self.state in (SessionState.WAIT_ACK, SessionState.CONFIRMED)

    # -- UAS ---------------------------------------------------------------------------
    def ring(self, status: int = 180, sdp: bytes | None = None) -> None:
        if self.state not in (SessionState.INCOMING, SessionState.EARLY):
            return
        response = self._uas_response(status, sdp)
        self.state = SessionState.EARLY
        self.ua.layer.respond(self.invite_txn, response)

    def accept(self, sdp: bytes | None) -> None:
        if self.state not in (SessionState.INCOMING, SessionState.EARLY):
            return
        response = self._uas_response(200, sdp)
        self._final(response)
        self.ua.pending_uas.pop(self.invite_txn, None)
        self.dialog.confirm()
        self.state = SessionState.WAIT_ACK
        self._send_2xx(self.invite_txn, response)

    def reject(self, status: int, reason: str | None = None,
               extra: list[tuple[str, str]] | None = None) -> None:
        if self.state not in (SessionState.INCOMING, SessionState.EARLY):
            return
        response = make_response(self.invite, status, reason, to_tag=self.dialog.local_tag,
                                 extra=extra)
        self._final(response)
        self.ua.layer.respond(self.invite_txn, response)
        self._terminate(f"rejected-{status}", notify=False)

    def _final(self, response: Response) -> None:
        if self.final_status is None:
            self.final_status, self.final_reason = response.status, response.reason

    def _uas_response(self, status: int, sdp: bytes | None) -> Response:
        extra = [("Contact", self.dialog.local_contact), ("Allow", self.ua_allow())]
        if sdp:
            extra.append(("Content-Type", "application/sdp"))
        for rr in self.invite.headers.get_raw("Record-Route"):
            extra.append(("Record-Route", rr))
        return make_response(self.invite, status, to_tag=self.dialog.local_tag,
                             body=sdp or b"", extra=extra)

    def ua_allow(self) -> str:
        from .ua import ALLOW
        return ALLOW

    def warning(self, text: str, code: int = 399) -> tuple[str, str]:
        """A Warning header from this UA (its host:port is the warn-agent)."""
        host = self.ua.host
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return warning_header(f"{host}:{self.ua.port}", text, code)

    def _send_2xx(self, txn, response: Response) -> None:
        """Send a 2xx to an INVITE and retransmit it until the ACK (13.3.1.4)."""
        self._2xx_cseq = response.cseq[0]
        self.retransmission = self.ua.layer.retransmit_2xx(txn, response, self._no_ack)

    def _stop_2xx(self) -> None:
        if self.retransmission is not None:
            self.retransmission.ack_received()
            self.retransmission = None

    def _no_ack(self) -> None:
        log.info("call {cid}: no ACK for our 2xx within 64*T1, sending BYE", cid=self.call_id)
        self.retransmission = None
        self.bye(reason=self._bye_after_ack or "no-ack")

    def ack_received(self, ack: Request) -> None:
        if self.retransmission is None or ack.cseq[0] != self._2xx_cseq:
            return  # a retransmitted ACK, or one for an older INVITE: nothing to stop
        self._stop_2xx()
        if self.state is SessionState.WAIT_ACK:
            self.state = SessionState.CONFIRMED
            if self._bye_after_ack is not None:
                self.bye(self._bye_after_ack)
            elif self.listener is not None:
                self.listener.on_confirmed(self, ack)
        elif ack.body and self.listener is not None:
            self.listener.on_answer(self, ack.body)  # answer to our late offer in a re-INVITE

    def cancel_received(self, request: Request) -> None:
        if self.state in (SessionState.INCOMING, SessionState.EARLY):
            response = make_response(self.invite, 487, to_tag=self.dialog.local_tag)
            self._final(response)
            self.ua.layer.respond(self.invite_txn, response)
            self._terminate("cancelled")

    # -- UAC ---------------------------------------------------------------------------
    def send_invite(self) -> None:
        self.ua.layer.send_request(self.invite, self.dest, on_response=self._invite_response,
                                   on_timeout=self._invite_timeout,
                                   on_transport_error=self._invite_transport_error)

    def _invite_timeout(self) -> None:
        if self.state in (SessionState.CALLING, SessionState.EARLY):
            self._fail(408, "Request Timeout")

    def _invite_transport_error(self) -> None:
        if self.state in (SessionState.CALLING, SessionState.EARLY):
            self._fail(503, "Transport Error")

    def _invite_response(self, response: Response) -> None:
        status = response.status
        if status < 200:
            self._provisional_seen = True
            if self._cancel_pending:
                self._send_cancel()
            if status > 100 and response.to.tag and self.dialog is None:
                self.dialog = Dialog.from_uac(self.invite, response)
                self.ua.register_session(self)
            if status > 100:
                self.state = SessionState.EARLY
                self.listener.on_progress(self, response)
            return
        if 200 <= status < 300:
            self._final(response)
            self._uac_answered(response)
            return
        if (status in (401, 407) and self.credentials and not self._auth_tried
                and not self._cancel_pending):
            self._auth_tried = True
            self._resend_with_auth(response)
            return
        self._fail(status, response.reason)

    def _uac_answered(self, response: Response) -> None:
        if self.dialog is None or self.dialog.remote_tag != response.to.tag:
            if self.dialog is not None:
                self.ua.forget_session(self)
            self.dialog = Dialog.from_uac(self.invite, response)
        else:
            self.dialog.update_from_response(response)
            if self.dialog.state is DialogState.EARLY:
                self.dialog.confirm()
        self.ua.register_session(self)
        self.state = SessionState.CONFIRMED
        body = self.listener.on_answered(self, response) if self.listener else None
        # 13.2.2.4: the ACK carries the INVITE's CSeq number and the same credentials.
        credentials = [(name, value) for name in ("Authorization", "Proxy-Authorization")
                       for value in self.invite.headers.get_raw(name)]
        ack = self.dialog.create_request(
            "ACK", body=body or b"", content_type="application/sdp" if body else None,
            extra=credentials, cseq=self.invite.cseq[0])
        self._send_ack(ack)
        if self._cancel_pending:
            self.bye(reason="cancelled")

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

    def _resend_with_auth(self, challenge_response: Response) -> None:
        from .auth import AuthError
        from .uac_auth import authorized_retry
        try:
            self.invite = authorized_retry(self.invite, challenge_response, self.credentials,
                                           self.ua.via(self.dest.transport))
        except AuthError as exc:
            log.info("call {cid}: cannot answer the challenge: {e}", cid=self.call_id, e=exc)
            self._fail(challenge_response.status, challenge_response.reason)
            return
        # A new INVITE transaction: CANCEL waits for *its* provisional (9.1).
        self._provisional_seen = False
        self._cancel_sent = False
        self.send_invite()

    def cancel(self) -> None:
        """Abandon an unanswered outgoing call (CANCEL once a provisional arrived)."""
        if self.role is not Role.UAC or self.state not in (SessionState.CALLING,
                                                           SessionState.EARLY):
            return
        self._cancel_pending = True
        if self._provisional_seen:
            self._send_cancel()

    def _send_cancel(self) -> None:
        if self._cancel_sent:
            return
        self._cancel_sent = True
        self.ua.layer.send_request(make_cancel(self.invite), self.dest, on_response=lambda r: None)

    def _fail(self, status: int, reason: str) -> None:
        if self.state is SessionState.TERMINATED:
            return
        self.state = SessionState.TERMINATED
        self.end_reason = f"failed-{status}"
        if self.final_status is None:
            self.final_status, self.final_reason = status, reason
        self.ua.forget_session(self)
        if self.listener is not None:
            self.listener.on_failed(self, status, reason)

    # -- both --------------------------------------------------------------------------
    def bye(self, reason: str = "local-bye") -> None:
        if self.state is SessionState.TERMINATED:
            return
        if self.role is Role.UAC and self.state in (SessionState.CALLING, SessionState.EARLY):
            self.cancel()
            return
        if self.role is Role.UAS and self.state in (SessionState.INCOMING, SessionState.EARLY):
            self.reject(480)
            self._notify(reason)
            return
        if (self.role is Role.UAS and self.state is SessionState.WAIT_ACK
                and self.retransmission is not None):
            # 15: the callee must not send BYE before the ACK for its 2xx (or before
            # giving up on it); ack_received / _no_ack send it.
            self._bye_after_ack = reason
            return
        request = self.dialog.create_request("BYE")
        self._send_in_dialog(request, lambda r: None)
        self._terminate(reason)

    def bye_received(self, txn, request: Request) -> None:
        if not self.dialog.check_remote_seq(request):
            self.ua.layer.respond(txn, make_response(request, 500, "Out of order CSeq"))
            return
        self.ua.layer.respond(txn, make_response(request, 200))
        if self.role is Role.UAS and self.state in (SessionState.INCOMING, SessionState.EARLY):
            # 15.1.2: a BYE on the early dialog; the INVITE still needs its final answer.
            response = make_response(self.invite, 487, to_tag=self.dialog.local_tag)
            self._final(response)
            self.ua.layer.respond(self.invite_txn, response)
        self._terminate("remote-bye")

    def reinvite_received(self, txn, request: Request, source: Source) -> None:
        if not self.dialog.check_remote_seq(request):
            self.ua.layer.respond(txn, make_response(request, 500, "Out of order CSeq"))
            return
        if self.dialog.outgoing_invite_pending or (
                self.role is Role.UAC and self.state in (SessionState.CALLING, SessionState.EARLY)):
            # 14.2: our own INVITE on this dialog is still in progress.
            self.ua.layer.respond(txn, make_response(request, 491))
            return
        if self.retransmission is not None or (
                self.role is Role.UAS and self.state in (SessionState.INCOMING, SessionState.EARLY)):
            # 14.2: our final response to the previous INVITE is not sent, or its 2xx
            # awaits the ACK.
            self.ua.layer.respond(txn, make_response(
                request, 500, extra=[("Retry-After", str(random.randint(0, 10)))]))
            return
        offer = request.body if request.content_type == "application/sdp" else None
        answer = self._offer(txn, request, offer)
        if answer is False:
            return
        self.dialog.target_refresh(request)  # only an accepted re-INVITE refreshes (12.2)
        extra = [("Contact", self.dialog.local_contact)]
        if answer:
            extra.append(("Content-Type", "application/sdp"))
        self._send_2xx(txn, make_response(request, 200, body=answer or b"", extra=extra))

    def update_received(self, txn, request: Request) -> None:
        if not self.dialog.check_remote_seq(request):
            self.ua.layer.respond(txn, make_response(request, 500, "Out of order CSeq"))
            return
        offer = request.body if request.content_type == "application/sdp" else None
        if offer is None:
            self.ua.layer.respond(txn, make_response(request, 200))
            return
        answer = self._offer(txn, request, offer)
        if answer is False:
            return
        self.dialog.target_refresh(request)
        extra = [("Contact", self.dialog.local_contact)]
        if answer:
            extra.append(("Content-Type", "application/sdp"))
        self.ua.layer.respond(txn, make_response(request, 200, body=answer or b"", extra=extra))

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

    def info_received(self, txn, request: Request) -> None:
        """INFO (DTMF relay): the listener answers with a status (200, or 415)."""
        self._request_to_listener(txn, request, "on_info", default=200)

    def refer_received(self, txn, request: Request) -> None:
        """REFER (RFC 3515): the listener decides (202 Accepted, or 403/501...)."""
        self._request_to_listener(txn, request, "on_refer", default=501)

    def notify_received(self, txn, request: Request) -> None:
        """NOTIFY, e.g. the progress of a REFER we sent (message/sipfrag)."""
        self._request_to_listener(txn, request, "on_notify", default=200)

    def _request_to_listener(self, txn, request: Request, callback: str, default: int) -> None:
        if not self.dialog.check_remote_seq(request):
            self.ua.layer.respond(txn, make_response(request, 500, "Out of order CSeq"))
            return
        handler = getattr(self.listener, callback, None)
        try:
            status = handler(self, request) if handler is not None else default
        except Exception:
            log.failure("call {cid}: listener failed on {m}", cid=self.call_id, m=request.method)
            status = 500
        self.ua.layer.respond(txn, make_response(request, status or default))

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
        if method in ("INVITE", "ACK", "BYE", "CANCEL"):
            raise SessionError(f"use reinvite()/bye()/cancel(), not send_in_dialog({method})")
        if self.dialog is None or self.state is SessionState.TERMINATED:
            raise SessionError(f"no dialog to send {method} in ({self.state.name})")
        request = self.dialog.create_request(method, body=body, content_type=content_type,
                                             extra=extra)
        self._send_in_dialog(request, on_response or (lambda r: None), on_timeout)
        return request

    def reinvite(self, sdp: bytes, on_done=None) -> bool:
        """Send a re-INVITE (hold / unhold).  Returns False if an INVITE is already in
        progress on the dialog in either direction (14.1).  ``on_done(response)`` gets
        the final response, or ``None`` when none came (the call is then hung up)."""
        if (self.state is not SessionState.CONFIRMED or self.dialog.outgoing_invite_pending
                or self.retransmission is not None):
            return False
        self.dialog.outgoing_invite_pending = True
        request = self.dialog.create_request("INVITE", body=sdp, content_type="application/sdp")

        def no_response() -> None:
            # 12.2.1.2: no answer to an in-dialog request ends the dialog.
            self.dialog.outgoing_invite_pending = False
            if on_done is not None:
                on_done(None)
            self.bye(reason="no-response")

        def on_response(response: Response) -> None:
            if response.status < 200:
                return
            self.dialog.outgoing_invite_pending = False
            if response.status < 300:
                ack = self.dialog.create_request("ACK", cseq=request.cseq[0])
                self._send_ack(ack)
                if response.body and self.listener is not None:
                    self.listener.on_answer(self, response.body)
            elif response.status in (408, 481):
                # 12.2.1.2: the dialog is gone (481) or unreachable (408).
                if on_done is not None:
                    on_done(response)
                if response.status == 481:
                    self._terminate("remote-gone")
                else:
                    self.bye(reason="no-response")
                return
            elif response.status == 491:
                # 14.1: the Call-ID owner waits 2.1-4 s, the other side 0-2 s.
                delay = random.uniform(2.1, 4.0) if self.role is Role.UAC else random.uniform(0, 2)
                self.ua.clock.callLater(delay, self.reinvite, sdp, on_done)
                return
            if on_done is not None:
                on_done(response)

        self._send_in_dialog(request, on_response, no_response)
        return True

    def _in_dialog_destination(self) -> Destination:
        from .ua import destination_for
        if self.role is Role.UAS and not self.dialog.route_set and self.source is not None:
            return Destination(self.source.transport, self.source.host, self.source.port)
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
        self.ua.layer.send_request(request, dest, on_response=on_response,
                                   on_timeout=on_timeout, on_transport_error=on_timeout)

    def _send_in_dialog_stateless(self, request: Request) -> None:
        dest = self._in_dialog_destination()
        if "Via" not in request.headers:
            request.headers.prepend("Via", self.ua.via(dest.transport))
        self.ua.transport.send_request(request, dest)

    def _terminate(self, reason: str, notify: bool = True) -> None:
        if self.state is SessionState.TERMINATED:
            return
        self.state = SessionState.TERMINATED
        self.end_reason = reason
        if self.dialog is not None and self.dialog.state is not DialogState.TERMINATED:
            self.dialog.terminate()
        self._stop_2xx()
        self.ua.forget_session(self)
        if notify:
            self._notify(reason)

    def _notify(self, reason: str) -> None:
        if self.listener is not None:
            self.listener.on_terminated(self, reason)
