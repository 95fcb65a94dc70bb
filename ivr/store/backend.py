"""Which database: ``--database`` / ``database:`` -> SQLite in ``--data`` or PostgreSQL.

``None``, ``""`` or ``sqlite`` keep the embedded default (``DATA/ivr.sqlite3``, exactly as
before); ``postgresql://user:password@host:port/dbname?...`` (or ``postgres://``, libpq's
URL form) chooses PostgreSQL.  Anything else is refused with a sentence saying why.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

SQLITE = "sqlite"
SCHEMES = ("postgresql", "postgres")


class DatabaseSpecError(ValueError):
    """A ``--database`` / ``database:`` value that names no database we can use."""


def parse_database(text: str | None) -> str:
    """``"sqlite"`` or the PostgreSQL URL, checked; raises :class:`DatabaseSpecError`."""
    if text is None or not str(text).strip() or str(text).strip().lower() == SQLITE:
        return SQLITE
    if not isinstance(text, str):
        raise DatabaseSpecError(f"expected a postgresql:// URL or 'sqlite', got {text!r}")
    value = text.strip()
    if any(ch in value for ch in "\r\n\0"):
        raise DatabaseSpecError("the database URL contains a control character")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as exc:
        raise DatabaseSpecError(f"not a database URL ({exc}): {_hide(value)!r}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise DatabaseSpecError(
            f"unknown database {_hide(value)!r}: expected 'sqlite' (the default) or "
            "postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME")
    return value


def _hide(url: str) -> str:
    """The URL with its password replaced, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def describe(spec: str) -> str:
    return "SQLite" if spec == SQLITE else f"PostgreSQL {_hide(spec)}"


def open_database(spec: str, data_dir: str | Path, *, reactor=None, **options):
    """The Database (SQLite, ``data_dir/ivr.sqlite3``) or PgDatabase for ``spec`` (from
    :func:`parse_database`).  PostgreSQL's driver is imported only when it is chosen."""
    if spec == SQLITE:
        from .db import Database
        return Database(Path(data_dir) / "ivr.sqlite3", **options)
    from .pg import PgDatabase
    return PgDatabase(spec, reactor=reactor, **options)  # StoreUnavailable: unreachable


def load_database_file(path: str | Path) -> tuple[str | None, list[str]]:
    """``database:`` from a YAML file (``config/database.yaml``): ``(value, errors)``, the
    errors as ``file:line:col: message``.  No file: ``(None, [])`` (SQLite)."""
    import yaml
    path = Path(path)
    if not path.exists():
        return None, []
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{path}: cannot read: {exc}"]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        return None, [f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]

    def at(n) -> str:
        return f"{path}:{n.start_mark.line + 1}:{n.start_mark.column + 1}"
    if node is None:
        return None, []
    if not isinstance(node, yaml.MappingNode):
        return None, [f"{at(node)}: expected a mapping with 'database:'"]
    value, errors = None, []
    for key, item in node.value:
        name = key.value if isinstance(key, yaml.ScalarNode) else None
        if name != "database":
            errors.append(f"{at(key)}: unknown key {name!r} (expected 'database')")
            continue
        if not isinstance(item, yaml.ScalarNode) or item.tag != "tag:yaml.org,2002:str":
            errors.append(f"{at(item)}: database: expected 'sqlite' or a postgresql:// URL")
            continue
        try:
            value = parse_database(item.value)
        except DatabaseSpecError as exc:
            errors.append(f"{at(item)}: database: {exc}")
    return (None if errors else value), errors
