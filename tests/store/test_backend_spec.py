"""Choosing the database: --database / database: values, checked with file:line:col."""
from __future__ import annotations

import pytest

from ivr.store.backend import (SQLITE, DatabaseSpecError, describe, load_database_file,
                               open_database, parse_database)
from ivr.store.db import Database


@pytest.mark.parametrize("text", [None, "", "  ", "sqlite", "SQLite"])
def test_the_default_is_sqlite(text, tmp_path):
    assert parse_database(text) == SQLITE
    db = open_database(parse_database(text), tmp_path, threaded=False)
    assert isinstance(db, Database) and db.path == tmp_path / "ivr.sqlite3"
    db.close()


@pytest.mark.parametrize("text", ["postgresql://ivr@127.0.0.1:5432/ivr",
                                  "postgres://u:p@db.example.net/ivr?sslmode=require",
                                  "postgresql:///ivr"])
def test_postgresql_urls(text):
    assert parse_database(text) == text


@pytest.mark.parametrize("text, words", [
    ("mysql://u@h/db", "unknown database"), ("ivr.sqlite3", "unknown database"),
    ("postgresql://u:secret@h:99999/db", "not a database URL"),
    ("postgresql://h/db\nx", "control character")])
def test_bad_values_are_refused_without_showing_the_password(text, words):
    with pytest.raises(DatabaseSpecError, match=words) as info:
        parse_database(text)
    assert "secret" not in str(info.value)
    assert "secret" not in describe("postgresql://u:secret@h/db")


def test_the_config_file(tmp_path):
    path = tmp_path / "database.yaml"
    assert load_database_file(path) == (None, [])          # no file: the default
    path.write_text("database: postgresql://ivr@127.0.0.1:5432/ivr\n")
    assert load_database_file(path) == ("postgresql://ivr@127.0.0.1:5432/ivr", [])
    for text, where, words in [
            ("# nothing\n", None, None),
            ("database: mysql://x\n", "1:11", "unknown database"),
            ("\ndatabse: postgresql://h/x\n", "2:1", "unknown key 'databse'"),
            ("database: 5432\n", "1:11", "expected 'sqlite' or a postgresql:// URL"),
            ("- database\n", "1:1", "expected a mapping"),
            ("database: [\n", None, "not valid YAML")]:
        path.write_text(text)
        value, errors = load_database_file(path)
        if words is None:
            assert (value, errors) == (None, [])
            continue
        assert value is None and len(errors) == 1, errors
        assert words in errors[0] and errors[0].startswith(str(path))
        if where:
            assert errors[0].startswith(f"{path}:{where}:"), errors
