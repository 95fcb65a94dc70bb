"""Secrets every node of a farm shares, kept in the database (migration 7).

The first node to ask for a secret creates it (random, 32 bytes) under the migration lock
(:meth:`run_locked`: PostgreSQL's advisory lock), so two nodes starting at once still end
up with one value; every later node, and a node restarted, reads the same one.

``sip-nonce`` keys the SIP digest nonces (:class:`ivr.sip.auth.NonceManager`): a REGISTER
or INVITE challenged by one node can be answered on any other.
"""
from __future__ import annotations

import secrets
import time
from typing import Callable

from .migrations import migrate

SIP_NONCE = "sip-nonce"


def shared_secret(db, name: str, *, now: Callable[[], float] = time.time,
                  token: Callable[[int], str] = secrets.token_hex) -> bytes:
    """The secret ``name`` of the farm in ``db`` (created by the first caller)."""
    migrate(db)

    def work(conn) -> str:
        conn.execute("INSERT INTO farm_secrets (name, value, created_at) VALUES (?, ?, ?) "
                     "ON CONFLICT (name) DO NOTHING", (name, token(32), now()))
        return conn.execute("SELECT value FROM farm_secrets WHERE name = ?",
                            (name,)).fetchall()[0][0]
    return bytes.fromhex(db.run_locked(work))
