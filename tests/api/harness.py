"""The API resource in memory (treq's StubTreq) over fakes and a task.Clock."""
from __future__ import annotations

import json

from treq.testing import StubTreq
from twisted.internet import task

from ivr.api.app import make_api
from ivr.api.config import ApiConfig
from ivr.api.metrics import Metrics
from ivr.api.webhooks import WebhookDispatcher
from ivr.store.cdr import CdrStore
from ivr.store.db import Database
from ivr.store.dnd import DndList

from .fakes import FakeTelephony
from .test_webhooks import Receiver

DEV_KEY = "dev-key-123"
LIMITED_KEY = "limited-key"


class Env:
    def __init__(self, tmp_path, plans=None, **config):
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.tel = FakeTelephony(self.clock, plans)
        self.db = Database(tmp_path / "ivr.sqlite3", threaded=False)
        self.store = CdrStore(self.db)
        self.dnd = DndList(self.db)
        self.metrics = Metrics()
        self.receiver = Receiver(self.clock)
        self.webhooks = WebhookDispatcher(b"secret", self.clock, self.receiver.post,
                                          metrics=self.metrics)
        cfg = ApiConfig(api_keys={LIMITED_KEY: {"name": "limited", "rate": 0.5, "burst": 2}},
                        recordings_dir=str(tmp_path), **config)
        self.resource = make_api(self.tel, self.store, self.webhooks, cfg, self.clock,
                                 dnd=self.dnd, metrics=self.metrics,
                                 environ={"IVR_API_KEY": DEV_KEY})
        self.api = self.resource.api
        self.http = StubTreq(self.resource)

    def request(self, method, path, body=None, key=DEV_KEY, headers=None, raw=None):
        hdrs = dict(headers or {})
        if key is not None:
            hdrs.setdefault("X-API-Key", key)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        d = self.http.request(method, "http://ivr.test" + path, data=data,
                              headers={k: [v] for k, v in hdrs.items()})
        self.http.flush()
        responses = []
        d.addBoth(responses.append)
        assert responses, f"{method} {path}: no response"
        resp = responses[0]
        if hasattr(resp, "raiseException"):
            resp.raiseException()
        content = []
        resp.content().addBoth(content.append)
        self.http.flush()
        return Response(resp.code, resp.headers, content[0])

    def advance(self, seconds, step=0.25):
        for _ in range(round(seconds / step)):
            self.clock.advance(step)


class Response:
    def __init__(self, code, headers, body):
        self.code = code
        self.headers = headers
        self.body = body

    def header(self, name):
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None

    @property
    def json(self):
        return json.loads(self.body)

    def error_code(self):
        return self.json["error"]["code"]
