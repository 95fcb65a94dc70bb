"""``{{ name }}`` templates in dialplan text: a tiny, safe renderer (no expressions, no Jinja).

Names are dotted identifiers (``caller.number``, ``call.called``, ``digits``).  Parsing happens
once, at load, so syntax errors carry the admin's line and column; rendering never fails:
a missing name renders as the empty string and is reported to ``on_missing``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


class TemplateError(ValueError):
    """A template that does not parse; ``offset`` is the index in the source text."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class Template:
    source: str
    parts: tuple  # str literals and Var references, in order

    @property
    def is_static(self) -> bool:
        return not any(isinstance(p, Var) for p in self.parts)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parts if isinstance(p, Var))

    def render(self, context: Mapping[str, object],
               on_missing: Callable[[str], None] | None = None) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, Var):
                value = context.get(part.name)
                if value is None:
                    if on_missing is not None:
                        on_missing(part.name)
                    value = ""
                out.append(str(value))
            else:
                out.append(part)
        return "".join(out)

    def __str__(self) -> str:
        return self.source


def parse_template(source: str) -> Template:
    """Split ``source`` into literals and ``{{ name }}`` references, or raise TemplateError."""
    parts: list = []
    pos = 0
    while True:
        start = source.find("{{", pos)
        stray = source.find("}}", pos)
        if stray != -1 and (start == -1 or stray < start):
            raise TemplateError("'}}' without a matching '{{'", stray)
        if start == -1:
            if pos < len(source):
                parts.append(source[pos:])
            break
        if start > pos:
            parts.append(source[pos:start])
        end = source.find("}}", start + 2)
        if end == -1:
            raise TemplateError("'{{' is never closed with '}}'", start)
        inner = source[start + 2:end]
        if "{{" in inner:
            raise TemplateError("'{{' inside '{{ }}'", start + 2 + inner.index("{{"))
        name = inner.strip()
        if not name:
            raise TemplateError("empty '{{ }}'", start)
        if not NAME_RE.match(name):
            raise TemplateError(f"bad variable name {name!r} in '{{{{ }}}}' "
                                "(letters, digits, '_' and dots only)", start)
        parts.append(Var(name))
        pos = end + 2
    return Template(source, tuple(parts))
