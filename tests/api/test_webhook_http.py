"""The webhook transport against a real receiver on 127.0.0.1 that closes every connection."""
from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest
from twisted.web.client import ResponseNeverReceived

from ivr.httpclient.webhook_http import WebhookHttp

from tests.closing_receiver import ClosingReceiver


class WebhookHttpTests(unittest.TestCase):
    def setUp(self):
        self.rx = ClosingReceiver(reactor)
        self.addCleanup(self.rx.listen().stopListening)
        self.http = WebhookHttp(reactor)
        self.addCleanup(self.http.close)

    @inlineCallbacks
    def test_dead_reused_connection_is_resent_once_on_a_fresh_one(self):
        # The second POST goes out the moment the first answer is in, on the pooled
        # connection the receiver is closing: it must arrive anyway, on a new connection.
        first = yield self.http.post(self.rx.url("/1"), b'{"n":1}', {})
        second = yield self.http.post(self.rx.url("/2"), b'{"n":2}', {})
        assert (first.status, second.status) == (200, 200)
        assert [(r.path, r.body) for r in self.rx.requests] == [("/1", b'{"n":1}'),
                                                                ("/2", b'{"n":2}')]
        assert self.http.resent == 1 and self.rx.connections == 2

    @inlineCallbacks
    def test_failure_on_a_fresh_connection_is_not_resent(self):
        self.rx.answer = False                   # reads the request, hangs up
        with self.assertRaises(ResponseNeverReceived):
            yield self.http.post(self.rx.url(), b"{}", {})
        assert len(self.rx.requests) == 1 and self.rx.connections == 1
        assert self.http.resent == 0

    @inlineCallbacks
    def test_reply_body_is_capped(self):
        self.rx.reply = b"x" * 5000
        http = WebhookHttp(reactor, max_body=100)
        self.addCleanup(http.close)
        reply = yield http.post(self.rx.url(), b"{}", {"X-Test": "1"})
        assert reply.status == 200 and reply.body == b"x" * 100
        assert self.rx.requests[0].headers["x-test"] == "1"

    @inlineCallbacks
    def test_bad_url_fails_the_deferred_and_header_injection_is_flattened(self):
        for url in ("no-scheme", "http://127.0.0.1:99999/", "http://[::1/x"):
            d = self.http.post(url, b"{}", {})   # must not raise
            with self.assertRaises(Exception):
                yield d
        assert self.rx.requests == []
        yield self.http.post(self.rx.url(), b"{}", {"X-Bad": "a\r\nInjected: 1"})
        headers = self.rx.requests[0].headers
        assert "injected" not in headers and headers["x-bad"].startswith("a ")
