"""The HTTP resources the server puts in front of the API: the root that routes
``/health``, ``/sip`` (SIP over WebSocket) and ``/vendor`` itself and hands everything
else to the API, the vendored browser libraries, and the health check.

Wiring only, like :mod:`ivr.server`, which builds the site from these.
"""
from __future__ import annotations

import json
from pathlib import Path

from twisted.web import resource, static


class _Root(resource.Resource):
    """``/health`` and ``/sip`` (SIP over WebSocket) here; everything else (``/v1``,
    ``/metrics``, ``/demo``) to the API."""

    def __init__(self, api, health, sip=None) -> None:
        super().__init__()
        self.api = api
        self.health = health
        self.sip = sip

    def getChild(self, name, request):
        if name == b"health":
            return self.health
        if name == b"sip" and self.sip is not None and not request.postpath:
            return self.sip
        if name == b"vendor" and VENDOR_DIR.is_dir():
            return _Vendor(str(VENDOR_DIR))
        request.postpath.insert(0, name)
        request.prepath.pop()
        return self.api


#: Browser libraries vendored from npm by ./scripts/setup (not in git), served at /vendor/.
VENDOR_DIR = Path(__file__).resolve().parent / "api" / "web" / "vendor"


class _Vendor(static.File):
    """The vendored browser libraries: files only, no directory listings."""

    def directoryListing(self):
        return resource.NoResource()


class _Health(resource.Resource):
    """``/health``: JSON status (ok or draining), calls, late media ticks, database."""

    isLeaf = True

    def __init__(self, server) -> None:  # the IvrServer whose health it reports
        super().__init__()
        self.server = server

    def render(self, request):
        if request.method in (b"GET", b"HEAD"):
            return super().render(request)
        # twisted.web's own answer would be an HTML 405, or a 501 for a method it knows no
        # render_ for: a 5xx to a client's request (issue #13).  JSON like the API's.
        request.setResponseCode(405)
        request.setHeader(b"allow", b"GET, HEAD")
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"error": {"code": "method_not_allowed",
                                     "message": "method not allowed"}}).encode()

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/json")
        body = {"status": "draining" if self.server._stopping else "ok",
                "calls": len(self.server.calls),
                "late_ticks": self.server.media_clock.late_ticks,
                "database": "ok" if self.server.db.available else "unavailable"}
        return json.dumps(body).encode()
