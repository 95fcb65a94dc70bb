"""``webhook``: POST the call's variables as JSON; the reply may set variables and goto.

    - webhook:
        url: "https://crm.example.com/ivr/lookup"
        timeout: 3               # seconds per attempt
        retries: 1               # extra attempts after a timeout, error or 5xx
        filler: "One moment while I look that up."   # played if the reply is slow
        filler_delay: 1          # seconds before the filler starts (then it repeats)
        on_failure: [ {say: "Sorry, our systems are busy."}, hangup ]

Request: ``{"call_id", "called", "caller", "caller_name", "variables": {...}}`` with headers
``X-Call-Id``, ``X-IVR-Attempt`` (1, 2, ...) and, from the server's HTTP client,
``X-IVR-Signature`` made like a status webhook's (``ivr.api.webhooks``).  Reply (2xx,
JSON object): ``{"variables": {"name": "value"}, "goto": "flow"}`` (both optional).  The
status lands in ``webhook.status``.  A reply naming an unknown flow counts as a failure.
"""
from __future__ import annotations

import json

from twisted.internet import defer

from ivr.dialplan.schema import VAR_RE, RESERVED_PREFIXES, integer, number, prompt, target, template
from ivr.dialplan.verbs.base import Goto, Verb, branch, template_context


class WebhookFailed(Exception):
    def __init__(self, reason: str, retry: bool):
        super().__init__(reason)
        self.retry = retry


def parse_reply(body: bytes) -> tuple[dict[str, str], str | None]:
    try:
        data = json.loads(body.decode("utf-8")) if body.strip() else {}
    except (UnicodeDecodeError, ValueError):
        raise WebhookFailed("reply is not JSON", retry=False) from None
    if not isinstance(data, dict):
        raise WebhookFailed("reply is not a JSON object", retry=False)
    variables = data.get("variables", data.get("set", {})) or {}
    if not isinstance(variables, dict):
        raise WebhookFailed("'variables' is not an object", retry=False)
    out = {}
    for k, v in variables.items():
        if not isinstance(k, str) or not VAR_RE.match(k) or k.startswith(RESERVED_PREFIXES):
            raise WebhookFailed(f"bad variable name {k!r}", retry=False)
        if isinstance(v, bool):
            v = "true" if v else "false"
        if v is None:
            v = ""
        if not isinstance(v, (str, int, float)):
            raise WebhookFailed(f"variable {k!r} is not a string or number", retry=False)
        out[k] = str(v)
    goto = data.get("goto")
    if goto is not None and not isinstance(goto, str):
        raise WebhookFailed("'goto' is not a string", retry=False)
    return out, goto


class Webhook(Verb):
    name = "webhook"
    MAIN = "url"
    FIELDS = {"url": template(required=True), "timeout": number(default=5, minimum=0.1, maximum=120),
              "retries": integer(default=1, minimum=0, maximum=10),
              "retry_delay": number(default=0.5, minimum=0, maximum=30),
              "filler": prompt(), "filler_delay": number(default=1, minimum=0, maximum=60),
              "on_failure": target()}

    @staticmethod
    def check(p, node, args):
        src = args.url.source
        if not (src.startswith(("http://", "https://")) or src.startswith("{{")):
            return p.error(node, f"webhook url must start with http:// or https:// (got '{src}')")
        return None

    def payload(self, call) -> bytes:
        ctx = template_context(call)
        return json.dumps({"call_id": call.call_id, "called": call.called,
                           "caller": ctx["caller.number"], "caller_name": ctx["caller.name"],
                           "variables": dict(call.variables)}).encode()

    @defer.inlineCallbacks
    def attempt(self, call, url, body, n: int = 1):
        d = self.env.http.post_json(url, body, {"X-Call-Id": call.call_id,
                                                "X-IVR-Attempt": str(n)})
        d.addTimeout(self.args.timeout, call.clock)
        try:
            response = yield self.wait(d)
        except defer.TimeoutError:
            raise WebhookFailed("timeout", retry=True) from None
        except defer.CancelledError:
            raise
        except Exception as e:  # connection refused, DNS, TLS...
            raise WebhookFailed(f"{type(e).__name__}: {e}", retry=True) from None
        call.variables["webhook.status"] = str(response.status)
        if not 200 <= response.status < 300:
            raise WebhookFailed(f"HTTP {response.status}", retry=response.status >= 500)
        return parse_reply(response.body)

    @defer.inlineCallbacks
    def execute(self, call):
        url = self.render(self.args.url)
        self._done = False
        self._filling = False
        self._filler_timer = None
        if self.args.filler:
            self._filler_timer = call.clock.callLater(self.args.filler_delay, self._filler, 0)
        try:
            reply = yield self._attempts(call, url)
        finally:
            self._stop_filler()
        if reply is None:
            self.log("branch", test="webhook", result="failed",
                     to=self.args.on_failure.describe() if self.args.on_failure else "next")
            return branch(self.args.on_failure)
        variables, goto = reply
        call.variables.update(variables)
        self.log("webhook_reply", variables=",".join(sorted(variables)), goto=goto or "")
        return Goto(goto) if goto else None

    @defer.inlineCallbacks
    def _attempts(self, call, url):
        if self.env.http is None:
            self.log("webhook_failed", url=url, reason="no HTTP client configured")
            return None
        body = self.payload(call)
        for n in range(1, self.args.retries + 2):
            try:
                variables, goto = yield self.attempt(call, url, body, n)
            except WebhookFailed as e:
                self.log("webhook_failed", url=url, attempt=n, reason=str(e))
                if not e.retry or n > self.args.retries:
                    return None
                yield self.sleep(self.args.retry_delay)
                continue
            if goto and not self.env.has_flow(goto):
                self.log("webhook_failed", url=url, attempt=n, reason=f"unknown flow '{goto}'")
                return None
            return variables, goto
        return None

    def _filler(self, index: int):
        self._filler_timer = None
        call = self.call
        if self._done or self.cancelled or call.ended:
            return
        if not call.answered and not self.env.state.early_media:
            return  # nowhere to play it yet
        self._filling = True
        prompts = self.args.filler
        p = prompts[index % len(prompts)]
        self.log("filler", index=index)
        if p.file is not None:
            d = call.play_file(p.file)
        else:
            d = call.say(self.render(p.text), **self.voice_args(p))
        def again(_):
            if not self._done:
                self._filler_timer = call.clock.callLater(0.5, self._filler, index + 1)
        d.addCallbacks(again, lambda _f: None)

    def _stop_filler(self):
        if self._done:
            return
        self._done = True
        if self._filler_timer is not None and self._filler_timer.active():
            self._filler_timer.cancel()
        self._filler_timer = None
        if self._filling and not self.call.ended:
            self.call.stop_playback()

    def cancel(self):
        super().cancel()
        if getattr(self, "_done", True) is False:
            self._stop_filler()
