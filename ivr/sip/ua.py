"""The SIP user agent core (the transaction user): dialogs, INVITE sessions, in-dialog
requests, CANCEL, OPTIONS and the answers RFC 3261 asks of a UAS.

The application (the call layer) sees :class:`InviteSession` objects and never a
transaction.  Incoming calls are offered to ``app.incoming_call(session)``; outgoing
calls start with :meth:`UserAgent.invite`.
"""
from __future__ import annotations

import secrets
from typing import Protocol

from ..logging import Logger  # twisted's, with a cheaper emit (per-call lines)

from .capabilities import ACCEPT, ALLOW, SUPPORTED, USER_AGENT
from .headers import Headers
from .message import Request, Response, make_response
from .routing import destination_for, host_for_uri
from .session import InviteSession, SessionListener
from .session_table import SessionState
from .session_timer import (ABSOLUTE_MIN_SE, DEFAULT_SESSION_EXPIRES, SessionTimerError,
                            uac_request_headers, uas_check)
from .timers import TimerConfig
from .transaction_layer import TransactionLayer
from .transport import Destination, Source
from .uri import SipUri, parse_name_addr, parse_uri
from . import validate
from .validate import EXTENSIONS, should_accept_response

__all__ = ["UserAgent", "Application", "check_request", "destination_for", "new_branch",
           "new_tag", "ALLOW", "ACCEPT", "SUPPORTED", "USER_AGENT"]

log = Logger(namespace="ivr.sip.ua")


def check_request(request: Request):
    """RFC 3261 8.2's checks with the option tags we implement (no 420 for them)."""
    return validate.check_request(request, extensions=EXTENSIONS)


class Application(Protocol):
    def incoming_call(self, session: InviteSession) -> None: ...


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


class UserAgent:
    def __init__(self, clock, transport, app: Application | None, host: str, port: int,
                 timers: TimerConfig = TimerConfig(), *, registrar=None, invite_auth=None,
                 throttle=None) -> None:
        self.clock = clock
        self.transport = transport
        self.app = app
        self.host = host
        self.port = port
        self.timers = timers
        self.layer = TransactionLayer(clock, transport, self, timers)
        self.sessions: dict[tuple, InviteSession] = {}  # dialog id -> session
        self.pending_uas: dict[object, InviteSession] = {}  # INVITE server txn -> session
        self.draining = False
        self.retry_after = 30
        # Who may register and call (ivr/sip/registrar.py, authenticator.py, throttle.py);
        # None: no registrar (REGISTER gets 405), every INVITE accepted, no bans.
        self.registrar = registrar
        self.invite_auth = invite_auth
        self.throttle = throttle
        # RFC 4028: the interval we ask for / offer and the smallest we accept.
        self.session_expires = DEFAULT_SESSION_EXPIRES
        self.min_se = ABSOLUTE_MIN_SE

    def serve(self, app: Application) -> None:
        """Hand incoming calls to ``app``.  The server binds its dialplan service here once
        it is built: the application lives a layer above and is built after the UA."""
        self.app = app

    # -- addresses ---------------------------------------------------------------------
    def contact(self, transport: str = "UDP", user: str = "ivr") -> str:
        suffix = {"TCP": ";transport=tcp", "TLS": ";transport=tls", "WS": ";transport=ws",
                  "WSS": ";transport=wss"}.get(transport, "")
        return f"<sip:{user}@{host_for_uri(self.host)}:{self._port(transport)}{suffix}>"

    def via(self, transport: str = "UDP") -> str:
        return (f"SIP/2.0/{transport} {host_for_uri(self.host)}:{self._port(transport)}"
                f";branch={new_branch()};rport")

    def _port(self, transport: str) -> int:
        """Our port for ``transport``: TLS listens on a port of its own (``--sips``),
        WebSocket on the HTTP(S) port."""
        if transport in ("WS", "WSS"):
            return getattr(self.transport, "ws_ports", {}).get(transport) or self.port
        tls_port = getattr(self.transport, "tls_port", None) if transport == "TLS" else None
        return tls_port or self.port

    # -- from the transport ------------------------------------------------------------
    def receive(self, message, source: Source) -> None:
        """Every parsed message from the transport, through the one filter in front of
        the transaction layer (:meth:`_admit`)."""
        if self._admit(message, source):
            self.layer.receive(message, source)

    def _admit(self, message, source: Source) -> bool:
        """The one check of what comes in, before any transaction exists: requests from a
        banned source are ignored; a response that is not for us is dropped (RFC 3261
        8.1.3, 18.1.2); a request RFC 3261 8.2 refuses (400, 416, 420, 415, 406, 501) is
        answered statelessly -- no 100 Trying before it and nothing kept for a request
        that may not even match.  An ACK is never answered: it goes on to be matched."""
        if isinstance(message, Response):
            if should_accept_response(message):
                return True
            log.info("dropping response {r!r} from {h}:{p}", r=message, h=source.host, p=source.port)
            return False
        if self.throttle is not None:
            client = self.throttle.client_address(source.host, message)
            if self.throttle.is_banned(client, self.clock.seconds()):
                if client != source.host and message.method != "ACK":
                    # relayed by a trusted proxy: answered, or the proxy would take our
                    # silence for a dead node (Kamailio's dispatcher fails over)
                    self.transport.send_response(make_response(
                        message, 403, "Banned", to_tag=None if _has_to_tag(message)
                        else new_tag()), source)
                return False  # a source that failed authentication too often is ignored a while
        if message.method == "ACK":
            return True
        rejection = check_request(message)
        if rejection is None:
            return True
        log.info("rejecting {m} from {h}: {s} {r}", m=message.method, h=source.host,
                 s=rejection.status, r=rejection.reason)
        response = make_response(message, rejection.status, rejection.reason,
                                 to_tag=None if _has_to_tag(message) else new_tag(),
                                 extra=list(rejection.headers))
        self.transport.send_response(response, source)
        return False

    # -- TU interface used by the transaction layer ------------------------------------
    def request_received(self, txn, request: Request, source: Source) -> None:
        """A new request in its server transaction; :meth:`_admit` has checked it."""
        handler = getattr(self, "_on_" + request.method.lower(), None)
        if handler is None:
            self._reply(txn, request, 405, extra=[("Allow", ALLOW)])
            return
        handler(txn, request, source)

    def _reply(self, txn, request: Request, status: int, reason: str | None = None,
               extra: list[tuple[str, str]] | None = None, to_tag: str | None = None) -> None:
        """A response outside any session.  8.2.6.2: a UAS adds a To tag when the
        request has none (the ACK for a non-2xx final response then matches it)."""
        try:
            tagged = request.to.tag is not None
        except Exception:
            tagged = True  # unreadable To (a 400): copy it as it came
        if to_tag is None and not tagged and status > 100:
            to_tag = new_tag()
        self.layer.respond(txn, make_response(request, status, reason, to_tag=to_tag, extra=extra))

    def ack_for_2xx(self, request: Request, source: Source) -> None:
        session = self._session_for(request)
        if session is not None:
            session.ack_received(request)

    def stray_response(self, response: Response, source: Source) -> None:
        # A retransmitted 2xx after the client transaction ended: re-send our ACK.
        try:
            key = (response.call_id, response.from_.tag, response.to.tag)
        except Exception:
            return
        session = self.sessions.get(key)
        if session is not None:
            session.retransmitted_2xx(response)

    # -- requests ----------------------------------------------------------------------
    def _on_invite(self, txn, request: Request, source: Source) -> None:
        if request.to.tag:
            session = self._session_for(request)
            if session is None:
                self._reply(txn, request, 481)
                return
            session.reinvite_received(txn, request, source)
            return
        if self.draining:
            self._reply(txn, request, 503, extra=[("Retry-After", str(self.retry_after))])
            return
        caller = None
        if self.invite_auth is not None:
            result = self.invite_auth.check(request, source)
            if result.drop:
                return
            if result.response is not None:
                self.layer.respond(txn, result.response)
                if result.response.status != 407:
                    log.info("call {cid} INVITE from {h}:{p} refused: {s} {r}",
                             cid=request.call_id, h=source.host, p=source.port,
                             s=result.response.status, r=result.response.reason)
                return
            caller = result.caller
        try:
            too_small = uas_check(request, self.min_se)
        except SessionTimerError as exc:
            self._reply(txn, request, 400, f"Bad Session-Expires or Min-SE ({exc})"[:80])
            return
        if too_small is not None:  # RFC 4028 8.1
            self._reply(txn, request, 422, extra=[("Min-SE", str(too_small.min_se))])
            return
        session = InviteSession.incoming(self, txn, request, source)
        session.caller = caller
        self.pending_uas[txn] = session
        self.sessions[session.dialog.id] = session
        log.info("call {cid} INVITE {uri} from {frm} ({h}:{p})", cid=request.call_id,
                 uri=request.uri, frm=request.headers.get("From"), h=source.host, p=source.port)
        try:
            self.app.incoming_call(session)
        except Exception:
            log.failure("application failed on incoming call {cid}", cid=request.call_id)
            if session.state in (SessionState.INCOMING, SessionState.EARLY):
                session.reject(500)

    def _on_ack(self, txn, request: Request, source: Source) -> None:
        self.ack_for_2xx(request, source)

    def _on_cancel(self, txn, request: Request, source: Source) -> None:
        invite_txn = self.layer.cancel_matching(request)
        if invite_txn is None:
            self._reply(txn, request, 481)
            return
        session = self.pending_uas.get(invite_txn)
        # 9.2: the 200 for CANCEL carries the To tag of the responses to the INVITE.
        tag = session.dialog.local_tag if session is not None else None
        self._reply(txn, request, 200, to_tag=tag)
        if session is not None:
            session.cancel_received(request)

    def _on_bye(self, txn, request: Request, source: Source) -> None:
        session = self._session_for(request)
        if session is None:
            self._reply(txn, request, 481)
            return
        session.bye_received(txn, request)

    def _on_options(self, txn, request: Request, source: Source) -> None:
        extra = [("Allow", ALLOW), ("Accept", ACCEPT), ("Accept-Language", "en"),
                 ("Supported", SUPPORTED + (", path" if self.registrar is not None else ""))]
        tag = None if request.to.tag else new_tag()
        response = make_response(request, 503 if self.draining else 200, to_tag=tag, extra=extra)
        self.layer.respond(txn, response)

    def _on_update(self, txn, request: Request, source: Source) -> None:
        session = self._session_for(request)
        if session is None:
            self._reply(txn, request, 481)
            return
        session.update_received(txn, request)

    def _on_prack(self, txn, request: Request, source: Source) -> None:
        self._in_dialog(txn, request, "prack_received")

    def _on_info(self, txn, request: Request, source: Source) -> None:
        session = self._session_for(request)
        if session is None:
            self._reply(txn, request, 481)
            return
        session.info_received(txn, request)

    def _on_refer(self, txn, request: Request, source: Source) -> None:
        self._in_dialog(txn, request, "refer_received")

    def _on_notify(self, txn, request: Request, source: Source) -> None:
        self._in_dialog(txn, request, "notify_received")

    def _in_dialog(self, txn, request: Request, method: str) -> None:
        session = self._session_for(request)
        if session is None:
            self._reply(txn, request, 481)
            return
        getattr(session, method)(txn, request)

    def _on_register(self, txn, request: Request, source: Source) -> None:
        if self.registrar is None:
            # Not a registrar: RFC 3261 10.3 / RFC 4475 3.3.7 say 405.
            self._reply(txn, request, 405, extra=[("Allow", ALLOW)])
            return
        response = self.registrar.handle(request, source)
        if response is not None:  # None: a banned source, ignored
            self.layer.respond(txn, response)
            if response.status != 401:  # challenges are routine; outcomes are worth a line
                try:
                    user = request.to.uri.user
                except Exception:
                    user = None
                log.info("REGISTER {user} from {h}:{p}: {status} {reason}", user=user,
                         h=source.host, p=source.port, status=response.status,
                         reason=response.reason)

    def _session_for(self, request: Request) -> InviteSession | None:
        try:
            key = (request.call_id, request.to.tag, request.from_.tag)
        except Exception:
            return None
        return self.sessions.get(key)

    # -- outgoing calls ----------------------------------------------------------------
    def invite(self, target: str, listener: SessionListener, sdp: bytes | None,
               from_user: str = "ivr", from_display: str | None = None,
               dest: Destination | None = None, credentials: tuple[str, str] | None = None,
               extra: list[tuple[str, str]] | None = None,
               call_id: str | None = None, prack: bool = False) -> InviteSession:
        """Send an INVITE.  It always offers session timers (``Supported: timer`` and
        our Session-Expires); ``prack=True`` also offers reliable provisionals
        (``Supported: 100rel``, RFC 3262), as the server's outbound legs do.  A reliable
        1xx is PRACKed either way."""
        uri = parse_uri(target)
        if not isinstance(uri, SipUri):
            raise ValueError(f"cannot call {target!r}: only sip: URIs")
        # RFC 3327: a phone registered through a proxy (its Path) is reached through it
        route_set_for = getattr(self.registrar, "route_set_for", None)
        routes = route_set_for(target) if route_set_for is not None else ()
        if dest is None:
            dest = destination_for(parse_name_addr(routes[0]).uri if routes else uri)
        tag = new_tag()
        display = f'"{from_display}" ' if from_display else ""
        headers = Headers()
        headers.add("Via", self.via(dest.transport))
        headers.add("Max-Forwards", "70")
        # Our address *with our port*: a UA on a shared host (ivr phone next to ivr serve)
        # must not look like it claims one of the server's users (sip:x@server-ip:5060).
        headers.add("From", f"{display}<sip:{from_user}@{host_for_uri(self.host)}:{self.port}>"
                            f";tag={tag}")
        headers.add("To", f"<{target}>")
        headers.add("Call-ID", call_id or self.new_call_id())
        headers.add("CSeq", "1 INVITE")
        headers.add("Contact", self.contact(dest.transport))
        headers.add("Allow", ALLOW)
        headers.add("Supported", SUPPORTED if prack else "timer")
        headers.add("User-Agent", USER_AGENT)
        for name, value in extra or ():
            headers.add(name, value)
        for route in routes if "Route" not in headers else ():
            headers.add("Route", route)
        if "Session-Expires" not in headers:
            for name, value in uac_request_headers(self.session_expires, self.min_se):
                headers.add(name, value)
        if sdp:
            headers.add("Content-Type", "application/sdp")
        request = Request("INVITE", target, headers, sdp or b"")
        session = InviteSession.outgoing(self, request, dest, listener, credentials)
        session.send_invite()
        return session

    def new_call_id(self) -> str:
        return f"{secrets.token_hex(10)}@{self.host}"

    def register_session(self, session: InviteSession) -> None:
        self.sessions[session.dialog.id] = session

    def forget_session(self, session: InviteSession) -> None:
        if session.dialog is not None:
            self.sessions.pop(session.dialog.id, None)
        for txn, s in list(self.pending_uas.items()):
            if s is session:
                del self.pending_uas[txn]

    def active_sessions(self) -> int:
        return len({id(s) for s in self.sessions.values()})


def _has_to_tag(request: Request) -> bool:
    try:
        return bool(request.to.tag)
    except Exception:
        return False

