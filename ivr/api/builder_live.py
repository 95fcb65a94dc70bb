"""The Flow Builder's live view (admin keys, like the rest of the builder):

    GET /v1/builder/calls        active legs, then recent CDRs (?limit=, default 50)
    GET /v1/builder/trace/{id}   one call's path through the plans (call_trace.py)

A live leg's trace comes from its path log as it stands (``Call.path``); a finished one's
from its CDR (``extra.path``).  An id that is neither is a 404 JSON error.
"""
from __future__ import annotations

from twisted.internet.defer import succeed

from .call_trace import trace_of_cdr, trace_steps
from .dialplan_files import authorise_admin
from .errors import ApiError

MAX_ID = 256
MAX_LIST = 500


def _display(api):
    files = api.dialplan_files
    if files is None:
        return lambda f: f.rsplit("/", 1)[-1]
    return files.display


def _live(api, call_id: str):
    """The live leg with this id and its path log, or None."""
    try:
        leg = api.telephony.leg(call_id)
    except Exception:  # a telephony that cannot look this id up: not a live leg
        return None
    if leg is None:
        return None
    info = leg.info()
    if info.state == "ended":
        return None  # its CDR is (or is about to be) the record
    return leg, info


def _trace_of_leg(api, leg, info) -> dict:
    path = list(getattr(leg, "path", None) or ())
    return {"id": info.id, "source": "live", "active": True, "state": info.state,
            "flow": info.flow, "route": info.variables.get("route"),
            "digits": list(getattr(leg, "gathered", None) or ()),
            "steps": trace_steps(path, _display(api)), "path": path}


def _trace_of_cdr(api, cdr: dict) -> dict:
    return trace_of_cdr(cdr, _display(api))


def find_trace(api, call_id: str):
    """Deferred: the trace of a live leg or a finished call; ApiError 404 if neither."""
    if not call_id or len(call_id) > MAX_ID or any(ord(c) < 32 for c in call_id):
        raise ApiError(404, "not_found", "no call with that id")
    live = _live(api, call_id)
    if live is not None:
        return succeed(_trace_of_leg(api, *live))
    if api.store is None:
        raise ApiError(404, "not_found", f"no active call {call_id!r} (no CDR store)")

    def found(cdr):
        if not cdr:
            raise ApiError(404, "not_found", f"no active call or CDR with id {call_id!r}")
        return _trace_of_cdr(api, cdr)
    return api.store.get(call_id).addCallback(found)


def _called(api, leg_id: str):
    called = getattr(api.telephony.leg(leg_id), "called", None)
    return called if isinstance(called, str) else None


def builder_live_routes(app, api) -> None:
    @app.route("/v1/builder/calls", methods=["GET"])
    def builder_calls(request):
        authorise_admin(api, request)
        raw = (request.args.get(b"limit") or [b"50"])[0]
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIST:
            raise ApiError(400, "invalid_field", f"'limit' must be an integer from 1 to "
                                                 f"{MAX_LIST}")
        limit = int(raw)
        calls = [{"id": i.id, "active": True, "state": i.state, "direction": i.direction,
                  "from": i.remote if i.direction == "inbound" else None,
                  "to": i.remote if i.direction == "outbound" else _called(api, i.id),
                  "flow": i.flow, "route": i.variables.get("route"),
                  "started_at": i.started_at}
                 for i in api.telephony.legs() if i.state != "ended"]
        live = {c["id"] for c in calls}
        if api.store is None:
            return api.respond(request, 200, {"calls": calls})

        def add(rows):
            for r in rows:
                if r.get("leg_id") not in live:
                    calls.append({"id": r.get("leg_id"), "active": False, "state": "ended",
                                  "direction": r.get("direction"), "from": r.get("from_number"),
                                  "to": r.get("to_number"), "flow": r.get("flow"),
                                  "outcome": r.get("outcome"), "started_at": r.get("setup_at")})
            return api.respond(request, 200, {"calls": calls})
        return api.store.query(limit=limit).addCallback(add)

    @app.route("/v1/builder/trace/<path:call_id>", methods=["GET"])
    def builder_trace(request, call_id):
        authorise_admin(api, request)
        return find_trace(api, call_id).addCallback(
            lambda trace: api.respond(request, 200, trace))
