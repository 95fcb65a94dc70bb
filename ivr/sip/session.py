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
from .prack import RSeqTracker, RSeqVerdict, parse_rseq, peer_supports, requires
from .prack_uas import ReliableProvisionals
from .session_refresh import SessionRefresh
from .session_timer import SessionTimerError, TooSmall, retry_interval, uas_check, uas_negotiate
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
        self.local_sdp: bytes | None = None  # our current session description
        self.reliable: ReliableProvisionals | None = None  # UAS: our reliable 1xx (RFC 3262)
        self._accept_after_prack: list[bytes | None] = []  # UAS: a 2xx waiting for a PRACK
        self._rseq = RSeqTracker()  # UAC: the reliable 1xx we have PRACKed
        self._se_retried = False  # UAC: the INVITE was re-sent after a 422
        self._refresh: SessionRefresh | None = None

    @property
    def refresh(self) -> SessionRefresh:
        """The dialog's session timer (RFC 4028), made on first use."""
        if self._refresh is None:
            self._refresh = SessionRefresh(self)
            self._refresh.min_se = getattr(self.ua, "min_se", self._refresh.min_se)
        return self._refresh

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
        if sdp:
            self.local_sdp = sdp
        if status > 100 and peer_supports(self.invite, "100rel"):
            self._reliable_provisionals().send(response)  # RFC 3262 3
        else:
            self.ua.layer.respond(self.invite_txn, response)

    @property
    def reliable_provisionals(self) -> bool:
        """Whether our 18x to this INVITE are sent reliably (the caller does 100rel), so
        one carrying SDP is early media the caller has acknowledged (RFC 3262)."""
        return self.role is Role.UAS and peer_supports(self.invite, "100rel")

    def _reliable_provisionals(self) -> ReliableProvisionals:
        if self.reliable is None:
            self.reliable = ReliableProvisionals(
                self.ua.clock, self.ua.timers,
                send=lambda r: self.ua.layer.respond(self.invite_txn, r),
                on_no_prack=self._no_prack, invite_cseq=self.invite.cseq[0],
                reliable_transport=self.source is not None and self.source.transport != "UDP")
        return self.reliable

    def _no_prack(self) -> None:
        """RFC 3262 3: 64*T1 without a PRACK: reject the INVITE with a 5xx."""
        log.info("call {cid}: no PRACK for our reliable provisional within 64*T1",
                 cid=self.call_id)
        self._accept_after_prack.clear()
        self.reject(504, "No PRACK")
        self.end_reason = "no-prack"
        self._notify("no-prack")

    def prack_received(self, txn, request: Request) -> None:
        """PRACK (RFC 3262 3): 200 for the reliable 1xx its RAck names, else 481."""
        if not self.dialog.check_remote_seq(request):
            self.ua.layer.respond(txn, make_response(request, 500, "Out of order CSeq"))
            return
        acked = None
        if self.role is Role.UAS and self.reliable is not None:
            acked = self.reliable.prack(request.headers.get("RAck"))
        if acked is None:
            self.ua.layer.respond(txn, make_response(request, 481))
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

    def accept(self, sdp: bytes | None) -> None:
        if self.state not in (SessionState.INCOMING, SessionState.EARLY):
            return
        if self.reliable is not None and self.reliable.blocks_2xx:
            # RFC 3262 3: no 2xx before the PRACK of a reliable 1xx that carried SDP.
            self._accept_after_prack[:] = [sdp]
            return
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
        self.state = SessionState.WAIT_ACK
        self._send_2xx(self.invite_txn, response)
        self.refresh.peer_allow = self.invite.headers.get_all("Allow")
        self.refresh.negotiated(timer)

    def _stop_reliable(self) -> None:
        if self.reliable is not None:
            self.reliable.stop()

    def reject(self, status: int, reason: str | None = None,
               extra: list[tuple[str, str]] | None = None) -> None:
        if self.state not in (SessionState.INCOMING, SessionState.EARLY):
            return
        response = make_response(self.invite, status, reason, to_tag=self.dialog.local_tag,
                                 extra=extra)
        self._final(response)
        self._stop_reliable()
        self.ua.layer.respond(self.invite_txn, response)
        self._terminate(f"rejected-{status}", notify=False)

    def _final(self, response: Response) -> None:
        if self.final_status is None:
            self.final_status, self.final_reason = response.status, response.reason

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

    def ua_allow(self) -> str:
        from .ua import ALLOW
        return ALLOW

    def ua_supported(self) -> str:
        from .ua import SUPPORTED
        return SUPPORTED

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
            self._stop_reliable()
            self.ua.layer.respond(self.invite_txn, response)
            self._terminate("cancelled")

    # -- UAC ---------------------------------------------------------------------------
    def send_invite(self) -> None:
        if self.local_sdp is None and self.invite.body:
            self.local_sdp = self.invite.body
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
            if status > 100 and requires(response, "100rel") and not self._prack(response):
                return  # a retransmitted (or out-of-order) reliable 1xx: discarded
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
        if status == 422 and not self._se_retried and not self._cancel_pending:
            self._se_retried = True
            if self._resend_with_min_se(response):
                return
        self._fail(status, response.reason)

    def _prack(self, response: Response) -> bool:
        """RFC 3262 4: PRACK a reliable 1xx in our (first) early dialog; ``False`` for a
        retransmission or one out of order, which is discarded."""
        rseq = parse_rseq(response.headers.get("RSeq"))
        if rseq is None or self.dialog is None or response.to.tag != self.dialog.remote_tag:
            return True  # not usable as reliable (or another fork): pass it up as it is
        verdict = self._rseq.check(rseq)
        if verdict is not RSeqVerdict.PRACK:
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

    def _resend_with_min_se(self, response: Response) -> bool:
        """RFC 4028 7.4: a 422 to our INVITE: send it again with its Min-SE."""
        asked = 0
        for value in self.invite.headers.get_raw("Session-Expires"):
            asked = int(value.split(";")[0]) if value.split(";")[0].strip().isdigit() else 0
        interval = retry_interval(response, asked)
        if interval is None:
            return False
        request = Request("INVITE", self.invite.uri, self.invite.headers.copy(), self.invite.body)
        request.headers.set("CSeq", f"{self.invite.cseq[0] + 1} INVITE")
        request.headers.pop_first("Via")
        request.headers.prepend("Via", self.ua.via(self.dest.transport))
        request.headers.set("Session-Expires", str(interval))
        request.headers.set("Min-SE", str(interval))
        self.invite = request
        self.refresh.min_se = interval
        self._provisional_seen = False
        self._cancel_sent = False
        self.send_invite()
        return True

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
        self._stop_timers()
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
            self._stop_reliable()
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

    def update_received(self, txn, request: Request) -> None:
        if not self.dialog.check_remote_seq(request):
            self.ua.layer.respond(txn, make_response(request, 500, "Out of order CSeq"))
            return
        timer = self._timer_check(txn, request)
        if timer is False:
            return
        offer = request.body if request.content_type == "application/sdp" else None
        extra = [("Contact", self.dialog.local_contact), ("Supported", self.ua_supported())]
        extra += timer[1]
        if offer is None:
            self.ua.layer.respond(txn, make_response(request, 200, extra=extra))
            self.refresh.negotiated(timer[0])
            return
        answer = self._offer(txn, request, offer)
        if answer is False:
            return
        self.dialog.target_refresh(request)
        if answer:
            extra.append(("Content-Type", "application/sdp"))
            self.local_sdp = answer
        self.ua.layer.respond(txn, make_response(request, 200, body=answer or b"", extra=extra))
        self.refresh.negotiated(timer[0])

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

    def reinvite(self, sdp: bytes, on_done=None, extra: list[tuple[str, str]] | None = None,
                 fail_reason: str = "no-response") -> bool:
        """Send a re-INVITE (hold / unhold).  Returns False if an INVITE is already in
        progress on the dialog in either direction (14.1).  ``on_done(response)`` gets
        the final response, or ``None`` when none came (the call is then hung up)."""
        if (self.state is not SessionState.CONFIRMED or self.dialog.outgoing_invite_pending
                or self.retransmission is not None):
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
                    self._terminate("remote-gone")
                else:
                    self.bye(reason=fail_reason)
                return
            elif response.status == 491:
                # 14.1: the Call-ID owner waits 2.1-4 s, the other side 0-2 s.
                delay = random.uniform(2.1, 4.0) if self.role is Role.UAC else random.uniform(0, 2)
                self.ua.clock.callLater(delay, self.reinvite, sdp, on_done, extra, fail_reason)
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
        if request.method not in ("ACK", "CANCEL") and "Supported" not in request.headers:
            request.headers.add("Supported", self.ua_supported())
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
        self._stop_timers()
        self.ua.forget_session(self)
        if notify:
            self._notify(reason)

    def _stop_timers(self) -> None:
        self._stop_reliable()
        self._accept_after_prack.clear()
        if self._refresh is not None:
            self._refresh.stop()

    def _notify(self, reason: str) -> None:
        if self.listener is not None:
            self.listener.on_terminated(self, reason)
