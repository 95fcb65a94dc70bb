"""Markers by folder, so the everyday loop can leave out what needs real peers or time:

- ``interop``: tests/interop/ (a real ``ivr serve`` with SIPp, baresip, PJSIP, Linphone,
  Chromium) and tests/local/ (PipeWire, the terminal phone).
- ``bench``: tests/bench/ (the benchmark harness's smoke runs).

``pytest -m "not interop and not bench"`` is the unit loop; the README's test command
runs everything.

Hypothesis: on CI (``CI`` set) the examples are derandomized, so a submission is judged on
the same examples every time and a bug a random seed happens to find shows up in a
developer's run (which explores new examples on each run) rather than as a random red CI.
"""
from __future__ import annotations

from pathlib import Path

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

_HERE = Path(__file__).resolve().parent
_BY_FOLDER = {"interop": "interop", "local": "interop", "bench": "bench"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        try:
            folder = Path(str(item.fspath)).resolve().relative_to(_HERE).parts[0]
        except ValueError:
            continue
        marker = _BY_FOLDER.get(folder)
        if marker is not None:
            item.add_marker(getattr(pytest.mark, marker))
