"""Failure bans of SIP source addresses (ivr.sip.throttle), for the admin.

    GET    /v1/security/bans             {"bans": [{"address", "failures", "since", "until"}]}
    DELETE /v1/security/bans/{address}   lift one ban now: 200 with the ban, 404 if none

``since`` and ``until`` are unix seconds, like every time in this API.  Both routes need
an API key.  ``api.throttle`` is the server's :class:`~ivr.sip.throttle.Throttle` (None
when the API runs without SIP: no bans, so the list is empty).

In a farm (PostgreSQL) ``api.farm_bans`` is the farm's :class:`~ivr.store.bans.FarmBans`:
the list is every node's bans, read from the database (with this node's own that its next
round has not shared yet), and a lift ends the ban in the
database and on this node at once, on the other nodes at their next housekeeping round
(2 s).
"""
from __future__ import annotations

import ipaddress

from .errors import ApiError


def normalise_address(text: str) -> str:
    """An IP literal in the form the SIP transport reports sources (``[::1]`` -> ``::1``);
    anything else unchanged (it matches no ban)."""
    bare = text.strip().strip("[]")
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return text


def security_routes(app, api) -> None:
    def farm():
        return getattr(api, "farm_bans", None)   # set by the server in a farm

    @app.route("/v1/security/bans", methods=["GET"])
    def bans_list(request):
        api.authorise(request)
        throttle = api.throttle
        now = api.clock.seconds()
        here = [b.to_dict() for b in throttle.bans(now)] if throttle is not None else []
        if farm() is not None:
            def merged(rows):  # the farm's, and this node's own not yet shared (< 2 s old)
                shared = [_ban(*row) for row in rows]
                known = {b["address"] for b in shared}
                return api.respond(request, 200, {"bans": shared + [
                    b for b in here if b["address"] not in known]})
            return farm().bans(now).addCallback(merged)
        return api.respond(request, 200, {"bans": here})

    @app.route("/v1/security/bans/<address>", methods=["DELETE"])
    def bans_lift(request, address):
        api.authorise(request)
        throttle = api.throttle
        host = normalise_address(address)
        now = api.clock.seconds()
        if farm() is not None:
            def lifted(row):
                here = throttle.lift(host, now) if throttle is not None else None
                if row is None and here is None:
                    raise ApiError(404, "not_found", f"{host} is not banned")
                return api.respond(request, 200, _ban(*row) if row else here.to_dict())
            return farm().lift(host, now).addCallback(lifted)
        ban = throttle.lift(host, now) if throttle is not None else None
        if ban is None:
            raise ApiError(404, "not_found", f"{host} is not banned")
        return api.respond(request, 200, ban.to_dict())


def _ban(address: str, failures: int, since: float, until: float) -> dict:
    return {"address": address, "failures": failures, "since": since, "until": until}
