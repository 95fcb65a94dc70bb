"""The Flow Builder page (``GET /builder``): the dialplans drawn as a graph and edited in
the browser through ``/v1/dialplans`` (``dialplan_files.py``).  Plain JS, no build step.

The page needs an admin key like the API it calls: ``X-API-Key``/``Bearer`` (a proxy or a
test browser sending it), or the ``ivr_admin_key`` cookie, which the page also sends on
its own API calls as ``X-API-Key``.  Without one: 401 JSON; with a key that is not an
admin key: 403.
"""
from __future__ import annotations

from importlib import resources

from .dialplan_files import authorise_admin

COOKIE = b"ivr_admin_key"
_CSP = b"default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"


def _asset(name: str) -> bytes:
    return resources.files("ivr.api").joinpath("web", name).read_bytes()


class _CookieHeaders:
    """The request's headers, with the cookie's key as X-API-Key when no key header came."""

    def __init__(self, request) -> None:
        self.headers = request.requestHeaders
        self.cookie = request.getCookie(COOKIE)

    def getRawHeaders(self, name, default=None):  # noqa: N802 - twisted's Headers API
        values = self.headers.getRawHeaders(name)
        if values:
            return values
        if name.lower() == b"x-api-key" and self.cookie \
                and not self.headers.getRawHeaders(b"authorization"):
            return [self.cookie]
        return default


class _CookieRequest:
    def __init__(self, request) -> None:
        self.requestHeaders = _CookieHeaders(request)


def builder_routes(app, api) -> None:
    page, script = _asset("builder.html"), _asset("builder.js")

    def serve(request, body: bytes, kind: bytes) -> bytes:
        authorise_admin(api, _CookieRequest(request))
        request.setHeader(b"Content-Type", kind)
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"Content-Security-Policy", _CSP)
        request.setHeader(b"Referrer-Policy", b"no-referrer")
        request.setHeader(b"X-Frame-Options", b"DENY")
        return body

    @app.route("/builder", methods=["GET"])
    def builder_page(request):
        return serve(request, page, b"text/html; charset=utf-8")

    @app.route("/builder/builder.js", methods=["GET"])
    def builder_script(request):
        return serve(request, script, b"text/javascript; charset=utf-8")
