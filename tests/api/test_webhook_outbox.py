"""Status webhooks through the outbox (PostgreSQL mode, tested on both backends): written,
then delivered by whichever node is alive, in order per call, at least once, each with its
idempotency key; on a task.Clock with a fake receiver."""
from __future__ import annotations

from twisted.internet import task

from ivr.api.metrics import Metrics
from ivr.api.webhooks import WebhookDispatcher
from ivr.httpclient.signing import SIGNATURE_HEADER, verify
from ivr.store.outbox import Outbox

from ..store.conftest import backend, pg_cluster  # noqa: F401  (fixtures)
from .test_webhooks import SECRET, Receiver


def node(db, name, clock, receiver, **kw):
    return WebhookDispatcher(SECRET, clock, receiver.post, outbox=Outbox(db, node=name, lease=30),
                             **kw)


def test_events_go_out_in_order_with_retries_and_idempotency_keys(backend):
    clock = task.Clock()
    clock.advance(1000)
    rx = Receiver(clock, codes={"http://h/x": [500, "error"]})
    metrics = Metrics()
    a = node(backend.open(), "a", clock, rx, metrics=metrics)
    for event in ("initiated", "ringing", "completed"):
        a.send("c1", "http://h/x", event, {"e": event})
    a.send("c2", "http://h/y", "initiated")
    # c1's first event failed twice (HTTP 500, refused); c2 did not wait for it
    assert [(e["call_id"], e["sequence"]) for e in rx.events()] == [
        ("c1", 1), ("c2", 1)]
    clock.advance(1.0)
    assert len(rx.events("c1")) == 2
    clock.advance(2.0)
    got = rx.events("c1")
    assert [e["event"] for e in got] == ["initiated", "initiated", "initiated", "ringing",
                                          "completed"]
    assert [e["id"] for e in got[2:]] == ["c1:1", "c1:2", "c1:3"]
    assert len({e["id"] for e in got[:3]}) == 1          # retries repeat the key
    assert [h["X-IVR-Attempt"] for _, _, b, h in rx.requests if b'"c1:1"' in b] == [
        "1", "2", "3"]
    for _, _, body, headers in rx.requests:
        assert verify(SECRET, headers[SIGNATURE_HEADER], body, now=clock.seconds())
    assert a.delivered == 4
    assert a.outbox.idle()


def test_node_a_writes_and_dies_before_delivering_node_b_delivers(backend):
    clock = task.Clock()
    clock.advance(1000)
    held = Receiver(clock, hold=True)      # a's request never gets an answer: a is dead
    rx = Receiver(clock)
    a = node(backend.open(), "a", clock, held)
    b = node(backend.open(), "b", clock, rx, poll_interval=0.5)
    a.send("c1", "http://h/x", "answered", {"n": 1})
    a.send("c1", "http://h/x", "completed", {"n": 2})
    assert [e["id"] for e in held.events()] == ["c1:1"]   # claimed, then a died
    b.outbox.start()
    clock.advance(29.5)
    assert rx.events() == []                              # a's lease still holds
    clock.advance(0.5)
    clock.advance(0.5)
    assert [(e["id"], e["event"], e["data"]) for e in rx.events()] == [
        ("c1:1", "answered", {"n": 1}), ("c1:2", "completed", {"n": 2})]
    assert rx.events()[0] == held.events()[0]             # the same body, same key
    b.close()


def test_events_written_by_a_node_that_never_sent_are_delivered_by_another(backend):
    clock = task.Clock()
    clock.advance(50)
    db = backend.open()
    Outbox(db, node="a").add("s1", 1, "http://h/x", "initiated", {}, 50.0)
    rx = Receiver(clock)
    b = node(backend.open(), "b", clock, rx)
    b.outbox.start()                                      # first poll at once
    assert [e["id"] for e in rx.events()] == ["s1:1"]
    b.close()


def test_an_event_sent_after_the_calls_final_event_is_delivered(backend):
    clock = task.Clock()
    clock.advance(100)
    rx = Receiver(clock)
    a = node(backend.open(), "a", clock, rx)
    a.send("c9", "http://h/x", "answered")
    a.send("c9", "http://h/x", "completed")
    clock.advance(1.0)
    a.send("c9", "http://h/x", "recording-ready", {"url": "r"})
    clock.advance(1.0)
    assert [(e["id"], e["event"]) for e in rx.events("c9")] == [
        ("c9:1", "answered"), ("c9:2", "completed"), ("c9:3", "recording-ready")]


class FailingOutbox:
    """An outbox whose every claim fails with ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def claim(self, now, limit):
        from twisted.internet.defer import fail
        return fail(self.error)

    def purge(self, before):
        from twisted.internet.defer import succeed
        return succeed(None)


def test_a_database_outage_is_left_to_the_store_to_log_other_problems_are_logged_once(caplog):
    from ivr.api.webhooks import OutboxDelivery
    from ivr.store.db import StoreUnavailable
    clock = task.Clock()
    dispatcher = WebhookDispatcher(SECRET, clock, Receiver(clock).post)
    caplog.set_level("WARNING", logger="ivr.api.webhooks")
    away = OutboxDelivery(FailingOutbox(StoreUnavailable("the database is unreachable")),
                          dispatcher)
    for _ in range(3):
        away.poll()
    assert caplog.records == []          # the store logs the outage, once, not every poll
    broken = OutboxDelivery(FailingOutbox(RuntimeError("relation missing")), dispatcher)
    for _ in range(3):
        broken.poll()
    assert [r.getMessage() for r in caplog.records] == [
        "webhook outbox: claiming webhooks failed: relation missing"]
