"""A real listening API on 127.0.0.1:0 with a FakeTelephony on the real reactor.

Usage: python -m tests.api.demo_server DATA_DIR
Prints "PORT <n>" once listening.  The fake agent and customer progress on timers:
ringing -> answered -> bridged (3 s) -> completed.
"""
from __future__ import annotations

import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import succeed
from twisted.web.server import Site

from ivr.api.app import make_api
from ivr.api.config import ApiConfig
from ivr.api.limits import CappedRequest
from ivr.api.metrics import Metrics
from ivr.api.webhooks import WebhookDispatcher
from ivr.store.cdr import CdrStore
from ivr.store.db import Database
from ivr.store.dnd import DndList

from .fakes import FakeTelephony

PLANS = {"2001": {"ring": 0.3, "answer": 1.0},
         "+12025550143": {"ring": 0.3, "answer": 1.0, "hangup": 3.0}}


def main() -> None:
    data = Path(sys.argv[1])
    db = Database(data / "ivr.sqlite3")
    metrics = Metrics()
    webhooks = WebhookDispatcher(b"s", reactor, lambda url, body, headers: succeed(200))
    resource = make_api(FakeTelephony(reactor, PLANS), CdrStore(db), webhooks,
                        ApiConfig(recordings_dir=str(data)), reactor, dnd=DndList(db),
                        metrics=metrics, environ={"IVR_API_KEY": "server-secret-key"})
    port = reactor.listenTCP(0, Site(resource, requestFactory=CappedRequest), interface="127.0.0.1")
    print(f"PORT {port.getHost().port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
