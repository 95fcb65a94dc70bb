"""Call detail records: one row per call leg, in SQLite (or PostgreSQL: ``--database``).

A record is written (and committed) when a leg ends.  Legs of one click-to-call session
share a ``session_id``.  Several writers may contribute to the same leg's row -- the call
core writes numbers, times and RTP statistics, the click-to-call session writes its
``session_id`` and ``role`` -- so :meth:`CdrStore.record` is an upsert keyed by ``leg_id``
that keeps existing values where the new record has none.

``route`` says which route took an inbound leg, as ``kind:value`` of the dialplan route after
validation (:attr:`ivr.dialplan.router.RouteMatch.label`): ``number:+18005550100`` (numbers
in E.164), ``number:611`` (short codes as written, without separators), ``name:echo``,
``prefix:+4420``, ``pattern:_NXXNXXXXXX``, ``regex:^\\+49``, ``class:toll_free``; ``extension``
for an authenticated extension's own call, ``api`` / ``click-to-call`` for legs the API
made, empty when no route took the call.  ``recording`` is the WAV path of the leg's
recording: the last ``record`` step's file, or the click-to-call session's.  Numbers are
stored as the call had them (E.164 where they parsed, else as dialled), which is why
:func:`ivr.api.numbers.number_forms` gives every form of a dialled string to look for.
"""
from __future__ import annotations

import csv
import io
import json
import sqlite3
from typing import Any, Iterable

from twisted.internet.defer import Deferred

from .db import Database
from .migrations import ddl, migrate

#: Column name -> SQL type.  ``digits`` and ``extra`` hold JSON.
COLUMNS: dict[str, str] = {
    "leg_id": "TEXT PRIMARY KEY",
    "session_id": "TEXT",
    "role": "TEXT",              # agent | customer | inbound | outbound
    "direction": "TEXT",         # inbound | outbound
    "from_number": "TEXT",
    "to_number": "TEXT",
    "caller_id": "TEXT",
    "setup_at": "REAL",          # unix seconds
    "answer_at": "REAL",
    "end_at": "REAL",
    "duration": "REAL",          # end - setup
    "billsec": "REAL",           # end - answer (0 if never answered)
    "outcome": "TEXT",           # answered | busy | no-answer | rejected | failed | cancelled
    "end_reason": "TEXT",
    "sip_status": "INTEGER",     # the INVITE's final response (sent inbound, received outbound)
    "sip_reason": "TEXT",
    "hangup_side": "TEXT",       # caller | callee | local | remote | system
    "route": "TEXT",             # kind:value of the matched route (see above)
    "flow": "TEXT",
    "digits": "TEXT",            # JSON list of gathered digit strings
    "rtp_packets_lost": "INTEGER",
    "rtp_loss_pct": "REAL",
    "rtp_jitter_ms": "REAL",
    # the far end's view of our stream, from its last RTCP report about it (RFC 3550 6.4)
    "rtcp_remote_loss_pct": "REAL",    # its cumulative lost / packets it expected, in %
    "rtcp_remote_lost": "INTEGER",     # its cumulative number of packets lost
    "rtcp_remote_jitter_ms": "REAL",   # its interarrival jitter estimate
    "rtcp_rtt_ms": "REAL",             # round trip from its LSR/DLSR
    "rtcp_sent": "INTEGER",            # RTCP reports we sent (before the closing BYE)
    "rtcp_received": "INTEGER",        # valid RTCP compound packets it sent us
    "recording": "TEXT",         # path of the leg's WAV recording
    "sip_transport": "TEXT",     # udp | tcp | tls | ws | wss: the leg's SIP hop
    "media_encryption": "TEXT",  # srtp:<suite> (e.g. srtp:AES_CM_128_HMAC_SHA1_80) | none
    "srtp_auth_failures": "INTEGER",  # SRTP/SRTCP packets dropped: wrong key, forged, damaged
    "srtp_replays": "INTEGER",        # SRTP/SRTCP packets dropped as replays
    "extra": "TEXT",             # JSON object for anything else
    # columns added since (a database made before gains them at start)
    "caller_kind": "TEXT",       # inbound: extension | trunk | anonymous | webrtc (browser)
    "source_address": "TEXT",    # inbound: host:port the INVITE came from
    "speech": "TEXT",            # JSON list: what speech input heard (text, confidence, times)
}
FIELDS = list(COLUMNS)
OUTCOMES = ("answered", "busy", "no-answer", "rejected", "failed", "cancelled")

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS cdrs ("
    + ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items()) + ")",
    "CREATE INDEX IF NOT EXISTS cdrs_setup ON cdrs(setup_at)",
    "CREATE INDEX IF NOT EXISTS cdrs_session ON cdrs(session_id)",
    "CREATE INDEX IF NOT EXISTS cdrs_from ON cdrs(from_number)",
    "CREATE INDEX IF NOT EXISTS cdrs_to ON cdrs(to_number)",
]

_FILL = (
    f"INSERT INTO cdrs ({', '.join(FIELDS)}) VALUES ({', '.join('?' for _ in FIELDS)}) "
    "ON CONFLICT(leg_id) DO UPDATE SET "
    + ", ".join(f"{f} = COALESCE(cdrs.{f}, excluded.{f})" for f in FIELDS if f != "leg_id")
)
_UPSERT = (
    f"INSERT INTO cdrs ({', '.join(FIELDS)}) VALUES ({', '.join('?' for _ in FIELDS)}) "
    "ON CONFLICT(leg_id) DO UPDATE SET "
    + ", ".join(f"{f} = COALESCE(excluded.{f}, cdrs.{f})" for f in FIELDS if f != "leg_id")
)


#: ``json.dumps(value, sort_keys=True)`` without building a new encoder for every call.
_dumps_sorted = json.JSONEncoder(sort_keys=True).encode


class InvalidCdr(ValueError):
    """A record the caller built wrongly (no leg_id, unknown field types)."""


def normalise(cdr: dict) -> list[Any]:
    """A CDR dict -> the row values in FIELDS order.  Unknown keys go to ``extra``."""
    if not cdr.get("leg_id"):
        raise InvalidCdr("a CDR needs a leg_id")
    row = dict(cdr)
    extra = {k: row.pop(k) for k in list(row) if k not in COLUMNS}
    if isinstance(row.get("extra"), dict):
        extra = {**row["extra"], **extra}
    row["extra"] = _dumps_sorted(extra) if extra else None
    digits = row.get("digits")
    if digits is not None:
        row["digits"] = json.dumps([digits] if isinstance(digits, str) else
                                   [str(d) for d in digits])
    if row.get("speech") is not None and not isinstance(row["speech"], str):
        row["speech"] = json.dumps(list(row["speech"]), sort_keys=True)
    setup, answer, end = row.get("setup_at"), row.get("answer_at"), row.get("end_at")
    if row.get("duration") is None and setup is not None and end is not None:
        row["duration"] = round(max(0.0, end - setup), 3)
    if row.get("billsec") is None and end is not None and setup is not None:
        row["billsec"] = round(max(0.0, end - answer), 3) if answer is not None else 0.0
    return [row.get(f) for f in FIELDS]


def row_to_dict(row: sqlite3.Row) -> dict:
    out = {k: row[k] for k in row.keys()}
    out["digits"] = json.loads(out["digits"]) if out.get("digits") else []
    out["extra"] = json.loads(out["extra"]) if out.get("extra") else {}
    if "speech" in out:
        out["speech"] = json.loads(out["speech"]) if out.get("speech") else []
    return out


def missing_columns(db: Database) -> list[str]:
    """``ALTER TABLE`` statements for columns a database made by an older version lacks."""
    return db.read_now(lambda conn: missing_columns_in(conn, db.dialect))


def missing_columns_in(conn, dialect: str) -> list[str]:
    if dialect == "postgresql":
        have = {row[0] for row in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'cdrs'")}
    else:
        have = {row[1] for row in conn.execute("PRAGMA table_info(cdrs)").fetchall()}
    return [f"ALTER TABLE cdrs ADD COLUMN {name} {kind}" for name, kind in COLUMNS.items()
            if name not in have and "PRIMARY KEY" not in kind]


class CdrStore:
    """The CDRs in ``db``: a :class:`~ivr.store.db.Database` (SQLite) or a
    :class:`~ivr.store.pg.PgDatabase` (PostgreSQL), one SQL text for both."""

    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db)  # the versioned schema, then the columns added since, then indexes

        def columns_and_indexes(conn) -> None:
            for statement in missing_columns_in(conn, db.dialect) + SCHEMA[1:]:
                conn.execute(ddl(db, statement))
        db.run_locked(columns_and_indexes)

    def record(self, cdr: dict, overwrite: bool = True) -> Deferred:
        """Upsert one leg's record; fires (with the leg_id) once committed.

        With ``overwrite`` (the call core, authoritative) the new non-null values replace
        stored ones; without it (click-to-call, API bookkeeping) they only fill gaps."""
        values = normalise(cdr)
        sql = _UPSERT if overwrite else _FILL

        def work(conn: sqlite3.Connection) -> str:
            conn.execute(sql, values)
            return values[0]
        return self.db.run(work, durable=True)  # an upsert: safe to write after an outage

    def query(self, since: float | None = None, until: float | None = None,
              number: str | Iterable[str] | None = None, outcome: str | None = None,
              session_id: str | None = None, limit: int = 100,
              offset: int = 0) -> Deferred:
        """Records newest first.  ``number`` (one string, or the forms from
        :func:`ivr.api.numbers.number_forms`) matches from, to or caller id exactly."""
        where, args = [], []
        if since is not None:
            where.append("setup_at >= ?")
            args.append(since)
        if until is not None:
            where.append("setup_at < ?")
            args.append(until)
        forms = [number] if isinstance(number, str) else list(number or ())
        forms = [f for f in forms if f]
        if forms:
            marks = ", ".join("?" for _ in forms)
            where.append(f"(from_number IN ({marks}) OR to_number IN ({marks})"
                         f" OR caller_id IN ({marks}))")
            args += forms * 3
        if outcome:
            where.append("outcome = ?")
            args.append(outcome)
        if session_id:
            where.append("session_id = ?")
            args.append(session_id)
        sql = "SELECT * FROM cdrs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY setup_at DESC, leg_id LIMIT ? OFFSET ?"
        args += [int(limit), int(offset)]

        def work(conn: sqlite3.Connection) -> list[dict]:
            return [row_to_dict(r) for r in conn.execute(sql, args)]
        return self.db.run(work)

    def get(self, leg_id: str) -> Deferred:
        def work(conn: sqlite3.Connection) -> dict | None:
            row = conn.execute("SELECT * FROM cdrs WHERE leg_id = ?", (leg_id,)).fetchone()
            return row_to_dict(row) if row else None
        return self.db.run(work)


def to_csv(records: Iterable[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(FIELDS)
    for rec in records:
        row = []
        for f in FIELDS:
            value = rec.get(f)
            if f in ("digits", "extra") and not isinstance(value, str):
                value = json.dumps(value) if value else ""
            row.append("" if value is None else value)
        writer.writerow(row)
    return buf.getvalue()
