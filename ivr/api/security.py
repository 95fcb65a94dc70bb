"""Failure bans of SIP source addresses (ivr.sip.throttle), for the admin.

    GET    /v1/security/bans             {"bans": [{"address", "failures", "since", "until"}]}
    DELETE /v1/security/bans/{address}   lift one ban now: 200 with the ban, 404 if none

``since`` and ``until`` are unix seconds, like every time in this API.  Both routes need
an API key.  ``api.throttle`` is the server's :class:`~ivr.sip.throttle.Throttle` (None
when the API runs without SIP: no bans, so the list is empty).
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
    @app.route("/v1/security/bans", methods=["GET"])
    def bans_list(request):
        api.authorise(request)
        throttle = api.throttle
        bans = throttle.bans(api.clock.seconds()) if throttle is not None else []
        return api.respond(request, 200, {"bans": [b.to_dict() for b in bans]})

    @app.route("/v1/security/bans/<address>", methods=["DELETE"])
    def bans_lift(request, address):
        api.authorise(request)
        throttle = api.throttle
        host = normalise_address(address)
        ban = throttle.lift(host, api.clock.seconds()) if throttle is not None else None
        if ban is None:
            raise ApiError(404, "not_found", f"{host} is not banned")
        return api.respond(request, 200, ban.to_dict())
