"""``ivr serve --database postgresql://...`` with a real PostgreSQL (a throwaway cluster from
the Debian package) and SIPp: the CDR of an answered call is in PostgreSQL; while the
database is down new calls get 503 with Retry-After and a call in progress carries on, its
CDR written once the database is back."""
from __future__ import annotations

import json
import time
import urllib.request

import psycopg
import pytest

from tests.interop.peers import SCENARIOS, SippProcess, sipp
from tests.store.conftest import _need_postgres, fresh_database
from tests.store.pg_cluster import PgCluster


@pytest.fixture
def cluster():
    _need_postgres()
    c = PgCluster()
    yield c
    c.destroy()


def cdrs(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT leg_id, outcome, direction, route FROM cdrs "
                            "ORDER BY setup_at").fetchall()


def health(server) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/health", timeout=5) as r:
        return json.loads(r.read())


def wait_for(predicate, timeout: float = 15.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_serve_on_postgresql_survives_an_outage(cluster, server_factory, tmp_path):
    url = fresh_database(cluster)
    server = server_factory(extra=["--database", url])
    assert "database: PostgreSQL" in server.log()
    versions = psycopg.connect(url).execute("SELECT max(version) FROM schema_version")
    assert versions.fetchone()[0] >= 3                         # migrated at start

    r = sipp(tmp_path, server.sip, service="echo", duration_ms=300, tag="before")
    assert r.returncode == 0 and r.stat("SuccessfulCall(C)") == 1, str(r)
    rows = wait_for(lambda: cdrs(url), what="the first CDR in PostgreSQL")
    assert len(rows) == 1 and rows[0][1] == "answered" and rows[0][2] == "inbound"

    # a call in progress while the database goes away
    long_call = SippProcess(tmp_path, server.sip, service="echo", duration_ms=7000,
                            tag="during")
    server.wait_for_log("flow='echo_test'", timeout=10)
    time.sleep(0.5)
    cluster.stop()
    wait_for(lambda: health(server)["database"] == "unavailable", what="the outage noticed")
    r = sipp(tmp_path, server.sip, scenario=SCENARIOS / "uac_503.xml", service="echo",
             tag="refused")
    assert r.returncode == 0 and r.stat("SuccessfulCall(C)") == 1, str(r)  # 503 it was
    assert "Retry-After: 5" in r.messages, r.messages[-2000:]
    done = long_call.wait(30)
    assert done.returncode == 0 and done.stat("SuccessfulCall(C)") == 1, str(done)

    cluster.start()
    wait_for(lambda: health(server)["database"] == "ok", what="the database back")
    rows = wait_for(lambda: len(cdrs(url)) == 2 and cdrs(url), what="the queued CDR")
    assert [row[1] for row in rows] == ["answered", "answered"]   # none lost, none doubled
    r = sipp(tmp_path, server.sip, service="echo", duration_ms=300, tag="after")
    assert r.returncode == 0 and r.stat("SuccessfulCall(C)") == 1, str(r)
    wait_for(lambda: len(cdrs(url)) == 3, what="the third CDR")
    log = server.log()
    assert log.count("unreachable") == 1, log[-3000:]               # logged once
    assert "Traceback" not in log
