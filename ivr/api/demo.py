"""The click-to-call demo page, the WebRTC demo page and their server-side endpoints.

``/demo/webrtc`` (``web/webrtc.html`` and ``web/webrtc.js``) calls from the browser with
SIP.js over the server's own ``/sip`` WebSocket; it needs no endpoint here.
``/agent`` (``web/agent.html`` and ``web/agent.js``) is the agent softphone: an extension
registered from a browser tab over the same ``/sip``, taking queue and ring-group calls.
Both scripts import ``/webphone.js`` (``web/webphone.js``): the SIP.js user agent, the level
meter, DTMF and the keypad they share.

The browser never sees an API key: ``POST /demo/api/click-to-call`` runs inside the
server with the configured agent (``demo_agent``) and is rate limited per visitor IP
(``demo_rate_calls`` per ``demo_rate_period`` seconds).  Session ids are unguessable, so
``GET /demo/api/sessions/{id}`` only shows a visitor the session they started.
"""
from __future__ import annotations

from importlib import resources

from .errors import ApiError, RateLimiter
from .fields import json_body, visitor_address

#: What the visitor sees for each session state.
STATUS_LABELS = {
    "initiated": "Ringing the agent…",
    "ringing_agent": "Ringing the agent…",
    "agent_answered": "Connecting you…",
    "whisper": "Connecting you…",
    "ringing_customer": "Connecting you…",
    "bridged": "Connected",
    "completed": "Ended",
    "failed": "Ended",
}
_VISITOR_REASONS = {
    "agent-busy": "all agents are busy", "agent-no-answer": "no agent is available",
    "agent-rejected": "no agent is available", "agent-failed": "no agent is available",
    "customer-busy": "your line was busy", "customer-no-answer": "you did not answer",
    "customer-rejected": "the call was declined", "customer-failed": "we could not reach you",
}


def _asset(name: str) -> bytes:
    return resources.files("ivr.api").joinpath("web", name).read_bytes()


def visitor_status(session) -> dict:
    state = session.state.value
    out = {"id": session.id, "state": state, "status": STATUS_LABELS[state],
           "reason": session.reason}
    if state == "failed":
        out["detail"] = _VISITOR_REASONS.get(session.reason or "", "the call could not be made")
    return out


def demo_routes(app, api) -> None:
    cfg = api.config
    page, script = _asset("demo.html"), _asset("click-to-call.js")
    limiter = RateLimiter(cfg.demo_rate_calls / cfg.demo_rate_period, cfg.demo_rate_calls,
                          api.clock)
    api.demo_limiter = limiter  # in a farm the server gives it the node's share (.share)

    def visitor(request) -> str:
        return visitor_address(request, cfg.trust_forwarded_for)

    @app.route("/demo/click-to-call", methods=["GET"])
    def demo_page(request):
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Content-Security-Policy",
                          b"default-src 'self'; style-src 'self' 'unsafe-inline'")
        return page

    @app.route("/demo/click-to-call.js", methods=["GET"])
    def demo_script(request):
        request.setHeader(b"Content-Type", b"text/javascript; charset=utf-8")
        request.setHeader(b"Cache-Control", b"public, max-age=300")
        return script

    webrtc_page, webrtc_script = _asset("webrtc.html"), _asset("webrtc.js")

    @app.route("/demo/webrtc", methods=["GET"])
    def demo_webrtc_page(request):
        # 'self' covers ws(s):// of this host for the SIP over WebSocket at /sip.
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Content-Security-Policy",
                          b"default-src 'self'; style-src 'self' 'unsafe-inline'")
        request.setHeader(b"Permissions-Policy", b"microphone=(self)")
        return webrtc_page

    @app.route("/demo/webrtc.js", methods=["GET"])
    def demo_webrtc_script(request):
        request.setHeader(b"Content-Type", b"text/javascript; charset=utf-8")
        request.setHeader(b"Cache-Control", b"public, max-age=300")
        return webrtc_script

    agent_page, agent_script = _asset("agent.html"), _asset("agent.js")

    @app.route("/agent", methods=["GET"])
    def agent_softphone(request):
        # The agent softphone: SIP.js registers the extension over /sip of this host.
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Content-Security-Policy",
                          b"default-src 'self'; style-src 'self' 'unsafe-inline'")
        request.setHeader(b"Permissions-Policy", b"microphone=(self)")
        request.setHeader(b"Referrer-Policy", b"no-referrer")  # ?password= stays here
        return agent_page

    @app.route("/agent.js", methods=["GET"])
    def agent_softphone_script(request):
        request.setHeader(b"Content-Type", b"text/javascript; charset=utf-8")
        request.setHeader(b"Cache-Control", b"public, max-age=300")
        return agent_script

    phone_script = _asset("webphone.js")

    @app.route("/webphone.js", methods=["GET"])
    def webphone_script(request):
        # what agent.js and webrtc.js share: the SIP.js user agent, level meter, keypad
        request.setHeader(b"Content-Type", b"text/javascript; charset=utf-8")
        request.setHeader(b"Cache-Control", b"public, max-age=300")
        return phone_script

    @app.route("/demo/api/click-to-call", methods=["POST"])
    def demo_call(request):
        body = json_body(request)
        number = body.get("number")
        if not isinstance(number, str) or not number.strip():
            raise ApiError(400, "missing_field", "please enter your phone number")
        limiter.check(visitor(request))
        req = api.click_to_call_request({
            "agent": cfg.demo_agent, "customer": number, "caller_id": cfg.demo_caller_id,
            "whisper": cfg.demo_whisper})
        session = api.sessions.start(req)
        return api.respond(request, 201, visitor_status(session))

    @app.route("/demo/api/sessions/<session_id>", methods=["GET"])
    def demo_session(request, session_id):
        return api.respond(request, 200, visitor_status(api.sessions.get(session_id)))
