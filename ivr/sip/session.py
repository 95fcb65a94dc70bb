"""One INVITE dialog usage (a call leg's signalling), in either role, as a table-driven
machine: every call from the call layer and every request, response, ACK or timer from
below is an :class:`~ivr.sip.session_table.Event`, looked up in the one table of
:mod:`ivr.sip.session_table`; an event the state does not allow raises
:class:`SessionError` when it is our own misuse, and gets the RFC's answer (or is logged
and dropped) when it comes from the peer.

UAS (:mod:`ivr.sip.session_uas`): ring / accept / reject an incoming INVITE; retransmit
the 2xx until ACK (RFC 3261 13.3.1.4) and send BYE if none comes; CANCEL before the final
answer gives 487.  UAC (:mod:`ivr.sip.session_uac`): send the INVITE, answer digest
challenges, ACK 2xx (and re-ACK retransmissions), CANCEL (deferred until a provisional
arrives, 9.1).  Both (:mod:`ivr.sip.session_in_dialog`): BYE either way, re-INVITE /
UPDATE offers (hold, unhold) answered through the listener, 491 on glare (14.1) and a
randomised retry of our own re-INVITE.
"""
from __future__ import annotations

import random
import secrets

from twisted.logger import Logger

from .capabilities import ALLOW, SUPPORTED
from .dialog import Dialog, DialogState
from .message import Request, Response, make_response
from .prack import RSeqTracker
from .prack_uas import ReliableProvisionals
from .routing import host_for_uri
from .session_in_dialog import InDialog
from .session_listener import (MAX_WARNING_TEXT, OfferRejected, SessionListener,  # noqa: F401
                               warning_header)
from .session_refresh import SessionRefresh
from .session_table import Event, PeerMisuse, Role, SessionError, SessionState, transition
from .session_uac import UacSide
from .session_uas import UasSide
from .transport import Destination, Source

__all__ = ["InviteSession", "Role", "SessionState", "SessionError", "PeerMisuse",
           "OfferRejected", "SessionListener", "warning_header", "MAX_WARNING_TEXT"]

log = Logger(namespace="ivr.sip.session")


class InviteSession(UasSide, UacSide, InDialog):
    # Slots for the state every session has: at 30 attributes an instance dict is past the
    # size CPython keeps compact and costs ~1.6 KB per call (bench MEM).  The mixins have no
    # slots, so an instance still has a dict for anything else set on it.
    __slots__ = (
        "ua", "role", "listener", "state", "dialog", "invite", "invite_txn", "source", "dest",
        "retransmission", "_2xx_cseq", "_acks", "_bye_reason", "credentials", "_auth_tried",
        "_cancel_pending", "_cancel_sent", "_provisional_seen", "end_reason", "remote_sdp",
        "caller", "final_status", "final_reason", "local_sdp", "reliable",
        "_accept_after_prack", "_rseq", "_se_retried", "_refresh", "_reinvite_retry",
    )

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
        self.retransmission = None  # our 2xx to an INVITE, re-sent until its ACK
        self._2xx_cseq: int | None = None  # the INVITE whose 2xx is being retransmitted
        self._acks: dict[int, Request] = {}  # our ACKs for 2xx, by CSeq number (re-ACK)
        self._bye_reason: str | None = None  # a hang-up waiting for the ACK of our 2xx
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
        self._reinvite_retry = None  # our re-INVITE's retry after a 491 (14.1)

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

    @property
    def refresh(self) -> SessionRefresh:
        """The dialog's session timer (RFC 4028), made on first use."""
        if self._refresh is None:
            self._refresh = SessionRefresh(self)
            self._refresh.min_se = getattr(self.ua, "min_se", self._refresh.min_se)
        return self._refresh

    # -- the machine -------------------------------------------------------------------
    def _fire(self, event: Event, *args):
        """Run ``event`` through the table: move to the row's state, then call its
        handler (so a listener it calls sees the new state) and return what that returns.
        Raises SessionError (ours) or PeerMisuse (theirs) if the state does not allow it."""
        handler, following = transition(self.role, self.state, event)
        self.state = following
        return getattr(self, handler)(*args) if handler is not None else None

    def _from_below(self, event: Event, *args) -> None:
        """An event from the peer or a lower layer: one the state does not allow is
        logged and dropped (nothing is owed to it)."""
        try:
            self._fire(event, *args)
        except PeerMisuse as exc:
            log.info("call {cid}: dropped: {e}", cid=self.call_id, e=exc)

    def _receive(self, event: Event, txn, request: Request, *args) -> None:
        """A request in the dialog.  Out of order CSeq gets 500 (12.2.2); every state has
        a row for every in-dialog request, so the request always gets its answer."""
        if (self.state is not SessionState.TERMINATED and self.dialog is not None
                and not self.dialog.check_remote_seq(request)):
            self.ua.layer.respond(txn, make_response(request, 500, "Out of order CSeq"))
            return
        self._fire(event, txn, request, *args)

    # -- shared by the sides -------------------------------------------------------------
    def _final(self, response: Response) -> None:
        if self.final_status is None:
            self.final_status, self.final_reason = response.status, response.reason

    def _end(self, reason: str, notify: bool = True) -> None:
        """The session is over: stop every timer, leave the UA's tables, tell the listener."""
        self.state = SessionState.TERMINATED
        self.end_reason = reason
        if self.dialog is not None and self.dialog.state is not DialogState.TERMINATED:
            self.dialog.terminate()
        self._stop_2xx()
        self._stop_reliable()
        self.reliable = None  # its callbacks are our bound methods (a cycle once ended)
        self._accept_after_prack.clear()
        if self._refresh is not None:
            refresh, self._refresh = self._refresh, None
            refresh.stop()
        if self._reinvite_retry is not None and self._reinvite_retry.active():
            self._reinvite_retry.cancel()
        self.ua.forget_session(self)
        if notify:
            self._notify(reason)

    def _notify(self, reason: str) -> None:
        """Tell the listener the session ended, and drop it: it is told nothing more, and
        a listener that refers back to us (a call leg) is then freed by reference
        counting, not left in a cycle for the garbage collector."""
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.on_terminated(self, reason)

    def _retry_after(self) -> int:
        """Retry-After of our 500 to an INVITE that came too early (14.2): 0-10 s."""
        return random.randint(0, 10)

    def _retry_reinvite_later(self, sdp: bytes, on_done, extra, fail_reason: str) -> None:
        """14.1: after a 491 the Call-ID's owner (the UAC) waits 2.1-4 s, the other 0-2 s."""
        delay = random.uniform(2.1, 4.0) if self.role is Role.UAC else random.uniform(0, 2)
        self._reinvite_retry = self.ua.clock.callLater(delay, self.reinvite, sdp, on_done,
                                                       extra, fail_reason)

    def ua_allow(self) -> str:
        return ALLOW

    def ua_supported(self) -> str:
        return SUPPORTED

    def warning(self, text: str, code: int = 399) -> tuple[str, str]:
        """A Warning header from this UA (its host:port is the warn-agent)."""
        return warning_header(f"{host_for_uri(self.ua.host)}:{self.ua.port}", text, code)
