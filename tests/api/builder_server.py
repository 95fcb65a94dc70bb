"""The API with the Flow Builder over a copy of the bundled plans, on the real reactor.

Usage: python -m tests.api.builder_server DATA_DIR   (plans copied to DATA_DIR/dialplans)
Prints "PORT <n>" once listening.  Admin key: ``admin-key-0123456789``; ``user-key-0123456789``
is a key without admin rights.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import succeed
from twisted.web.server import Site

from ivr.api.app import make_api
from ivr.api.config import ApiConfig
from ivr.api.limits import CappedRequest
from ivr.api.webhooks import WebhookDispatcher
from ivr.config.extensions import load_extensions
from ivr.dialplan.files import DialplanFiles
from ivr.server import extension_contexts
from ivr.dialplan.reload import DialplanStore
from ivr.store.cdr import CdrStore
from ivr.store.db import Database

from .fakes import FakeTelephony

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "admin-key-0123456789"
USER_KEY = "user-key-0123456789"


def main() -> None:
    data = Path(sys.argv[1])
    plans = data / "dialplans"
    if not plans.exists():
        shutil.copytree(ROOT / "tests" / "data" / "builder_plans", plans)
    store = DialplanStore(plans, None, reactor=reactor, use_inotify=False)
    assert store.reload() == []
    directory, errors = load_extensions(ROOT / "config" / "extensions.yaml")  # the bundled ones
    assert errors == [], errors
    files = DialplanFiles(plans, None, backups=data / "backups", reload=store.reload,
                          current_errors=lambda: store.errors,
                          entries=lambda: extension_contexts(directory))
    webhooks = WebhookDispatcher(b"s", reactor, lambda url, body, headers: succeed(200))
    config = ApiConfig(api_keys={ADMIN_KEY: {"name": "admin", "admin": True, "rate": 100,
                                             "burst": 200},
                                 USER_KEY: {"name": "user"}})
    resource = make_api(FakeTelephony(reactor, {}), CdrStore(Database(data / "ivr.sqlite3")),
                        webhooks, config, reactor, environ={}, dialplan_files=files)
    port = reactor.listenTCP(0, Site(resource, requestFactory=CappedRequest), interface="127.0.0.1")
    print(f"PORT {port.getHost().port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
