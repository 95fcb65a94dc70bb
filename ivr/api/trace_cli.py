"""``ivr trace CALL_ID``: a call's path through the dialplans, in the terminal.

By default it reads the CDR store itself (``--data``'s SQLite, or the PostgreSQL of
``--database`` / ``CONFIG/database.yaml``, as ``ivr serve`` chooses it), so it works on a
finished call whether or not the server runs.  A call still in progress has no CDR yet:
``--api http://HOST:PORT`` asks the running server instead (``GET /v1/builder/trace/{id}``,
with the admin key in ``IVR_API_KEY``), which knows live calls and finished ones alike.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .call_trace import format_trace, trace_of_cdr


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "trace", help="print a call's path through the dialplans",
        description="Print the steps a call ran (FILE:LINE, flow, verb) with the digits it "
                    "pressed and the branches and webhook replies at each step, from its CDR "
                    "in the data directory, or from a running server with --api.")
    p.add_argument("call_id", metavar="CALL_ID", help="the call's id (its SIP Call-ID, as in "
                                                      "the CDRs and /v1/calls)")
    p.add_argument("--data", default="data", metavar="DIR",
                   help="the server's data directory (default ./data)")
    p.add_argument("--database", default=None, metavar="URL",
                   help="'sqlite' or a postgresql:// URL (default: CONFIG/database.yaml's "
                        "database:, else SQLite in --data)")
    p.add_argument("--config", default="config", metavar="DIR")
    p.add_argument("--dialplans", default="dialplans", metavar="DIR",
                   help="file names are shown relative to this directory")
    p.add_argument("--api", default=None, metavar="URL",
                   help="ask the running server at URL (e.g. http://127.0.0.1:8080) instead; "
                        "needed for a call in progress; admin key from IVR_API_KEY")
    p.add_argument("--json", action="store_true", help="print the trace as JSON")
    return p


def _fail(message: str) -> int:
    print(f"ivr trace: {message}", file=sys.stderr)
    return 1


def _display(dialplans: str):
    base = Path(dialplans).resolve()

    def display(file: str) -> str:
        p = Path(file)
        try:
            return str(p.resolve().relative_to(base))
        except (ValueError, OSError):
            return p.name
    return display


def from_store(args) -> tuple[dict | None, str | None]:
    from ..store.backend import (SQLITE, DatabaseSpecError, load_database_file,
                                 open_database, parse_database)
    from ..store.cdr import row_to_dict
    spec = args.database
    if spec is None:
        spec, errors = load_database_file(Path(args.config) / "database.yaml")
        if errors:
            return None, "; ".join(errors)
    try:
        spec = parse_database(spec)
    except DatabaseSpecError as exc:
        return None, f"--database: {exc}"
    if spec == SQLITE and not (Path(args.data) / "ivr.sqlite3").is_file():
        return None, f"no CDR store in {args.data} (give the server's --data)"
    try:
        db = open_database(spec, args.data, threaded=False)
    except Exception as exc:  # unreachable PostgreSQL, unreadable file
        return None, f"cannot open the CDR store: {exc}"
    try:
        row = db.read_now(lambda conn: conn.execute(
            "SELECT * FROM cdrs WHERE leg_id = ?", (args.call_id,)).fetchone())
    except Exception as exc:
        return None, f"cannot read the CDR store: {exc}"
    finally:
        db.close()
    if row is None:
        return None, (f"no CDR for {args.call_id!r} in {args.data} (a call still in "
                      "progress has none yet: try --api http://HOST:PORT)")
    return trace_of_cdr(row_to_dict(row), _display(args.dialplans)), None


def from_api(args) -> tuple[dict | None, str | None]:
    from urllib.error import HTTPError, URLError
    from urllib.parse import quote
    from urllib.request import Request, urlopen
    key = os.environ.get("IVR_API_KEY")
    if not key:
        return None, "--api needs the admin key in IVR_API_KEY"
    url = args.api.rstrip("/") + "/v1/builder/trace/" + quote(args.call_id, safe="@")
    request = Request(url, headers={"X-API-Key": key, "Accept": "application/json"})
    try:
        with urlopen(request, timeout=10) as response:
            return json.loads(response.read()), None
    except HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except Exception:
            message = exc.reason
        return None, f"{exc.code}: {message}"
    except (URLError, OSError, ValueError) as exc:
        return None, f"cannot reach {args.api}: {getattr(exc, 'reason', exc)}"


def run(args) -> int:
    trace, error = from_api(args) if args.api else from_store(args)
    if error:
        return _fail(error)
    if args.json:
        print(json.dumps(trace, indent=2, default=str))
    else:
        print(format_trace(trace))
    return 0
