"""Prometheus metrics on a private registry, and a ``/metrics`` resource.

The call core reports through the small methods below (or the metric objects directly);
nothing here reads a clock or does I/O.
"""
from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from twisted.web.resource import Resource


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.active_calls = Gauge("ivr_active_calls", "Calls (legs) in progress", registry=r)
        self.calls = Counter("ivr_calls", "Ended calls by route and outcome",
                             ["route", "outcome"], registry=r)
        self.click_to_call = Counter("ivr_click_to_call_sessions",
                                     "Ended click-to-call sessions by final state and reason",
                                     ["state", "reason"], registry=r)
        self.dtmf = Counter("ivr_dtmf_digits", "DTMF digits received by mode",
                            ["mode"], registry=r)   # rfc4733 | inband | info
        self.prompt_cache = Counter("ivr_prompt_cache_lookups", "Prompt cache lookups",
                                    ["result"], registry=r)  # hit | miss
        self.media_late_ticks = Counter("ivr_media_clock_late_ticks",
                                        "Media clock ticks that ran late (skipped frames)",
                                        registry=r)
        self.webhook_failures = Counter("ivr_webhook_failures",
                                        "Webhook deliveries dropped after all retries",
                                        registry=r)
        self.api_requests = Counter("ivr_api_requests", "HTTP API requests by status code",
                                    ["code"], registry=r)

    # -- hooks for the call core --------------------------------------------------

    def track_active_calls(self, count: Callable[[], float]) -> None:
        """Make the active-calls gauge read ``count()`` at scrape time."""
        self.active_calls.set_function(count)

    def call_started(self) -> None:
        self.active_calls.inc()

    def call_ended(self, route: str | None, outcome: str | None) -> None:
        self.active_calls.dec()
        self.calls.labels(route or "none", outcome or "unknown").inc()

    def dtmf_digit(self, mode: str) -> None:
        self.dtmf.labels(mode).inc()

    def prompt_lookup(self, hit: bool) -> None:
        self.prompt_cache.labels("hit" if hit else "miss").inc()

    def late_ticks(self, n: int = 1) -> None:
        self.media_late_ticks.inc(n)

    def webhook_failed(self) -> None:
        self.webhook_failures.inc()

    def session_ended(self, state: str, reason: str | None) -> None:
        self.click_to_call.labels(state, reason or "none").inc()

    # -- exposition ---------------------------------------------------------------

    def resource(self) -> Resource:
        """A leaf resource for mounting ``/metrics`` outside the API app.  (prometheus_client's
        own ``MetricsResource`` is a WSGI resource that renders in a thread pool; rendering
        the registry is cheap, so this one does it on the reactor.)"""
        return _MetricsResource(self)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _MetricsResource(Resource):
    isLeaf = True

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
        return self.metrics.render()
