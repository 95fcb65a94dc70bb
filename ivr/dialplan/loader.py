"""Load and validate dialplan YAML files into one frozen :class:`Dialplan`.

Every error is a :class:`DialplanError` with the admin's ``file:line:col``.  All files of a
directory are merged: settings, routes and flows from any file may refer to each other.

    plan, errors = load_dialplans("dialplans", prompts_dir="prompts")
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from types import MappingProxyType

import phonenumbers
import yaml
from yaml.nodes import Node

from ivr.dialplan import timecond
from ivr.dialplan.model import Dialplan, DialplanError, Flow, Route, Settings
from ivr.dialplan.numbers import ALL_CLASSES, route_number
from ivr.dialplan.patterns import PatternError, pattern_to_regex
from ivr.dialplan.schema import INVALID, NAME_RE, Parser, custom, flow_ref, integer, string, suggest
from ivr.dialplan.verbs import REGISTRY

TOP_KEYS = ("settings", "routes", "flows")
ROUTE_KINDS = ("number", "name", "prefix", "pattern", "regex", "class")
_PREFIX_RE = re.compile(r"\+?[0-9*#]+\Z")
_NAME_ROUTE_RE = re.compile(r"[A-Za-z0-9_.+*#-]+\Z")


def _region(p, node):
    v = string().read(p, node)
    if v is INVALID:
        return v
    if v.upper() not in phonenumbers.SUPPORTED_REGIONS:
        return p.error(node, f"'{v}' is not a region code (ISO 3166 like US, GB, DE)")
    return v.upper()


def _tz(p, node):
    v = string().read(p, node)
    if v is INVALID:
        return v
    try:
        timecond.zone(v)
    except ValueError as e:
        return p.error(node, str(e))
    return v


SETTINGS_FIELDS = {"default_region": custom(_region, json={"type": "string", "pattern": "^[A-Za-z]{2}$"}),
                   "voice": string(), "language": string(),
                   "rate": integer(minimum=50, maximum=500),
                   "timezone": custom(_tz, json={"type": "string", "format": "timezone"}),
                   "recordings_dir": string(), "max_steps": integer(minimum=10, maximum=100000)}


def dialplan_files(paths) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file())
        else:
            out.append(p)
    return out


def _compose(path: Path, errors: list) -> Node | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        errors.append(DialplanError(str(path), 1, 1, f"cannot read: {e}"))
        return None
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        errors.append(DialplanError(str(path), line, col, f"YAML: {e.problem or e.context}"))
    except yaml.YAMLError as e:
        errors.append(DialplanError(str(path), 1, 1, f"YAML: {e}"))
    return None


def load_dialplans(paths, prompts_dir=None) -> tuple[Dialplan | None, list[DialplanError]]:
    """Validate every file; the plan, or None and the errors (sorted by file, line, col)."""
    errors: list[DialplanError] = []
    files = dialplan_files(paths)
    if not files:
        where = paths if isinstance(paths, (str, os.PathLike)) else ", ".join(map(str, paths))
        return None, [DialplanError(str(where), 1, 1, "no dialplan files (*.yaml) found")]
    p = Parser(errors, prompts_dir, REGISTRY)
    docs: list[tuple[str, dict]] = []
    for path in files:
        node = _compose(path, errors)
        p.file = str(path)
        if node is None or (node.tag.endswith(":null")):
            continue
        items = p.mapping(node, "a dialplan file")
        if items is None:
            continue
        sections = {}
        for key, knode, vnode in items:
            if key not in TOP_KEYS:
                p.error(knode, f"unknown section '{key}' (expected {', '.join(TOP_KEYS)}){suggest(key, TOP_KEYS)}")
            else:
                sections[key] = vnode
        docs.append((str(path), sections))
    settings = _settings(p, docs)
    flows: dict[str, Flow] = {}
    for file, sections in docs:
        p.file = file
        if "flows" in sections:
            _flows(p, sections["flows"], flows)
    routes: list[Route] = []
    seen: dict[tuple[str, str], Route] = {}
    for file, sections in docs:
        p.file = file
        if "routes" in sections:
            nodes = p.sequence(sections["routes"], "'routes'")
            for n in nodes or ():
                r = _route(p, n, settings.default_region)
                if r is INVALID:
                    continue
                key = (r.kind, r.value.lower() if r.kind == "name" else r.value)
                if key in seen:
                    first = seen[key].where
                    p.error(n, f"duplicate route: {r.kind} '{r.value}' is already routed at {first}")
                    continue
                seen[key] = r
                routes.append(r)
    for name, w in p.flow_refs:
        if name not in flows:
            errors.append(DialplanError(w.file, w.line, w.col,
                                        f"undefined flow '{name}'{suggest(name, flows)}"))
    if errors:
        order = {str(f): i for i, f in enumerate(files)}
        errors.sort(key=lambda e: (order.get(e.file, len(order)), e.line, e.col))
        return None, errors
    return Dialplan(settings, tuple(routes), MappingProxyType(flows), tuple(map(str, files))), []


def _settings(p: Parser, docs) -> Settings:
    values: dict = {}
    first: dict = {}
    for file, sections in docs:
        p.file = file
        node = sections.get("settings")
        if node is None:
            continue
        items = p.mapping(node, "'settings'")
        for key, knode, vnode in items or ():
            field = SETTINGS_FIELDS.get(key)
            if field is None:
                p.error(knode, f"unknown setting '{key}'{suggest(key, SETTINGS_FIELDS)}")
                continue
            if key in first:
                p.error(knode, f"setting '{key}' is already set at {first[key]}")
                continue
            first[key] = p.where(knode)
            v = field.read(p, vnode)
            if v is not INVALID:
                values[key] = v
    return Settings(**values)


def _flows(p: Parser, node: Node, flows: dict) -> None:
    items = p.mapping(node, "'flows'")
    for name, knode, vnode in items or ():
        if not NAME_RE.match(name):
            p.error(knode, f"'{name}' is not a flow name (letters, digits, '_', '-')")
            continue
        if name in flows:
            p.error(knode, f"duplicate flow '{name}' (first at {flows[name].where})")
            continue
        steps = p.steps(vnode, f"flow '{name}'")
        if steps is not INVALID:
            flows[name] = Flow(name, steps, p.where(knode))
        else:
            flows[name] = Flow(name, (), p.where(knode))  # keep the name: refs to it are fine


def _route(p: Parser, node: Node, region: str):
    items = p.mapping(node, "a route")
    if items is None:
        return INVALID
    kinds = [(k, kn, vn) for k, kn, vn in items if k in ROUTE_KINDS]
    flow = None
    for key, knode, vnode in items:
        if key == "flow":
            flow = flow_ref().read(p, vnode)
        elif key not in ROUTE_KINDS and key != "description":
            p.error(knode, f"unknown key '{key}' in a route{suggest(key, ROUTE_KINDS + ('flow',))}")
            return INVALID
    if len(kinds) != 1:
        found = f" (found {', '.join(k for k, _, _ in kinds)})" if kinds else ""
        return p.error(node, f"a route needs exactly one of {', '.join(ROUTE_KINDS)}{found}")
    if flow is None:
        return p.error(node, "a route needs 'flow'")
    kind_, knode, vnode = kinds[0]
    value = string().read(p, vnode)
    if INVALID in (value, flow):
        return INVALID
    matcher = None
    if kind_ == "number":
        key = route_number(value, region)  # E.164, or a short code / extension as dialled
        if key is None:
            return p.error(vnode, f"'{value}' is not a phone number (region {region}) or a "
                                  "short code (up to 8 of 0-9, * and #)")
        value = key
    elif kind_ == "name":
        if not _NAME_ROUTE_RE.match(value):
            return p.error(vnode, f"'{value}' is not a valid route name")
    elif kind_ == "prefix":
        if not _PREFIX_RE.match(value):
            return p.error(vnode, f"'{value}' is not a number prefix (digits, optional leading +)")
    elif kind_ == "pattern":
        try:
            matcher = pattern_to_regex(value)
        except PatternError as e:
            quoted = 1 if vnode.style in ("'", '"') else 0
            return p.error(vnode, f"bad pattern: {e}", col_offset=e.offset + quoted)
    elif kind_ == "regex":
        try:
            matcher = re.compile(value)
        except re.error as e:
            return p.error(vnode, f"bad regular expression: {e.msg} at position {e.pos}")
    elif value not in ALL_CLASSES:
        return p.error(vnode, f"unknown number class '{value}' (one of {', '.join(ALL_CLASSES)})"
                              f"{suggest(value, ALL_CLASSES)}")
    return Route(kind_, value, flow, p.where(node), matcher)


__all__ = ["load_dialplans", "dialplan_files"]
