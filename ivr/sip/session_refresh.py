"""One dialog's session timer at work (RFC 4028): runs :class:`SessionTimer`'s actions on
the UA's clock, sends the refreshes (UPDATE when the peer allows it, else a re-INVITE
with the unchanged session) and ends the call when a refresh fails or none arrives.

The session (:class:`ivr.sip.session.InviteSession`) calls :meth:`negotiated` after every
accepted INVITE / UPDATE in either direction, and :meth:`stop` when it ends.  No Twisted
import: the clock comes from the session's UA.
"""
from __future__ import annotations

from twisted.logger import Logger

from .action_timers import ActionTimers
from .message import Response
from .session_timer import (
    ABSOLUTE_MIN_SE,
    Expired,
    Negotiated,
    SendRefresh,
    SessionTimer,
    SessionTimerError,
    refresh_method,
    retry_interval,
    session_expires_value,
    uac_negotiate,
)

log = Logger(namespace="ivr.sip.session")

#: end_reason of a call whose peer stopped refreshing, and of one whose refresh failed.
EXPIRED = "session-timer-expired"
REFRESH_FAILED = "session-timer-refresh-failed"


def _stopped(name) -> None:
    """A stopped refresh's timers: none is left to fire."""


class SessionRefresh:
    def __init__(self, session) -> None:
        self.session = session
        self.machine = SessionTimer()
        self.slots = ActionTimers(session.ua.clock, self._fired)
        self.min_se = ABSOLUTE_MIN_SE
        self.method: str | None = None  # UPDATE or INVITE, chosen at the first refresh
        self.peer_allow: list[str] = []

    @property
    def active(self) -> bool:
        return self.machine.active

    @property
    def we_refresh(self) -> bool:
        return self.machine.state.name == "REFRESHING"

    def request_headers(self) -> list[tuple[str, str]]:
        """Session-Expires (and Min-SE) for a re-INVITE / UPDATE we send while the
        timer runs; ``refresher`` is relative to that request (uac = us)."""
        if not self.active:
            return []
        refresher = "uac" if self.we_refresh else "uas"
        extra = [("Session-Expires", session_expires_value(self.machine.interval, refresher))]
        if self.min_se != ABSOLUTE_MIN_SE:
            extra.append(("Min-SE", str(self.min_se)))
        return extra

    def negotiated(self, outcome: Negotiated | None) -> None:
        if outcome is None:
            if self.active:  # the peer's 2xx (or request) turned the timer off
                self._run(self.machine.stop())
                self.machine = SessionTimer()
            return
        self._run(self.machine.negotiated(outcome))

    def response_2xx(self, response: Response) -> None:
        """The 2xx to an INVITE / UPDATE we sent."""
        try:
            self.negotiated(uac_negotiate(response))
        except SessionTimerError as exc:
            log.info("call {cid}: ignoring a bad Session-Expires in a 2xx: {e}",
                     cid=self.session.call_id, e=exc)

    def stop(self) -> None:
        """The session ended: no timer runs again, and the slots no longer hold our bound
        method (so the ended session and this are freed by reference counting)."""
        self._run(self.machine.stop())
        self.slots.cancel_all()
        self.slots.on_fired = _stopped

    def _fired(self, name) -> None:
        self._run(self.machine.timer_fired(name))

    def _run(self, actions: list) -> None:
        for action in self.slots.run(actions):
            if isinstance(action, SendRefresh):
                self._refresh()
            elif isinstance(action, Expired):
                log.info("call {cid}: no session refresh from the peer, ending the call",
                         cid=self.session.call_id)
                self.session.bye(reason=EXPIRED)

    # -- sending a refresh -------------------------------------------------------------
    def _refresh(self) -> None:
        session = self.session
        if self.method is None:
            self.method = refresh_method(self.peer_allow)
        extra = self.request_headers()
        if self.method == "UPDATE":
            try:
                session.send_in_dialog("UPDATE", extra=extra, on_response=self._on_response,
                                       on_timeout=self._failed)
            except Exception:
                log.failure("call {cid}: sending the session refresh failed", cid=session.call_id)
            return
        session.reinvite(session.local_sdp or b"", on_done=self._on_reinvite_done,
                         extra=extra, fail_reason=REFRESH_FAILED)

    def _on_response(self, response: Response) -> None:
        if response.status < 200:
            return
        if response.status < 300:
            self.response_2xx(response)
            return
        self._on_failure(response)

    def _on_reinvite_done(self, response: Response | None) -> None:
        # None, 408 and 481: the session has already ended the call; a 2xx renegotiated.
        if response is None or response.status < 300 or response.status in (408, 481):
            return
        self._on_failure(response)

    def _on_failure(self, response: Response) -> None:
        if response.status == 422:
            interval = retry_interval(response, self.machine.interval or 0)
            if interval is not None:
                self.min_se = interval
                self.machine.interval = interval
                self._refresh()
                return
        if response.status in (405, 501) and self.method == "UPDATE":
            self.method = "INVITE"  # the peer does not do UPDATE after all
            self._refresh()
            return
        log.info("call {cid}: session refresh answered {s}, ending the call",
                 cid=self.session.call_id, s=response.status)
        self._failed()

    def _failed(self) -> None:
        self.session.bye(reason=REFRESH_FAILED)
