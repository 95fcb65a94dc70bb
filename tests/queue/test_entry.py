"""A queue entry knows its engine only through what it asks of it (EntryOwner): the entry
module imports nothing of the engine, so the two do not import each other."""
from __future__ import annotations

import ast
from pathlib import Path

import ivr.queue.entry


def test_the_entry_module_does_not_import_the_engine():
    tree = ast.parse(Path(ivr.queue.entry.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    assert "ivr.queue.engine" not in imported and "engine" not in imported
