"""``ivr check [PATH...]``: validate dialplan files like a compiler.

Prints each error as ``file:line:col: message`` and returns 1, or prints
``OK: N routes, M flows`` and returns 0.
"""
from __future__ import annotations

import sys

from ivr.dialplan.loader import load_dialplans


def main(paths=None, prompts_dir: str | None = "prompts", out=None) -> int:
    out = out or sys.stdout
    paths = list(paths) if paths else ["dialplans"]
    plan, errors = load_dialplans(paths, prompts_dir)
    if errors:
        for e in errors:
            print(e, file=out)
        print(f"{len(errors)} error{'s' if len(errors) != 1 else ''}", file=out)
        return 1
    print(f"OK: {len(plan.routes)} routes, {len(plan.flows)} flows", file=out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
