"""The HTTP API on the server's Twisted reactor (klein).

``make_api(telephony, store, webhooks, config, clock, dnd=..., metrics=...)`` returns a
``twisted.web`` resource serving::

    POST   /v1/click-to-call            GET /v1/click-to-call[/{id}]   DELETE /v1/click-to-call/{id}
    POST   /v1/calls                    GET /v1/calls[/{id}]           DELETE /v1/calls/{id}
    GET    /v1/cdrs  (?since&until&number&outcome&limit&offset&format=csv)
    GET    /v1/lookup/{number}
    GET    /v1/dnd   PUT/DELETE /v1/dnd/{number}
    GET    /metrics                     (no key: for the Prometheus scraper)
    GET    /v1/dialplans[/schema|/{file}]  PUT /v1/dialplans/{file}  (admin keys; dialplan_files.py)
    GET    /builder, /v1/builder/calls, /v1/builder/trace/{id}  (admin keys; builder*.py)
    POST   /builder/sign-in, /builder/sign-out  (the builder's HttpOnly key cookie)
    GET    /demo/click-to-call, /demo/click-to-call.js, POST /demo/api/click-to-call,
    GET    /demo/api/sessions/{id}      (no key: rate limited per visitor)

Every request first passes ``limits.GuardedResource`` (URL encoding, 64 KiB body cap) and
every JSON body ``limits.parse_json_value`` (UTF-8, RFC 8259, nesting depth): a client's
mistake is a 4xx JSON error, never a 500.
"""
from __future__ import annotations

import json
import logging
import re
from typing import Any

from klein import Klein
from werkzeug.exceptions import MethodNotAllowed, NotFound

from . import numbers
from .calls import CallService
from .click_to_call import Request as C2CRequest
from .config import ApiConfig
from .errors import INVALID_KEY, ApiError, KeyRing, RateLimiter
from .fields import (json_body, need, opt_bool, opt_number, opt_str, opt_url, parse_json,
                     visitor_address)
from .limits import GuardedResource
from .builder_signin import AdminCookieResource
from .sessions import SessionService, then
from .times import parse_time
from ..store.cdr import OUTCOMES, to_csv
from .demo import demo_routes

log = logging.getLogger(__name__)
# wrong API keys from one address: 10 at once, then one every 6 s (429 with Retry-After)
BAD_KEY_BURST, BAD_KEY_RATE = 10, 1 / 6
_DIGITS = re.compile(r"[0-9A-Da-d*#wW,]{1,64}\Z")


class Api:
    def __init__(self, telephony, store, webhooks, config: ApiConfig, clock, *,
                 dnd=None, metrics=None, environ=None, throttle=None,
                 dialplan_files=None) -> None:
        self.telephony = telephony
        self.dialplan_files = dialplan_files  # ivr.dialplan.files.DialplanFiles (editing)
        self.throttle = throttle  # SIP failure bans (ivr.sip.throttle), for /v1/security/bans
        self.store = store
        self.webhooks = webhooks
        self.config = config
        self.clock = clock
        self.dnd = dnd
        self.metrics = metrics
        self.keys = KeyRing(config.keys(environ))
        self.limiter = RateLimiter(config.rate, config.burst, clock)
        self.sessions = SessionService(self)
        self.calls = CallService(self)
        self.farm_calls = None  # ivr.api.farm_calls.FarmCalls in a farm (PostgreSQL)

    # -- helpers shared by the route modules --------------------------------------

    def authorise(self, request) -> str:
        try:
            key, settings = self.keys.authenticate(request.requestHeaders)
        except ApiError as refused:
            if refused.message == INVALID_KEY:  # a guess: each address has a few (429 after)
                self.limiter.check("bad-key:" + visitor_address(
                    request, self.config.trust_forwarded_for), BAD_KEY_RATE, BAD_KEY_BURST)
            raise
        self.limiter.check("key:" + key, settings.get("rate"), settings.get("burst"))
        return settings.get("name") or "key"

    def respond(self, request, status: int, body: Any, headers: dict | None = None) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        for k, v in (headers or {}).items():
            request.setHeader(k.encode(), v.encode())
        if self.metrics is not None:
            self.metrics.api_requests.labels(str(status)).inc()
        return json.dumps(body, default=str).encode()

    def check_dnd(self, e164: str, transactional: bool) -> None:
        if self.dnd is not None and not transactional and self.dnd.contains(e164):
            raise ApiError(403, "do_not_disturb",
                           f"{e164} is on the do-not-disturb list; only transactional calls "
                           "may be placed to it")

    def click_to_call_request(self, body: dict) -> C2CRequest:
        cfg = self.config
        agent = numbers.agent_target(need(body, "agent"), cfg.default_region)
        customer = numbers.e164_field(need(body, "customer"), cfg.default_region, "customer")
        caller_id = body.get("caller_id") or cfg.default_caller_id
        if caller_id is not None:
            caller_id = numbers.e164_field(caller_id, cfg.default_region, "caller_id")
        self.check_dnd(customer, opt_bool(body, "transactional"))
        try:
            self.telephony.resolve(agent)
        except Exception as exc:   # UnknownTarget, or a malformed target
            raise ApiError(422, "unknown_target", f"cannot call agent {agent!r}: {exc}") from None
        ring = opt_number(body, "timeout", 1, cfg.max_ring_timeout, cfg.ring_timeout)
        return C2CRequest(
            agent=agent, customer=customer, caller_id=caller_id,
            callback_url=opt_url(body, "callback_url"),
            max_duration=opt_number(body, "max_duration", 1, cfg.max_duration_limit),
            record=opt_bool(body, "record"), whisper=opt_str(body, "whisper", 500),
            agent_timeout=ring, customer_timeout=ring, recordings_dir=cfg.recordings_dir)


def make_api(telephony, store, webhooks, config: ApiConfig | None = None, clock=None, *,
             dnd=None, metrics=None, environ=None, throttle=None, dialplan_files=None):
    """The whole HTTP surface as one ``twisted.web`` resource."""
    if clock is None:
        from twisted.internet import reactor as clock
    api = Api(telephony, store, webhooks, config or ApiConfig(), clock, dnd=dnd,
              metrics=metrics, environ=environ, throttle=throttle,
              dialplan_files=dialplan_files)
    app = build_app(api)
    answer = lambda request, err: api.respond(  # noqa: E731
        request, err.status, json.loads(err.body()), err.headers)
    # the Flow Builder's sign-in cookie stands for X-API-Key on its paths (builder_signin.py)
    resource = GuardedResource(AdminCookieResource(app.resource(), api.signin, answer), answer)
    resource.api = api   # for the wiring code and tests
    return resource


def build_app(api: Api) -> Klein:
    from .security import security_routes
    from .dialplan_files import dialplan_routes
    from .builder import builder_routes
    from .builder_live import builder_live_routes
    from .builder_signin import signin_routes
    app = Klein()
    app.url_map.merge_slashes = False   # "/v1//calls" is a 404, not a redirect (before routes)
    cfg = api.config
    security_routes(app, api)  # GET /v1/security/bans, DELETE /v1/security/bans/{address}
    dialplan_routes(app, api)  # /v1/dialplans[/...]: schema, read, save, backups (admin keys)
    builder_routes(app, api)   # GET /builder: the Flow Builder page (admin keys)
    api.signin = signin_routes(app, api)  # POST /builder/sign-in, /builder/sign-out
    builder_live_routes(app, api)  # /v1/builder/calls, /v1/builder/trace/{id} (live view)

    @app.handle_errors(ApiError)
    def api_error(request, failure):
        err = failure.value
        return api.respond(request, err.status, json.loads(err.body()), err.headers)

    @app.handle_errors(NotFound)
    def not_found(request, failure):
        return api.respond(request, 404, {"error": {"code": "not_found",
                                                    "message": "no such endpoint"}})

    @app.handle_errors(MethodNotAllowed)
    def not_allowed(request, failure):
        allow = ", ".join(sorted(failure.value.valid_methods or []))
        return api.respond(request, 405, {"error": {"code": "method_not_allowed",
                                                    "message": "method not allowed"}},
                           {"Allow": allow} if allow else None)

    @app.handle_errors(Exception)
    def internal_error(request, failure):
        log.error("API %s %s failed: %s", request.method, request.uri, failure.getTraceback())
        return api.respond(request, 500, {"error": {"code": "internal",
                                                    "message": "internal server error"}})

    # -- click-to-call ------------------------------------------------------------

    @app.route("/v1/click-to-call", methods=["POST"])
    def c2c_create(request):
        api.authorise(request)
        session = api.sessions.start(api.click_to_call_request(json_body(request)))
        # in a farm, answered once the session is in the database (readable on every node)
        return then(api.sessions.stored(session), lambda s: api.respond(
            request, 201, s.to_dict(), {"Location": f"/v1/click-to-call/{s.id}"}))

    @app.route("/v1/click-to-call", methods=["GET"])
    def c2c_list(request):
        api.authorise(request)
        # PostgreSQL mode: every node's sessions, read from the database (a Deferred)
        return then(api.sessions.listing(),
                    lambda sessions: api.respond(request, 200, {"sessions": sessions}))

    @app.route("/v1/click-to-call/<session_id>", methods=["GET"])
    def c2c_get(request, session_id):
        api.authorise(request)
        # another node's session (PostgreSQL mode) is read from the database: a Deferred
        return then(api.sessions.read(session_id), lambda body: api.respond(request, 200, body))

    @app.route("/v1/click-to-call/<session_id>", methods=["DELETE"])
    def c2c_cancel(request, session_id):
        api.authorise(request)
        return then(api.sessions.cancel(session_id), lambda out: api.respond(request, *out))

    # -- calls --------------------------------------------------------------------

    @app.route("/v1/calls", methods=["POST"])
    def calls_create(request):
        api.authorise(request)
        body = json_body(request)
        to = numbers.e164_field(need(body, "to"), cfg.default_region, "to")
        flow = need(body, "flow")
        if not isinstance(flow, str):
            raise ApiError(400, "invalid_field", "'flow' must be a string")
        if cfg.flows is not None and flow not in cfg.flows:
            raise ApiError(422, "unknown_flow", f"no dialplan flow named {flow!r}")
        digits = opt_str(body, "send_digits", 64)
        if digits is not None and not _DIGITS.match(digits):
            raise ApiError(400, "invalid_field",
                           "'send_digits' may hold 0-9 A-D * # and w/, for pauses")
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            raise ApiError(400, "invalid_field", "'variables' must be an object")
        caller_id = body.get("caller_id") or cfg.default_caller_id
        if caller_id is not None:
            caller_id = numbers.e164_field(caller_id, cfg.default_region, "caller_id")
        api.check_dnd(to, opt_bool(body, "transactional"))
        timeout = opt_number(body, "timeout", 1, cfg.max_ring_timeout, cfg.ring_timeout)
        call = api.calls.originate(to, flow, caller_id=caller_id, timeout=timeout,
                                   send_digits=digits, variables=variables,
                                   callback_url=opt_url(body, "callback_url"))
        return api.respond(request, 201, call, {"Location": f"/v1/calls/{call['id']}"})

    @app.route("/v1/calls", methods=["GET"])
    def calls_list(request):
        api.authorise(request)
        if api.farm_calls is not None:  # PostgreSQL mode: every node's calls
            return api.farm_calls.listing().addCallback(
                lambda calls: api.respond(request, 200, {"calls": calls}))
        return api.respond(request, 200, {"calls": [api.calls.describe(i)
                                                    for i in api.telephony.legs()]})

    @app.route("/v1/calls/<call_id>", methods=["GET"])
    def calls_get(request, call_id):
        api.authorise(request)
        if api.farm_calls is not None and api.telephony.leg(call_id) is None:
            return api.farm_calls.find(call_id).addCallback(   # another node's call
                lambda call: api.respond(request, 200, call) if call is not None
                else api.calls.leg(call_id))                   # 404 as for any unknown id
        return api.respond(request, 200, api.calls.describe(api.calls.leg(call_id).info()))

    @app.route("/v1/calls/<call_id>", methods=["DELETE"])
    def calls_hangup(request, call_id):
        api.authorise(request)
        leg = api.calls.leg(call_id)
        if leg.info().state == "ended":
            raise ApiError(409, "already_ended", f"call {call_id} has already ended")
        leg.hangup("api")
        return api.respond(request, 202, api.calls.describe(leg.info()))

    # -- records and lookups ----------------------------------------------------

    @app.route("/v1/cdrs", methods=["GET"])
    def cdrs(request):
        api.authorise(request)
        args = {k.decode(): v[0].decode("utf-8", "replace") for k, v in request.args.items()}
        since = parse_time(args.get("since"), "since")
        until = parse_time(args.get("until"), "until")
        number = (args.get("number") or "").strip()
        if len(number) > 128 or any(ord(c) < 32 or ord(c) == 127 for c in number):
            raise ApiError(400, "invalid_field", "'number' must be at most 128 printable "
                                                 "characters")
        # Any dialled string: extensions, short codes, SIP users, and the E.164 and
        # national forms of a phone number (ivr/api/numbers.py number_forms).
        number = numbers.number_forms(number, cfg.default_region) if number else None
        outcome = args.get("outcome") or None
        if outcome is not None and outcome not in OUTCOMES:
            raise ApiError(400, "invalid_field", f"'outcome' must be one of {', '.join(OUTCOMES)}")
        limit = _int_arg(args, "limit", 100, 1, cfg.max_list)
        offset = _int_arg(args, "offset", 0, 0, 10**9)
        fmt = args.get("format") or ("csv" if b"text/csv" in
                                     (request.getHeader(b"accept") or b"") else "json")
        if fmt not in ("json", "csv"):
            raise ApiError(400, "invalid_field", "'format' must be json or csv")
        d = api.store.query(since=since, until=until, number=number, outcome=outcome,
                            limit=limit, offset=offset)

        def render(rows):
            if fmt == "csv":
                request.setHeader(b"Content-Type", b"text/csv; charset=utf-8")
                request.setHeader(b"Content-Disposition", b'attachment; filename="cdrs.csv"')
                return to_csv(rows).encode()
            return api.respond(request, 200, {"cdrs": rows, "count": len(rows)})
        return d.addCallback(render)

    @app.route("/v1/lookup/<number>", methods=["GET"])
    def lookup(request, number):
        api.authorise(request)
        region = request.args.get(b"region", [cfg.default_region.encode()])[0].decode().upper()
        if not re.fullmatch(r"[A-Z]{2}", region):
            raise ApiError(400, "invalid_field", "'region' must be a two-letter region code")
        return api.respond(request, 200, numbers.describe(number, region))

    # -- do-not-disturb -----------------------------------------------------------

    @app.route("/v1/dnd", methods=["GET"])
    def dnd_list(request):
        api.authorise(request)
        return api.respond(request, 200, {"numbers": _dnd(api).entries()})

    @app.route("/v1/dnd/<number>", methods=["PUT"])
    def dnd_add(request, number):
        api.authorise(request)
        e164 = numbers.e164_field(number, cfg.default_region)
        raw = request.content.read() if request.content is not None else b""
        reason = opt_str(parse_json(raw), "reason", 500) if raw.strip() else None
        d = _dnd(api).add(e164, reason, api.clock.seconds())
        return d.addCallback(lambda new: api.respond(
            request, 201 if new else 200, {"number": e164, "reason": reason}))

    @app.route("/v1/dnd/<number>", methods=["DELETE"])
    def dnd_remove(request, number):
        api.authorise(request)
        e164 = numbers.e164_field(number, cfg.default_region)

        def done(present):
            if not present:
                raise ApiError(404, "not_found", f"{e164} is not on the do-not-disturb list")
            request.setResponseCode(204)
            return b""
        return _dnd(api).remove(e164).addCallback(done)

    @app.route("/metrics", methods=["GET"])
    def metrics(request):
        if api.metrics is None:
            raise ApiError(404, "not_found", "metrics are disabled")
        return api.metrics.resource().render_GET(request)

    if cfg.demo_enabled:
        demo_routes(app, api)
    return app


def _dnd(api: Api):
    if api.dnd is None:
        raise ApiError(404, "not_found", "the do-not-disturb list is not configured")
    return api.dnd


def _int_arg(args: dict, name: str, default: int, lo: int, hi: int) -> int:
    raw = args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_field", f"'{name}' must be an integer") from None
    if not lo <= value <= hi:
        raise ApiError(400, "invalid_field", f"'{name}' must be from {lo} to {hi}")
    return value

