"""The Flow Builder page (``GET /builder``): the dialplans drawn as a graph and edited in
the browser through ``/v1/dialplans`` (``dialplan_files.py``).  Plain JS, no build step.

The page needs an admin key like the API it calls: ``X-API-Key``/``Bearer`` (a proxy or a
script sending it), or the ``ivr_admin_key`` cookie that the sign-in form sets
(``builder_signin.py``, which also turns the cookie into the key for the page's own API
calls).  Without a key: 401 with the sign-in form; with a key that is not an admin key:
403 with the form and why; a wrong or revoked cookie: 401, the form, and the cookie cleared.
"""
from __future__ import annotations

from importlib import resources

from .builder_signin import COOKIE, has_key_header, sign_in_page
from .dialplan_files import authorise_admin
from .errors import ApiError

_CSP = b"default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"


def _asset(name: str) -> bytes:
    return resources.files("ivr.api").joinpath("web", name).read_bytes()


def builder_routes(app, api) -> None:
    page = _asset("builder.html")
    scripts = {name: _asset(name) for name in ("builder.js", "builder.words.js",
                                               "builder.hours.js")}

    def serve(request, body: bytes, kind: bytes) -> bytes:
        authorise_admin(api, request)
        request.setHeader(b"Content-Type", kind)
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"Content-Security-Policy", _CSP)
        # same-origin, not no-referrer: the page's PUTs must carry their real Origin
        # (no-referrer makes Chromium send "Origin: null"), which the cookie check reads
        request.setHeader(b"Referrer-Policy", b"same-origin")
        request.setHeader(b"X-Frame-Options", b"DENY")
        return body

    @app.route("/builder", methods=["GET"])
    def builder_page(request):
        try:
            return serve(request, page, b"text/html; charset=utf-8")
        except ApiError as err:
            by_cookie = not has_key_header(request)
            if err.status == 401 and by_cookie and request.getCookie(COOKIE):
                request.addCookie(COOKIE, b"", path=b"/", max_age=b"0", httpOnly=True,
                                  sameSite="strict")
                return sign_in_page(request, 401, "That key is no longer accepted. "
                                                  "Please sign in again.")
            if err.status == 401:
                return sign_in_page(request, 401)
            if err.status == 403:
                return sign_in_page(request, 403, "This key works for the API but is not an "
                                                  "admin key: sign in with an admin key.")
            if err.status == 429:
                request.setHeader(b"Retry-After", err.headers["Retry-After"].encode())
                return sign_in_page(request, 429, "Too many requests. Wait "
                                    f"{err.headers['Retry-After']} seconds and reload.")
            raise

    @app.route("/builder/<name>", methods=["GET"])
    def builder_script(request, name):
        if name not in scripts:
            raise ApiError(404, "not_found", "no such endpoint")
        return serve(request, scripts[name], b"text/javascript; charset=utf-8")
