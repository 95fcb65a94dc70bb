"""Running click-to-call sessions: start, find, report (webhooks, metrics, CDRs), forget.

In a farm (PostgreSQL mode, :meth:`SessionService.share`) every state change is also
written to the database, in one transaction with its event and its status webhook
(:meth:`ivr.store.sessions.SessionStore.record`; the outbox then delivers it from any
node), one write at a time per session so that the row never goes back to an older state.
Any node reads a session from there (:meth:`read`); ``DELETE`` of another node's session
writes a cancel request, which the owning node picks up in its housekeeping
(:meth:`poll_cancels`, every 2 s) and carries out as a local ``DELETE`` would.
"""
from __future__ import annotations

import logging
import secrets

from twisted.internet.defer import Deferred, succeed

from .click_to_call import Request, Session
from .errors import ApiError

log = logging.getLogger(__name__)

_LEG_OUTCOME = {"busy": "busy", "no-answer": "no-answer", "rejected": "rejected",
                "failed": "failed"}


def then(value, fn):
    """``fn(value)``, or chained on ``value`` if it is a Deferred (Klein takes either)."""
    if isinstance(value, Deferred):
        return value.addCallback(fn)
    return fn(value)


class SessionService:
    def __init__(self, api) -> None:
        self.api = api
        self._sessions: dict[str, Session] = {}
        self.shared = None            # SessionStore: the farm's sessions (PostgreSQL)
        self._writes: dict[str, Deferred] = {}   # per session: the last write queued

    def share(self, store) -> None:
        """Write every session to ``store`` (a SessionStore) and read other nodes' from it."""
        self.shared = store

    def start(self, request: Request) -> Session:
        session_id = "c2c_" + secrets.token_urlsafe(12)
        session = Session(session_id, request, self.api.telephony, self.api.clock,
                          listener=self._on_event)
        self._sessions[session_id] = session
        session.start()
        return session

    def stored(self, session: Session):
        """``session``, once every write queued for it so far is committed (a Deferred), in a
        farm: a 201 then means any node can already read it (a client whose next request a
        load balancer sends to another node must not get 404).  A write that failed was
        logged and does not hold the answer back.  Alone (no shared store): ``session``."""
        pending = self._writes.get(session.id)
        if self.shared is None or pending is None:
            return session
        done = Deferred()

        def release(result):
            done.callback(session)
            return result
        pending.addBoth(release)
        return done

    def get(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise ApiError(404, "not_found", f"no click-to-call session {session_id!r}")
        return session

    def all(self) -> list[Session]:
        return list(self._sessions.values())

    # -- the farm's view ----------------------------------------------------------

    def listing(self):
        """``GET /v1/click-to-call``: this node's sessions, and in a farm (a Deferred) every
        other node's from the database (newest first, without their events), each with its
        ``node``; only this node's own when the database cannot be read."""
        mine = [s.to_dict() for s in self._sessions.values()]
        if self.shared is None:
            return mine
        node = self.shared.node
        mine = [{**body, "node": node} for body in mine]
        ids = {body["id"] for body in mine}

        def merge(rows: list[dict]) -> list[dict]:
            return mine + [{**row["body"], "node": row["node"]} for row in rows
                           if row["session_id"] not in ids]

        def unreadable(failure) -> list[dict]:
            log.warning("listing the farm's click-to-call sessions: %s",
                        failure.getErrorMessage())
            return mine
        return self.shared.recent().addCallbacks(merge, unreadable)

    def read(self, session_id: str):
        """The session as the API shows it: this node's at once, another node's (a
        Deferred) from the database; 404 if no node has it."""
        session = self._sessions.get(session_id)
        if session is not None or self.shared is None:
            return self.get(session_id).to_dict()
        return self._stored(session_id)

    def cancel(self, session_id: str):
        """``DELETE``: this node's session is cancelled at once (200); another node's gets
        a cancel request (202, its owner cancels it within a housekeeping round)."""
        session = self._sessions.get(session_id)
        if session is not None or self.shared is None:
            session = self.get(session_id)
            if not session.cancel():
                raise ApiError(409, "already_ended", f"session {session_id} has already ended")
            return 200, session.to_dict()

        def asked(node):
            if node is None:   # gone, or already ended: say which
                return self._stored(session_id).addCallback(_already_ended, session_id)
            return self._stored(session_id).addCallback(
                lambda body: (202, {**body, "cancel_requested": True}))
        return self.shared.request_cancel(session_id, self.api.clock.seconds()).addCallback(
            asked)

    def poll_cancels(self) -> Deferred:
        """Cancel this node's sessions that another node asked to cancel (housekeeping)."""
        if self.shared is None:
            return succeed([])

        def got(ids: list[str]) -> list[str]:
            done = []
            for session_id in ids:
                session = self._sessions.get(session_id)
                if session is not None and session.cancel():
                    log.info("click-to-call %s cancelled at another node's request",
                             session_id)
                    done.append(session_id)
            return done
        return self.shared.cancel_requests().addCallbacks(got, lambda f: [])  # next round

    def _stored(self, session_id: str) -> Deferred:
        def found(row):
            if row is None:
                raise ApiError(404, "not_found", f"no click-to-call session {session_id!r}")
            return {**row["body"], "events": row["events"], "node": row["node"]}
        return self.shared.get(session_id).addCallback(found)

    def _write(self, session: Session, event: dict) -> None:
        """The state change, its event and its webhook in one transaction, after the
        session's previous write."""
        api, request = self.api, session.request
        outbox = getattr(api.webhooks, "outbox", None) if api.webhooks is not None else None
        url = request.callback_url if outbox is not None else None
        body = {k: v for k, v in session.to_dict().items() if k != "events"}
        data = {"type": "click-to-call", **event}
        final = session.final
        previous = self._writes.get(session.id) or succeed(None)

        def write(_):
            return self.shared.record(session.id, session.state.value, final, body,
                                      session.created_at, event, url, data)

        def written(_):
            if outbox is not None and url:
                outbox.poll()

        def failed(failure):
            log.error("click-to-call %s: writing event %s failed: %s", session.id,
                      event.get("seq"), failure.getErrorMessage())
        d = previous.addCallback(write)
        d.addCallbacks(written, failed)
        self._writes[session.id] = d
        if final:
            d.addBoth(lambda _: self._writes.pop(session.id, None)
                      if self._writes.get(session.id) is d else None)
        if outbox is None and api.webhooks is not None:
            api.webhooks.send(session.id, request.callback_url, event["event"], data)

    def _on_event(self, session: Session, event: dict) -> None:
        api = self.api
        if self.shared is not None:
            self._write(session, event)
        elif api.webhooks is not None:
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


def _already_ended(body: dict, session_id: str):
    raise ApiError(409, "already_ended", f"session {session_id} has already ended")


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
