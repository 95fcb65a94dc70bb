"""The validated dialplan: frozen dataclasses, built only by :mod:`ivr.dialplan.loader`.

The running server only ever sees one of these; every value that came from YAML keeps
where it came from (``Where``) so run-time logs can point at the admin's line.
"""
from __future__ import annotations

from ivr.errors import SourceError

from dataclasses import dataclass, field
from typing import Any

from ivr.dialplan.templates import Template


DialplanError = SourceError  # file:line:col: message


@dataclass(frozen=True)
class Where:
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Settings:
    default_region: str = "US"
    voice: str | None = None
    language: str | None = None
    rate: int | None = None
    timezone: str = "UTC"
    recordings_dir: str = "recordings"
    max_steps: int = 1000


@dataclass(frozen=True)
class Prompt:
    """Something to play: TTS text (``text``) or a prompt file (``file``)."""
    text: Template | None = None
    file: str | None = None
    voice: str | None = None
    language: str | None = None
    rate: int | None = None


@dataclass(frozen=True)
class Target:
    """Where a branch goes: another flow (``flow``, a goto) or inline ``steps``."""
    flow: str | None = None
    steps: tuple = ()
    where: Where | None = None

    def describe(self) -> str:
        return self.flow if self.flow is not None else f"inline steps at {self.where}"


class Args:
    """A verb's validated arguments: read-only, attribute access (``args.text``)."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]):
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        raise AttributeError("Args are read-only")

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def items(self):
        return self._values.items()

    def __eq__(self, other) -> bool:
        return isinstance(other, Args) and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values)))

    def __repr__(self) -> str:
        return f"Args({self._values!r})"


@dataclass(frozen=True)
class Step:
    verb: str
    args: Args
    where: Where


@dataclass(frozen=True)
class Flow:
    name: str
    steps: tuple[Step, ...]
    where: Where


@dataclass(frozen=True)
class Route:
    kind: str          # number | name | prefix | pattern | regex | class
    value: str         # E.164 for number, the prefix, the pattern source, the class name...
    flow: str
    where: Where
    matcher: Any = field(default=None, compare=False)  # compiled regex for pattern/regex


@dataclass(frozen=True)
class Dialplan:
    settings: Settings
    routes: tuple[Route, ...]
    flows: dict  # name -> Flow (treat as read-only)
    files: tuple[str, ...] = ()

    def flow(self, name: str) -> Flow | None:
        return self.flows.get(name)
