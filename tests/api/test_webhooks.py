"""Webhook signing, per-call ordering and the retry schedule, on a task.Clock."""
from __future__ import annotations

import hashlib
import hmac
import json

from twisted.internet import task
from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.task import deferLater

from ivr.api.metrics import Metrics
from ivr.api.webhooks import WebhookDispatcher
from ivr.httpclient.signing import SIGNATURE_HEADER, sign, verify

SECRET = b"whsec_test"


class Receiver:
    """A fake HTTP endpoint: answers from a script of codes; can hold requests open."""

    def __init__(self, clock, codes=None, hold=False):
        self.clock = clock
        self.codes = codes if isinstance(codes, dict) else {None: list(codes or [])}
        self.hold = hold
        self.requests = []   # (time, url, body, headers)
        self.open: list[Deferred] = []

    def post(self, url, body, headers):
        self.requests.append((self.clock.seconds(), url, body, headers))
        if self.hold:
            d = Deferred()
            self.open.append(d)
            return d
        script = self.codes.get(url, self.codes.get(None, []))
        code = script.pop(0) if script else 200
        if code == "error":
            return fail(ConnectionRefusedError("refused"))
        return succeed(code)

    def events(self, call_id=None):
        out = [json.loads(b) for _, _, b, _ in self.requests]
        return [e for e in out if call_id is None or e["call_id"] == call_id]


def test_signature_is_hmac_sha256_over_timestamp_and_body():
    clock = task.Clock()
    clock.advance(1_700_000_000)
    rx = Receiver(clock)
    WebhookDispatcher(SECRET, clock, rx.post).send("c1", "http://h/x", "ringing", {"a": 1})
    _, url, body, headers = rx.requests[0]
    header = headers[SIGNATURE_HEADER]
    t, v1 = header.split(",")
    assert t == "t=1700000000"
    expected = hmac.new(SECRET, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert v1 == "v1=" + expected
    assert verify(SECRET, header, body, now=1_700_000_010)
    assert not verify(SECRET, header, body + b" ", now=1_700_000_010)
    assert not verify(b"other", header, body, now=1_700_000_010)
    assert not verify(SECRET, header, body, now=1_700_001_000)        # too old
    assert not verify(SECRET, "garbage", body, now=1_700_000_000)
    payload = json.loads(body)
    assert payload["event"] == "ringing" and payload["call_id"] == "c1"
    assert payload["sequence"] == 1 and payload["data"] == {"a": 1}
    assert headers["Content-Type"] == "application/json"


def test_retry_schedule_is_exponential_then_dropped_with_metric():
    clock = task.Clock()
    rx = Receiver(clock, codes=[500] * 10)
    metrics = Metrics()
    wh = WebhookDispatcher(SECRET, clock, rx.post, metrics=metrics)
    wh.send("c1", "http://h/x", "answered")
    clock.pump([0.5] * 80)
    assert [t for t, *_ in rx.requests] == [0, 1, 3, 7, 15, 31]
    assert [h["X-IVR-Attempt"] for *_, h in rx.requests] == ["1", "2", "3", "4", "5", "6"]
    assert len(wh.dropped) == 1 and wh.idle()
    assert metrics.registry.get_sample_value("ivr_webhook_failures_total") == 1.0
    # each retry is signed afresh with its own timestamp
    _, _, body, headers = rx.requests[3]
    assert verify(SECRET, headers[SIGNATURE_HEADER], body, now=7)
    assert headers[SIGNATURE_HEADER].startswith("t=7,")


def test_retry_succeeds_and_later_events_wait_their_turn():
    clock = task.Clock()
    rx = Receiver(clock, codes={"http://h/x": ["error", 503]})
    wh = WebhookDispatcher(SECRET, clock, rx.post)
    wh.send("c1", "http://h/x", "initiated")
    wh.send("c1", "http://h/x", "ringing")
    wh.send("c2", "http://h/y", "initiated")        # another call is not held up
    assert [e["event"] for e in rx.events("c2")] == ["initiated"]
    assert len(rx.events("c1")) == 1 and wh.pending("c1") == 2
    clock.advance(1)
    clock.advance(2)
    got = rx.events("c1")
    assert [(e["event"], e["sequence"]) for e in got] == [
        ("initiated", 1), ("initiated", 1), ("initiated", 1), ("ringing", 2)]
    assert wh.idle() and wh.delivered == 3


def test_one_request_in_flight_per_call_and_order_kept():
    clock = task.Clock()
    rx = Receiver(clock, hold=True)
    wh = WebhookDispatcher(SECRET, clock, rx.post)
    for name in ("initiated", "ringing", "answered", "completed"):
        wh.send("c1", "http://h/x", name)
    wh.send("c2", "http://h/y", "initiated")
    assert len(rx.requests) == 2           # c1's first, c2's first
    while rx.open:
        rx.open.pop(0).callback(204)
    assert [e["event"] for e in rx.events("c1")] == ["initiated", "ringing", "answered",
                                                      "completed"]
    assert wh.idle()


def test_send_never_raises_even_if_transport_does():
    clock = task.Clock()

    def broken(url, body, headers):
        raise RuntimeError("boom")
    wh = WebhookDispatcher(SECRET, clock, broken, max_attempts=2)
    wh.send("c1", "http://h/x", "initiated")
    wh.send("c1", None, "ignored")           # no URL: nothing queued
    clock.advance(1)
    assert wh.idle() and len(wh.dropped) == 1


def test_notify_for_dialplan_webhook_verb():
    clock = task.Clock()
    rx = Receiver(clock)
    wh = WebhookDispatcher(SECRET, clock, rx.post)
    wh.notify("http://h/plan", {"digits": "1234"}, key="call-9")
    _, url, body, headers = rx.requests[0]
    assert url == "http://h/plan" and json.loads(body) == {"digits": "1234"}
    assert verify(SECRET, headers[SIGNATURE_HEADER], body, now=0)
    assert sign(SECRET, 0, body) == headers[SIGNATURE_HEADER]


class ClosingReceiverTests(__import__("twisted.trial.unittest", fromlist=["TestCase"]).TestCase):
    """The real transport against a receiver on 127.0.0.1 that closes after every response."""

    @inlineCallbacks
    def test_events_arrive_at_once_without_spending_attempts(self):
        from twisted.internet import reactor

        from tests.closing_receiver import ClosingReceiver

        rx = ClosingReceiver(reactor)
        self.addCleanup(rx.listen().stopListening)
        backoff = 3.0
        wh = WebhookDispatcher(SECRET, reactor, backoff=(backoff,))
        self.addCleanup(lambda: wh.close())
        names = ["initiated", "ringing", "answered", "completed"]
        started = reactor.seconds()
        for name in names:
            wh.send("c1", rx.url(), name)
        while not wh.idle() and reactor.seconds() - started < backoff:
            yield deferLater(reactor, 0.01)
        elapsed = reactor.seconds() - started
        assert wh.idle(), f"still {wh.pending('c1')} pending after {elapsed:.1f} s"
        assert elapsed < backoff                       # no event waited for a retry
        assert [json.loads(r.body)["event"] for r in rx.requests] == names
        assert [r.headers["x-ivr-attempt"] for r in rx.requests] == ["1"] * len(names)
        assert wh.delivered == len(names) and wh.dropped == []
        assert rx.connections == len(names)            # one fresh connection per event
        for r in rx.requests:
            assert verify(SECRET, r.headers["x-ivr-signature"], r.body, now=reactor.seconds())
