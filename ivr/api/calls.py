"""API-originated calls: originate a number into a dialplan flow, report and record it."""
from __future__ import annotations

import logging
from dataclasses import asdict

from .errors import ApiError
from ..call.telephony import LegInfo, UnknownTarget

log = logging.getLogger(__name__)


class CallService:
    def __init__(self, api) -> None:
        self.api = api
        self._meta: dict[str, dict] = {}

    def leg(self, call_id: str):
        leg = self.api.telephony.leg(call_id)
        if leg is None:
            raise ApiError(404, "not_found", f"no call {call_id!r}")
        return leg

    def describe(self, info: LegInfo) -> dict:
        out = asdict(info)
        out.update(self._meta.get(info.id, {}))
        return out

    def originate(self, to: str, flow: str, *, caller_id, timeout, send_digits,
                  variables: dict, callback_url: str | None) -> dict:
        api = self.api
        call: dict = {}
        early: list[tuple[str, dict]] = []

        def on_event(name: str, data: dict) -> None:
            if "id" not in call:
                early.append((name, data))
            elif api.webhooks is not None:
                api.webhooks.send(call["id"], callback_url, name, {"flow": flow, **(data or {})})

        try:
            leg = api.telephony.originate(to, caller_id=caller_id, timeout=timeout,
                                          on_event=on_event)
        except UnknownTarget as exc:
            raise ApiError(422, "unknown_target", f"cannot call {to}: {exc}") from None
        call["id"] = leg.id
        self._meta[leg.id] = {"flow": flow, "callback_url": callback_url,
                              "send_digits": send_digits}
        if api.webhooks is not None:
            api.webhooks.send(leg.id, callback_url, "initiated",
                              {"to": to, "flow": flow, "caller_id": caller_id})
        for name, data in early:
            on_event(name, data)
        leg.when_answered().addCallbacks(
            lambda _: self._answered(leg, flow, send_digits, variables),
            lambda f: None)  # reported through on_event("failed")
        leg.when_ended().addBoth(lambda result: self._ended(leg, flow, caller_id, to))
        return self.describe(leg.info())

    def _answered(self, leg, flow: str, digits: str | None, variables: dict) -> None:
        d = leg.send_digits(digits) if digits else None
        if d is None:
            d = self.api.telephony.run_flow(leg, flow, variables)
        else:
            d.addCallback(lambda _: self.api.telephony.run_flow(leg, flow, variables))

        def failed(f):
            log.error("flow %s on %s failed: %s", flow, leg.id, f.getErrorMessage())
            leg.hangup("flow-failed")
        d.addErrback(failed)

    def _ended(self, leg, flow: str, caller_id, to: str) -> None:
        api = self.api
        info = leg.info()
        if api.store is not None:
            outcome = "answered" if info.answered_at is not None else (
                info.end_reason if info.end_reason in ("busy", "no-answer", "rejected",
                                                       "cancelled") else "failed")
            cdr = {"leg_id": leg.id, "direction": "outbound", "role": "outbound",
                   "from_number": caller_id, "caller_id": caller_id, "to_number": to,
                   "setup_at": info.started_at, "answer_at": info.answered_at,
                   "end_at": info.ended_at if info.ended_at is not None else api.clock.seconds(),
                   "outcome": outcome, "end_reason": info.end_reason, "route": "api",
                   "flow": flow, "digits": info.variables.get("digits")}
            api.store.record(cdr, overwrite=False).addErrback(
                lambda f: log.error("CDR for %s failed: %s", leg.id, f.getErrorMessage()))
        api.clock.callLater(api.config.session_ttl, self._meta.pop, leg.id, None)
