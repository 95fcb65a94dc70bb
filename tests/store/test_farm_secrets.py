"""The farm's shared secrets (ivr/store/farm_secrets.py), on SQLite and PostgreSQL: created
once by the first node, read back by every other and after a restart; nonces a node issues
with it are valid on another node."""
from __future__ import annotations

import threading

from ivr.sip.auth import NonceManager, NonceStatus
from ivr.store.farm_secrets import SIP_NONCE, shared_secret
from ivr.store.pg import PgDatabase


def test_the_first_node_creates_the_secret_and_every_node_reads_it(backend):
    first = shared_secret(backend.open(), SIP_NONCE)
    assert len(first) == 32
    assert shared_secret(backend.open(), SIP_NONCE) == first       # another node
    assert shared_secret(backend.open(), SIP_NONCE) == first       # a restart
    assert shared_secret(backend.open(), "other") not in (first, b"")


def test_a_nonce_issued_by_one_node_is_checked_by_another(backend):
    node_a = NonceManager(shared_secret(backend.open(), SIP_NONCE))
    node_b = NonceManager(shared_secret(backend.open(), SIP_NONCE))
    nonce = node_a.issue(1000.0)
    assert node_b.check(nonce, 1001.0) is NonceStatus.VALID
    assert node_b.check_nc(nonce, 1, 1001.0)


def test_nodes_starting_at_once_agree(pg_url):
    found, errors = [], []

    def node():
        db = PgDatabase(pg_url, threaded=False)
        try:
            found.append(shared_secret(db, SIP_NONCE))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            db.close()
    threads = [threading.Thread(target=node) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(found) == 4 and len(set(found)) == 1, (errors, found)
