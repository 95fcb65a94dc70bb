"""Signing in to the Flow Builder with an admin API key, for people in a browser.

``GET /builder`` without a key answers 401 with a small sign-in form (a key that is not an
admin key: 403 with the same form and why).  The form posts to ``POST /builder/sign-in``:

* the key is checked by the API's own :class:`~ivr.api.errors.KeyRing` (constant-time
  compare) and must be an admin key (``admin: true``);
* every attempt, right or wrong, takes a token from a per-visitor bucket
  (:data:`ATTEMPTS` at once, then one every :data:`REFILL` seconds): the 6th quick guess
  from one address is refused (429) without the key being looked at.  A wrong key sent
  in the cookie to the builder's API counts against the same bucket;
* on success the key is set as the ``ivr_admin_key`` cookie: ``HttpOnly`` (the page's
  script never sees it), ``SameSite=Strict``, ``Path=/``, and ``Secure`` when the page was
  served over HTTPS (directly, or ``X-Forwarded-Proto: https`` with
  ``trust_forwarded_for``); then 303 to ``/builder``.

``POST /builder/sign-out`` clears the cookie.

The cookie stands for an ``X-API-Key`` header on the builder's paths only (``/builder``,
``/v1/dialplans``, ``/v1/builder``), and only when the request carries no key header of
its own (:class:`AdminCookieResource`, in front of the klein resource).  A request that
changes something (any method but GET/HEAD/OPTIONS) authenticated by the cookie must
also come from a page of this server: its ``Origin`` (or, without one, its ``Referer``)
must name the host the request was sent to, else 403 ``cross_site_request``.  With
``SameSite=Strict`` the browser does not send the cookie from another site's page in the
first place; the Origin check holds when it does (an old browser, a sibling subdomain).
The sign-in and sign-out forms are checked the same way.  Requests with ``X-API-Key`` or
``Authorization`` (scripts, ``curl``) are not touched.
"""
from __future__ import annotations

import html
import math
from typing import Any, Callable
from urllib.parse import quote, unquote, urlsplit

from twisted.web.resource import Resource

from .errors import ApiError, TokenBucket
from .fields import visitor_address

COOKIE = b"ivr_admin_key"
#: Sign-in attempts one visitor may make at once, and seconds until one more is allowed.
ATTEMPTS = 5
REFILL = 12.0
_PREFIXES = (b"/builder", b"/v1/dialplans", b"/v1/builder")
_SAFE = (b"GET", b"HEAD", b"OPTIONS")
_CSP = b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"


def _text(value) -> str | None:
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _path(request) -> bytes:
    return (request.uri or b"").split(b"?", 1)[0]


def on_builder_path(request) -> bool:
    path = _path(request)
    return any(path == p or path.startswith(p + b"/") for p in _PREFIXES)


def has_key_header(request) -> bool:
    headers = request.requestHeaders
    return bool(headers.getRawHeaders(b"x-api-key") or headers.getRawHeaders(b"authorization"))


def cookie_key(request) -> str | None:
    raw = request.getCookie(COOKIE)
    if not raw:
        return None
    try:
        return unquote(raw.decode("ascii"), errors="strict") or None
    except (UnicodeDecodeError, ValueError):
        return None


def visitor(request, trust_forwarded_for: bool) -> str:
    return visitor_address(request, trust_forwarded_for)


def same_origin(request, trust_forwarded_for: bool = False) -> bool:
    """Did this request come from a page of the host it was sent to?  ``Origin`` when the
    browser sent one (``null`` never matches), else ``Referer``; neither: no."""
    source = _text(request.getHeader(b"origin"))
    if source is None:
        source = _text(request.getHeader(b"referer"))
    if not source or source == "null":
        return False
    try:
        parts = urlsplit(source)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    hosts = {(_text(request.getHeader(b"host")) or "").lower()}
    if trust_forwarded_for:
        hosts.add((_text(request.getHeader(b"x-forwarded-host")) or "").lower())
    hosts.discard("")
    netloc = parts.netloc.lower()
    default = {"http": ":80", "https": ":443"}[parts.scheme]
    return netloc in hosts or netloc + default in hosts or \
        any(h + default == netloc for h in hosts)


def served_securely(request, trust_forwarded_for: bool) -> bool:
    if request.isSecure():
        return True
    proto = _text(request.getHeader(b"x-forwarded-proto")) or ""
    return trust_forwarded_for and proto.split(",")[0].strip().lower() == "https"


class _KeyHeaders:
    """A ``getRawHeaders`` view holding just one X-API-Key, for ``KeyRing.authenticate``."""

    def __init__(self, key: str) -> None:
        self.key = key.encode("utf-8", "replace")

    def getRawHeaders(self, name, default=None):  # noqa: N802 - twisted's Headers API
        return [self.key] if name.lower() == b"x-api-key" else default


class Attempts:
    """Key guesses per visitor: :data:`ATTEMPTS` at once, then one every :data:`REFILL` s."""

    def __init__(self, clock, max_visitors: int = 100_000) -> None:
        self.clock = clock
        self.max_visitors = max_visitors
        self.buckets: dict[str, TokenBucket] = {}

    def wait(self, who: str) -> float:
        """Seconds until ``who`` may guess again (0.0: now), without using a guess."""
        bucket = self.buckets.get(who)
        if bucket is None:
            return 0.0
        tokens = min(bucket.burst, bucket.tokens + (self.clock.seconds() - bucket.stamp)
                     * bucket.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / bucket.rate

    def spend(self, who: str) -> None:
        if who not in self.buckets and len(self.buckets) >= self.max_visitors:
            now = self.clock.seconds()
            for k in [k for k, b in self.buckets.items()
                      if b.tokens + (now - b.stamp) * b.rate >= b.burst]:
                del self.buckets[k]   # full buckets behave exactly like new ones
        bucket = self.buckets.setdefault(who, TokenBucket(1.0 / REFILL, ATTEMPTS, self.clock))
        bucket.take()


class SignIn:
    """Checks keys from the form and the cookie, under the per-visitor guess limit."""

    def __init__(self, api) -> None:
        self.api = api
        self.attempts = Attempts(api.clock)

    @property
    def trust(self) -> bool:
        return bool(getattr(self.api.config, "trust_forwarded_for", False))

    def not_blocked(self, request) -> str:
        """The visitor, or ApiError 429 while it has no guesses left."""
        who = visitor(request, self.trust)
        wait = self.attempts.wait(who)
        if wait:
            retry = str(max(1, math.ceil(wait)))
            raise ApiError(429, "rate_limited", f"too many sign-in attempts; retry in {retry}s",
                           {"Retry-After": retry})
        return who

    def check(self, key: str) -> str:
        """The admin key's name, or ApiError 401/403 (the key ring's constant-time check)."""
        _, settings = self.api.keys.authenticate(_KeyHeaders(key))
        if settings.get("admin") is not True:
            raise ApiError(403, "forbidden", "this API key is not an admin key")
        return settings.get("name") or "key"


class AdminCookieResource(Resource):
    """In front of the klein resource: on the builder's paths, a request without a key
    header but with the ``ivr_admin_key`` cookie is treated as if it had sent the key as
    ``X-API-Key``; one that changes something must come from this server's own page."""

    isLeaf = True

    def __init__(self, inner: Resource, signin: SignIn,
                 answer: Callable[[Any, ApiError], bytes]) -> None:
        super().__init__()
        self.inner = inner
        self.signin = signin
        self.answer = answer

    def render(self, request):
        if on_builder_path(request) and not has_key_header(request):
            key = cookie_key(request)
            if key is not None and _path(request) not in (b"/builder/sign-in",
                                                          b"/builder/sign-out"):
                try:
                    self.admit(request, key)
                except ApiError as err:
                    if err.status == 429 and _path(request) == b"/builder":
                        request.setHeader(b"Retry-After", err.headers["Retry-After"].encode())
                        return sign_in_page(request, 429, "Too many attempts. Wait "
                                            f"{err.headers['Retry-After']} seconds and reload.")
                    return self.answer(request, err)
        return self.inner.render(request)

    def admit(self, request, key: str) -> None:
        if request.method not in _SAFE and not same_origin(request, self.signin.trust):
            raise ApiError(403, "cross_site_request",
                           "a change made with the sign-in cookie must come from the Flow "
                           "Builder page of this server (Origin or Referer)")
        who = self.signin.not_blocked(request)   # guessing through the cookie: same limit
        try:
            self.signin.api.keys.authenticate(_KeyHeaders(key))
        except ApiError:
            self.signin.attempts.spend(who)
            return   # no key: the route answers 401 (the page: the sign-in form)
        request.requestHeaders.setRawHeaders(b"x-api-key", [key.encode("utf-8")])


def signin_routes(app, api) -> SignIn:
    signin = SignIn(api)

    def form_value(request, name: bytes) -> str:
        values = (request.args or {}).get(name) or [b""]
        try:
            return values[0].decode("utf-8").strip()
        except UnicodeDecodeError:
            return ""

    @app.route("/builder/sign-in", methods=["POST"])
    def sign_in(request):
        if not same_origin(request, signin.trust):
            return sign_in_page(request, 403, "Please sign in from this page.")
        try:
            who = signin.not_blocked(request)
        except ApiError as err:
            request.setHeader(b"Retry-After", err.headers["Retry-After"].encode())
            return sign_in_page(request, 429, "Too many attempts. Wait "
                                f"{err.headers['Retry-After']} seconds and try again.")
        signin.attempts.spend(who)
        key = form_value(request, b"key")
        if not key:
            return sign_in_page(request, 401, "Paste your admin key, then press Sign in.")
        try:
            signin.check(key)
        except ApiError as err:
            message = ("This key works for the API but is not an admin key: ask for one "
                       "with admin rights." if err.status == 403 else
                       "That key was not accepted. Check that you pasted all of it.")
            return sign_in_page(request, err.status, message)
        request.addCookie(COOKIE, quote(key, safe="").encode("ascii"), path=b"/",
                          httpOnly=True, sameSite="strict",
                          secure=served_securely(request, signin.trust) or None)
        return redirect(request)

    @app.route("/builder/sign-out", methods=["POST"])
    def sign_out(request):
        if not same_origin(request, signin.trust):
            return sign_in_page(request, 403, "Please sign out from the builder page.")
        request.addCookie(COOKIE, b"", path=b"/", max_age=b"0", httpOnly=True,
                          sameSite="strict",
                          secure=served_securely(request, signin.trust) or None)
        return sign_in_page(request, 200, "You are signed out.")

    return signin


def redirect(request) -> bytes:
    request.setResponseCode(303)
    request.setHeader(b"Location", b"/builder")
    request.setHeader(b"Cache-Control", b"no-store")
    return b""


def sign_in_page(request, status: int, message: str = "") -> bytes:
    """The sign-in form (HTML, no script), with ``message`` above it."""
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"Content-Security-Policy", _CSP)
    request.setHeader(b"X-Frame-Options", b"DENY")
    request.setHeader(b"Referrer-Policy", b"same-origin")
    note = f'<p id="sign-in-message" role="alert">{html.escape(message)}</p>' if message else ""
    return _PAGE.replace("{note}", note).encode("utf-8")


_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Flow Builder: sign in</title>
<style>
  body { font: 15px system-ui, sans-serif; background: #f4f6fa; margin: 0; }
  main { max-width: 420px; margin: 12vh auto; background: #fff; border: 1px solid #ccd;
         border-radius: 8px; padding: 20px 24px; }
  h1 { font-size: 20px; margin: 0 0 8px; }
  label { display: block; margin: 14px 0 4px; font-weight: 600; }
  input { width: 100%; box-sizing: border-box; font: inherit; padding: 6px; }
  button { margin-top: 12px; font: inherit; padding: 6px 18px; background: #2a5bd7;
           color: #fff; border: 0; border-radius: 4px; cursor: pointer; }
  #sign-in-message { color: #a40; background: #fff4e5; padding: 6px 8px; border-radius: 4px; }
  .help { color: #555; font-size: 13px; }
</style></head>
<body><main>
<h1>Flow Builder</h1>
<p class="help">Sign in with your admin key to see and change how calls are answered.</p>
{note}
<form method="post" action="/builder/sign-in">
  <label for="key">Admin key</label>
  <input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
  <button type="submit" id="sign-in">Sign in</button>
</form>
<p class="help">The key is an API key marked <code>admin: true</code> in
<code>config/api.yaml</code> (or the <code>IVR_API_KEY</code> the server was started with).
Ask whoever runs the server if you do not have one. You stay signed in until you sign out
or close the browser.</p>
</main></body></html>
"""
