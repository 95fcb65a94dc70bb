import json
from pathlib import Path

from twisted.internet.defer import Deferred

from ivr.dialplan.http import HttpResponse

from tests.dialplan.fakes import FakeCall, FakeHttp
from tests.dialplan.helpers import start

PLAN = """
flows:
  main:
    - answer
    - set: {account: "42"}
    - webhook:
        url: "https://crm.example/lookup/{{account}}"
        timeout: 3
        retries: 1
        retry_delay: 0.5
        filler: "One moment"
        filler_delay: 1
        on_failure: [{say: "Fallback"}]
    - say: "Hello {{name}}"
  vip: [{say: "VIP"}]
"""


def run(tmp_path, script):
    http = FakeHttp(script)
    call = FakeCall()
    http.clock = call.clock
    call, _r, result = start(tmp_path, PLAN, call=call, http=http)
    return call, http, result


def test_success_sets_variables(tmp_path):
    call, http, _ = run(tmp_path, [HttpResponse(200, b'{"variables": {"name": "Bob", "n": 3}}')])
    url, body, headers = http.requests[0]
    assert url == "https://crm.example/lookup/42"
    assert json.loads(body) == {"call_id": "call-1", "called": "+18005550100",
                                "caller": "+12125551234", "caller_name": "Alice",
                                "variables": {"account": "42"}}
    assert headers == {"X-Call-Id": "call-1", "X-IVR-Attempt": "1"}
    assert call.variables["name"] == "Bob" and call.variables["n"] == "3"
    assert call.variables["webhook.status"] == "200"
    assert call.said() == ["Hello Bob"]


def test_reply_can_goto(tmp_path):
    call, _http, _ = run(tmp_path, [HttpResponse(200, b'{"goto": "vip"}')])
    assert call.said() == ["VIP"]


def test_slow_reply_gets_filler_then_it_stops(tmp_path):
    call, _http, _ = run(tmp_path, [(2.5, HttpResponse(200, b'{"variables": {"name": "Sue"}}'))])
    call.clock.advance(1)
    assert call.said() == ["One moment"]
    call.clock.advance(1.5)
    assert ("stop_playback",) in call.actions
    assert call.said() == ["One moment", "Hello Sue"]
    assert call.clock.getDelayedCalls()[0].getTime() == 4.5  # only the say's timer is left
    assert len(call.clock.getDelayedCalls()) == 1


def test_timeout_then_retry_succeeds(tmp_path):
    call, http, _ = run(tmp_path, [None, HttpResponse(200, b'{"variables": {"name": "Ann"}}')])
    call.clock.advance(1)              # filler starts
    call.clock.advance(2)              # 3 s: first attempt times out
    assert len(http.requests) == 1
    failed = [f for e, f in call.events if e == "webhook_failed"]
    assert failed[0]["reason"] == "timeout" and failed[0]["attempt"] == 1
    call.clock.advance(0.5)            # retry_delay
    assert len(http.requests) == 2
    assert [h["X-IVR-Attempt"] for _u, _b, h in http.requests] == ["1", "2"]
    assert call.said()[-1] == "Hello Ann"


def test_all_attempts_fail_takes_fallback(tmp_path):
    call, http, _ = run(tmp_path, [HttpResponse(503, b""), ConnectionRefusedError("refused")])
    call.clock.advance(0.5)
    assert len(http.requests) == 2
    assert call.said() == ["Fallback"]
    reasons = [f["reason"] for e, f in call.events if e == "webhook_failed"]
    assert reasons[0] == "HTTP 503" and reasons[1].startswith("ConnectionRefusedError")
    call.clock.advance(2)
    assert call.said() == ["Fallback", "Hello "]


def test_bad_replies_do_not_retry(tmp_path):
    for body in (b"not json", b"[1]", b'{"goto": "nowhere"}', b'{"variables": {"call.id": "x"}}'):
        call, http, _ = run(tmp_path, [HttpResponse(200, body), HttpResponse(200, b"{}")])
        assert len(http.requests) == 1, body
        assert call.said() == ["Fallback"], body
    call, http, _ = run(tmp_path, [HttpResponse(404, b""), HttpResponse(200, b"{}")])
    assert len(http.requests) == 1 and call.said() == ["Fallback"]


def test_hangup_while_waiting(tmp_path):
    call, _http, result = run(tmp_path, [None])
    call.clock.advance(1)
    call.remote_hangup()
    assert result == ["ended"]
    assert call.clock.getDelayedCalls() == []


class RealHttpTests(__import__("twisted.trial.unittest", fromlist=["TestCase"]).TestCase):
    """TreqHttpClient against a real twisted.web server on 127.0.0.1."""

    def test_post_json_round_trip(self):
        from twisted.internet import reactor
        from twisted.web import resource, server

        from ivr.dialplan.http import TreqHttpClient

        seen = []

        class Hook(resource.Resource):
            isLeaf = True

            def render_POST(self, request):
                seen.append((request.getHeader("content-type"), json.loads(request.content.read())))
                request.setHeader("content-type", "application/json")
                return b'{"variables": {"ok": "yes"}}'

        port = reactor.listenTCP(0, server.Site(Hook()), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = TreqHttpClient(reactor)
        self.addCleanup(client.close)
        url = f"http://127.0.0.1:{port.getHost().port}/hook"
        d = client.post_json(url, b'{"a": 1}', {"X-Call-Id": "c1"})

        def check(response):
            self.assertEqual(response.status, 200)
            self.assertEqual(json.loads(response.body), {"variables": {"ok": "yes"}})
            self.assertEqual(seen, [("application/json", {"a": 1})])
        return d.addCallback(check)


class ClosingReceiverTests(__import__("twisted.trial.unittest", fromlist=["TestCase"]).TestCase):
    """The server's client for flow webhooks against a real receiver on 127.0.0.1 that
    closes every connection after one response (tests/closing_receiver.py)."""

    SECRET = b"whsec_flow"

    def setUp(self):
        from twisted.internet import reactor

        from ivr.dialplan.http import TreqHttpClient

        from tests.closing_receiver import ClosingReceiver

        self.reactor = reactor
        self.rx = ClosingReceiver(reactor)
        self.addCleanup(self.rx.listen().stopListening)
        self.client = TreqHttpClient(reactor, secret=self.SECRET.decode())
        self.addCleanup(self.client.close)

    def test_requests_are_signed_like_status_webhooks(self):
        from ivr.httpclient.signing import SIGNATURE_HEADER, sign, verify

        body = b'{"call_id": "c1", "variables": {}}'
        before = int(self.reactor.seconds())
        d = self.client.post_json(self.rx.url(), body, {"X-Call-Id": "c1"})

        def check(response):
            assert response.status == 200
            got = self.rx.requests[0]
            assert got.body == body and got.headers["x-call-id"] == "c1"
            assert got.headers["content-type"] == "application/json"
            header = got.headers[SIGNATURE_HEADER.lower()]
            assert verify(self.SECRET, header, body, now=self.reactor.seconds())
            assert not verify(b"another secret", header, body, now=self.reactor.seconds())
            stamp = int(header.split(",")[0].removeprefix("t="))
            assert before <= stamp <= self.reactor.seconds()
            assert header == sign(self.SECRET, stamp, body)     # the status webhooks' scheme
        return d.addCallback(check)

    def test_back_to_back_webhook_verbs_do_not_fail_on_the_closed_connection(self):
        # The second verb's POST goes out as soon as the first reply is in, onto the pooled
        # connection the receiver is closing; with retries: 0 that used to take on_failure.
        from ivr.httpclient.signing import verify

        self.rx.reply = b'{"variables": {"ok": "yes"}}'
        url = self.rx.url("")
        plan = f"""
flows:
  main:
    - answer
    - webhook: {{url: "{url}/first", retries: 0, on_failure: [{{say: "Failed one"}}]}}
    - webhook: {{url: "{url}/second", retries: 0, on_failure: [{{say: "Failed two"}}]}}
    - say: "Done {{{{ok}}}}"
"""
        tmp = Path(self.mktemp())
        tmp.mkdir()
        call, _runner, _result = start(tmp, plan, http=self.client)
        done = Deferred()

        def poll():
            if call.said() or self.reactor.seconds() - started > 5:
                done.callback(None)
            else:
                self.reactor.callLater(0.01, poll)
        started = self.reactor.seconds()
        poll()

        def check(_):
            assert call.said() == ["Done yes"]
            assert [r.path for r in self.rx.requests] == ["/first", "/second"]
            assert [r.headers["x-ivr-attempt"] for r in self.rx.requests] == ["1", "1"]
            for r in self.rx.requests:
                assert verify(self.SECRET, r.headers["x-ivr-signature"], r.body,
                              now=self.reactor.seconds())
            assert self.client.resent == 1
        return done.addCallback(check)


def test_dialplan_service_hands_the_webhook_secret_to_its_http_client(tmp_path):
    from types import SimpleNamespace

    from twisted.internet.task import Clock

    from ivr.dialplan.service import DialplanService

    service = DialplanService(Clock(), tmp_path, tmp_path, SimpleNamespace(tts=None),
                              webhook_secret=b"whsec_server")
    assert service.http.secret == b"whsec_server"
