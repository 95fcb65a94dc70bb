"""Running click-to-call sessions: start, find, report (webhooks, metrics, CDRs), forget."""
from __future__ import annotations

import logging
import secrets

from .click_to_call import Request, Session
from .errors import ApiError

log = logging.getLogger(__name__)

_LEG_OUTCOME = {"busy": "busy", "no-answer": "no-answer", "rejected": "rejected",
                "failed": "failed"}


class SessionService:
    def __init__(self, api) -> None:
        self.api = api
        self._sessions: dict[str, Session] = {}

    def start(self, request: Request) -> Session:
        session_id = "c2c_" + secrets.token_urlsafe(12)
        session = Session(session_id, request, self.api.telephony, self.api.clock,
                          listener=self._on_event)
        self._sessions[session_id] = session
        session.start()
        return session

    def get(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise ApiError(404, "not_found", f"no click-to-call session {session_id!r}")
        return session

    def all(self) -> list[Session]:
        return list(self._sessions.values())

    def _on_event(self, session: Session, event: dict) -> None:
        api = self.api
        if api.webhooks is not None:
            api.webhooks.send(session.id, session.request.callback_url, event["event"],
                              {"type": "click-to-call", **event})
        if not session.final:
            return
        if api.metrics is not None:
            api.metrics.session_ended(session.state.value, session.reason)
        if api.store is not None:
            for cdr in session_cdrs(session, api.clock.seconds()):
                api.store.record(cdr, overwrite=False).addErrback(
                    lambda f: log.error("CDR for %s failed: %s", session.id, f.getErrorMessage()))
        api.clock.callLater(api.config.session_ttl, self._sessions.pop, session.id, None)


def session_cdrs(session: Session, now: float) -> list[dict]:
    """What the session knows about its legs (the call core fills in the rest)."""
    out = []
    req = session.request
    failing = (session.reason or "").split("-", 1)
    for role, leg, caller in (("agent", session.agent, req.agent_caller_id or req.customer),
                              ("customer", session.customer, req.caller_id)):
        if leg is None:
            continue
        info = leg.info()
        if info.answered_at is not None:
            outcome = "answered"
        elif failing[0] == role and len(failing) == 2:
            outcome = _LEG_OUTCOME.get(failing[1], "failed")
        else:
            outcome = "cancelled"
        out.append({
            "leg_id": leg.id, "session_id": session.id, "role": role,
            "direction": "outbound", "from_number": caller, "caller_id": caller,
            "to_number": req.agent if role == "agent" else req.customer,
            "setup_at": info.started_at, "answer_at": info.answered_at,
            "end_at": info.ended_at if info.ended_at is not None else now,
            "outcome": outcome, "end_reason": info.end_reason or session.reason,
            "hangup_side": session.hangup_side, "route": "click-to-call",
            "recording": session.recordings.get(role),
            "extra": {"session_state": session.state.value, "session_reason": session.reason},
        })
    return out
