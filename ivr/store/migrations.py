"""The versioned schema: numbered migrations, applied once each, at start, on either backend.

``schema_version`` holds one row per migration applied.  :func:`migrate` runs the missing
ones in order inside one transaction that holds the backend's write lock (PostgreSQL: an
advisory lock, so two nodes starting at once do not both migrate; SQLite: the file's write
lock), and is idempotent: a second call, or a second node, finds nothing to do.

Statements are written in SQLite's dialect; :func:`ivr.store.pg.pg_ddl` maps the type
names for PostgreSQL.  A migration is never edited once released: add the next number.
The CDR table also gains, after the migrations, any column :data:`ivr.store.cdr.COLUMNS`
has that the table lacks (databases made by older versions, columns added since), on both
backends (:class:`ivr.store.cdr.CdrStore` does that, then its indexes).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "CDRs and the DND list", (
        # the CDR columns of the release that introduced migrations; later columns are
        # added from ivr.store.cdr.COLUMNS (CdrStore), indexes after them
        "CREATE TABLE IF NOT EXISTS cdrs (leg_id TEXT PRIMARY KEY, session_id TEXT, "
        "role TEXT, direction TEXT, from_number TEXT, to_number TEXT, caller_id TEXT, "
        "setup_at REAL, answer_at REAL, end_at REAL, duration REAL, billsec REAL, "
        "outcome TEXT, end_reason TEXT, sip_status INTEGER, sip_reason TEXT, "
        "hangup_side TEXT, route TEXT, flow TEXT, digits TEXT, rtp_packets_lost INTEGER, "
        "rtp_loss_pct REAL, rtp_jitter_ms REAL, rtcp_remote_loss_pct REAL, "
        "rtcp_remote_lost INTEGER, rtcp_remote_jitter_ms REAL, rtcp_rtt_ms REAL, "
        "rtcp_sent INTEGER, rtcp_received INTEGER, recording TEXT, sip_transport TEXT, "
        "media_encryption TEXT, srtp_auth_failures INTEGER, srtp_replays INTEGER, "
        "extra TEXT)",
        "CREATE TABLE IF NOT EXISTS dnd (number TEXT PRIMARY KEY, reason TEXT, added_at REAL)",
    )),
    Migration(2, "registrations: the location service every node reads", (
        "CREATE TABLE IF NOT EXISTS registrations (aor TEXT NOT NULL, "
        "contact_key TEXT NOT NULL, contact TEXT NOT NULL, transport TEXT, host TEXT, "
        "port INTEGER, expires_at REAL NOT NULL, updated_at REAL NOT NULL, q REAL, "
        "call_id TEXT, cseq INTEGER, node TEXT NOT NULL, path TEXT, "
        "PRIMARY KEY (aor, contact_key))",
        "CREATE INDEX IF NOT EXISTS registrations_expiry ON registrations(expires_at)",
    )),
    Migration(3, "click-to-call sessions and their events", (
        "CREATE TABLE IF NOT EXISTS c2c_sessions (session_id TEXT PRIMARY KEY, "
        "node TEXT NOT NULL, state TEXT NOT NULL, final INTEGER NOT NULL DEFAULT 0, "
        "created_at REAL NOT NULL, updated_at REAL NOT NULL, body TEXT NOT NULL, "
        "cancel_requested_at REAL)",
        "CREATE INDEX IF NOT EXISTS c2c_sessions_created ON c2c_sessions(created_at)",
        "CREATE TABLE IF NOT EXISTS c2c_events (session_id TEXT NOT NULL, "
        "seq INTEGER NOT NULL, at REAL NOT NULL, event TEXT NOT NULL, "
        "PRIMARY KEY (session_id, seq))",
    )),
    Migration(4, "the webhook outbox (ivr/store/outbox.py)", (
        "CREATE TABLE IF NOT EXISTS webhook_outbox (key TEXT NOT NULL, seq INTEGER NOT NULL, "
        "url TEXT NOT NULL, payload TEXT NOT NULL, created_at REAL NOT NULL, "
        "next_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
        "dropped INTEGER NOT NULL DEFAULT 0, delivered_at REAL, claimed_by TEXT, "
        "claimed_until REAL, PRIMARY KEY (key, seq))",
        "CREATE INDEX IF NOT EXISTS webhook_outbox_open ON webhook_outbox(next_at) "
        "WHERE delivered_at IS NULL AND dropped = 0",
    )),
    Migration(5, "each node's calls, for GET /v1/calls on any node", (
        "CREATE TABLE IF NOT EXISTS node_calls (node TEXT NOT NULL, call_id TEXT NOT NULL, "
        "body TEXT NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (node, call_id))",
    )),
    Migration(6, "queues across nodes (ivr/store/queue_state.py)", (
        "CREATE TABLE IF NOT EXISTS queue_heads (queue TEXT PRIMARY KEY, "
        "counter INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS queue_callers (queue TEXT NOT NULL, caller TEXT NOT NULL, "
        "node TEXT NOT NULL, arrival INTEGER NOT NULL, joined_at REAL NOT NULL, "
        "state TEXT NOT NULL, agent TEXT, PRIMARY KEY (queue, caller))",
        "CREATE INDEX IF NOT EXISTS queue_callers_order ON queue_callers(queue, arrival)",
        "CREATE TABLE IF NOT EXISTS queue_agents (agent TEXT PRIMARY KEY, queue TEXT NOT NULL, "
        "state TEXT NOT NULL, caller TEXT, since REAL NOT NULL)",
    )),
    Migration(7, "secrets the farm's nodes share (ivr/store/farm_secrets.py)", (
        "CREATE TABLE IF NOT EXISTS farm_secrets (name TEXT PRIMARY KEY, "
        "value TEXT NOT NULL, created_at REAL NOT NULL)",
    )),
    Migration(8, "node liveness, and which node holds an offered or busy agent "
                 "(ivr/store/node_liveness.py)", (
        "CREATE TABLE IF NOT EXISTS node_heartbeats (node TEXT PRIMARY KEY, "
        "started_at REAL NOT NULL, seen_at REAL NOT NULL)",
        "ALTER TABLE queue_agents ADD COLUMN node TEXT",
    )),
    Migration(9, "SIP failure bans and failed authentications, farm-wide "
                 "(ivr/store/bans.py)", (
        "CREATE TABLE IF NOT EXISTS sip_bans (address TEXT PRIMARY KEY, "
        "failures INTEGER NOT NULL, since REAL NOT NULL, until REAL NOT NULL, "
        "node TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS sip_failures (address TEXT NOT NULL, node TEXT NOT NULL, "
        "at REAL NOT NULL)",
        "CREATE INDEX IF NOT EXISTS sip_failures_address ON sip_failures(address, at)",
    )),
)

VERSION_TABLE = ("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                 "name TEXT NOT NULL, applied_at REAL NOT NULL)")


def ddl(db, statement: str) -> str:
    """``statement`` (SQLite's dialect) in ``db``'s dialect."""
    return _ddl_for(db.dialect)(statement)


def migrate(db, now: Callable[[], float] | None = None) -> list[int]:
    """Bring ``db`` (a Database or PgDatabase) to the newest schema; returns the versions
    this call applied (empty when it was up to date)."""
    if getattr(db, "_migrated", False):
        return []
    import time
    clock = now or time.time
    translate = _ddl_for(db.dialect)

    def work(conn) -> list[int]:
        conn.execute(translate(VERSION_TABLE))
        have = {row[0] for row in conn.execute("SELECT version FROM schema_version")}
        applied = []
        for migration in MIGRATIONS:
            if migration.version in have:
                continue
            for statement in migration.statements:
                conn.execute(translate(statement))
            conn.execute("INSERT INTO schema_version (version, name, applied_at) "
                         "VALUES (?, ?, ?)", (migration.version, migration.name, clock()))
            applied.append(migration.version)
        return applied
    applied = db.run_locked(work)
    db._migrated = True
    return applied


def schema_version(db) -> int:
    """The newest migration applied to ``db`` (0: none)."""
    rows = db.read_now(lambda c: c.execute("SELECT max(version) FROM schema_version")
                       .fetchall())
    return rows[0][0] or 0


_TYPES = [(re.compile(r"\bREAL\b"), "DOUBLE PRECISION"), (re.compile(r"\bINTEGER\b"), "BIGINT")]


def pg_ddl(statement: str) -> str:
    """SQLite's DDL for PostgreSQL: REAL is a 4-byte float there, far too coarse for unix
    times, so it becomes DOUBLE PRECISION; INTEGER becomes BIGINT."""
    for pattern, replacement in _TYPES:
        statement = pattern.sub(replacement, statement)
    return statement


def _ddl_for(dialect: str) -> Callable[[str], Any]:
    return pg_ddl if dialect == "postgresql" else (lambda statement: statement)
