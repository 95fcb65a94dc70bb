"""Typed readers over PyYAML nodes that report errors with the node's line and column.

Verbs declare their arguments as ``FIELDS = {"name": field_type(...)}``; the loader reads a
step's mapping through :meth:`Parser.fields`.  A reader returns the converted value or
``INVALID`` after recording a :class:`DialplanError`; it never raises.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ivr.dialplan.model import Args, DialplanError, Prompt, Target, Where
from ivr.dialplan.templates import TemplateError, parse_template

INVALID = object()
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
VAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
RESERVED_PREFIXES = ("caller.", "call.")
NULL_TAG = "tag:yaml.org,2002:null"
BOOL_TAG = "tag:yaml.org,2002:bool"
INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"


def where(node: Node, file: str) -> Where:
    return Where(file, node.start_mark.line + 1, node.start_mark.column + 1)


def is_null(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == NULL_TAG)


def suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


@dataclass(frozen=True)
class FieldType:
    read: Callable[["Parser", Node], Any]
    required: bool = False
    default: Any = None
    #: what the reader accepts, as a JSON Schema fragment (``ivr.dialplan.json_schema``
    #: exports it; a ``{"$ref": "#/$defs/steps"}`` is a list of steps)
    json: Any = field(default=None, compare=False)


class Parser:
    """Per-load state: the error list, references to check later, the verb registry."""

    def __init__(self, errors: list, prompts_dir: str | None, registry: dict):
        self.errors = errors
        self.prompts_dir = Path(prompts_dir) if prompts_dir else None
        self.registry = registry
        self.file = "<string>"
        self.flow_refs: list[tuple[str, Where]] = []  # every goto/gosub/branch target

    # -- errors and positions ---------------------------------------------------------
    def error(self, node: Node, message: str, line_offset: int = 0, col_offset: int = 0):
        w = where(node, self.file)
        self.errors.append(DialplanError(w.file, w.line + line_offset, w.col + col_offset, message))
        return INVALID

    def where(self, node: Node) -> Where:
        return where(node, self.file)

    # -- structure ----------------------------------------------------------------------
    def mapping(self, node: Node, what: str) -> list[tuple[str, Node, Node]] | None:
        """(key, key_node, value_node) in order, with duplicate and non-string keys reported."""
        if not isinstance(node, MappingNode):
            self.error(node, f"{what} must be a mapping, not {kind(node)}")
            return None
        seen: dict[str, Node] = {}
        out = []
        for knode, vnode in node.value:
            if not isinstance(knode, ScalarNode) or knode.tag in (NULL_TAG,):
                self.error(knode, f"keys in {what} must be strings")
                continue
            key = knode.value
            if key in seen:
                first = where(seen[key], self.file)
                self.error(knode, f"duplicate key '{key}' in {what} (first at line {first.line})")
                continue
            seen[key] = knode
            out.append((key, knode, vnode))
        return out

    def sequence(self, node: Node, what: str) -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            self.error(node, f"{what} must be a list, not {kind(node)}")
            return None
        return list(node.value)

    def fields(self, node: Node, spec: dict[str, FieldType], what: str,
               main: str | None = None, whole: bool = False) -> Args | None:
        """Read a mapping (or, with ``main``, a scalar shorthand) against ``spec``.
        With ``whole`` the entire node is the value of ``main`` (``set: {a: 1, b: 2}``)."""
        if whole and main is not None:
            items = [(main, node, node)]
        elif main is not None and not isinstance(node, (MappingNode, SequenceNode)) and not is_null(node):
            items = [(main, node, node)]
        elif is_null(node) and not any(f.required for f in spec.values()):
            items = []
        else:
            items = self.mapping(node, what)
            if items is None:
                return None
        values: dict[str, Any] = {}
        ok = True
        for key, knode, vnode in items:
            field = spec.get(key)
            if field is None:
                self.error(knode, f"unknown key '{key}' in {what}{suggest(key, spec)}")
                ok = False
                continue
            value = field.read(self, vnode)
            if value is INVALID:
                ok = False
            else:
                values[key] = value
        for key, field in spec.items():
            if key not in values and ok:
                if field.required and not any(k == key for k, _, _ in items):
                    self.error(node, f"{what} needs '{key}'")
                    ok = False
                values.setdefault(key, field.default)
        return Args(values) if ok else None

    def steps(self, node: Node, what: str) -> tuple:
        from ivr.dialplan.steps import read_steps  # steps need the verb registry
        return read_steps(self, node, what)


def kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if is_null(node):
        return "empty"
    return f"'{node.value}'"


# -- field types ---------------------------------------------------------------------------

def _scalar(p: Parser, node: Node, what: str):
    if not isinstance(node, ScalarNode) or is_null(node):
        return p.error(node, f"expected {what}, got {kind(node)}")
    return node.value


def string(required=False, default=None, choices=None, regex=None, what="a string") -> FieldType:
    def read(p, node):
        v = _scalar(p, node, what)
        if v is INVALID:
            return v
        if choices is not None and v not in choices:
            return p.error(node, f"'{v}' is not one of {', '.join(choices)}{suggest(v, choices)}")
        if regex is not None and not re.fullmatch(regex, v):
            return p.error(node, f"'{v}' is not {what}")
        return v
    json = {"type": "string"}
    if choices is not None:
        json["enum"] = list(choices)
    if regex is not None:
        json["pattern"] = f"^(?:{regex})$"
    return FieldType(read, required, default, json)


def template(required=False, default=None, blank: str | None = None) -> FieldType:
    """Text with ``{{variables}}``; ``blank``: the error for text that is empty or only
    spaces (None: such text is allowed)."""
    def read(p, node):
        v = _scalar(p, node, "text")
        if v is INVALID:
            return v
        if blank is not None and not v.strip():
            return p.error(node, blank)
        return read_template(p, node, v)
    json = {"type": "string", "format": "template"}
    if blank is not None:
        json["pattern"] = r"\S"
    return FieldType(read, required, default, json)


def read_template(p: Parser, node: Node, text: str):
    try:
        return parse_template(text)
    except TemplateError as e:
        col = e.offset + (1 if getattr(node, "style", None) in ("'", '"') else 0)
        if "\n" in text[:e.offset] or node.start_mark.line != node.end_mark.line:
            col = 0  # multi-line scalar: point at its start
        return p.error(node, f"bad template: {e}", col_offset=col)


def number(required=False, default=None, minimum=None, maximum=None, integer=False) -> FieldType:
    what = "a whole number" if integer else "a number"

    def read(p, node):
        if not isinstance(node, ScalarNode) or node.tag not in (INT_TAG, FLOAT_TAG):
            return p.error(node, f"expected {what}, got {kind(node)}")
        try:
            v = int(node.value.replace("_", ""), 0) if node.tag == INT_TAG else float(node.value)
        except ValueError:
            return p.error(node, f"expected {what}, got {kind(node)}")
        if integer and not isinstance(v, int):
            return p.error(node, f"expected {what}, got {kind(node)}")
        if minimum is not None and v < minimum:
            return p.error(node, f"must be at least {minimum}, got {v}")
        if maximum is not None and v > maximum:
            return p.error(node, f"must be at most {maximum}, got {v}")
        return v
    json = {"type": "integer" if integer else "number"}
    if minimum is not None:
        json["minimum"] = minimum
    if maximum is not None:
        json["maximum"] = maximum
    return FieldType(read, required, default, json)


def integer(required=False, default=None, minimum=None, maximum=None) -> FieldType:
    return number(required, default, minimum, maximum, integer=True)


def boolean(default=False) -> FieldType:
    def read(p, node):
        if not isinstance(node, ScalarNode) or node.tag != BOOL_TAG:
            return p.error(node, f"expected true or false, got {kind(node)}")
        return node.value.lower() in ("true", "yes", "on")
    return FieldType(read, False, default, {"type": "boolean"})


def digits_key(required=False, default=None, allow_empty=False) -> FieldType:
    def read(p, node):
        v = _scalar(p, node, "DTMF keys")
        if v is INVALID:
            return v
        if (v == "" and not allow_empty) or not re.fullmatch(r"[0-9*#A-D]*", v):
            return p.error(node, f"'{v}' is not a DTMF key (0-9, *, #, A-D)")
        return v
    return FieldType(read, required, default, {"type": "string", "pattern":
                                               "^[0-9*#A-D]*$" if allow_empty else "^[0-9*#A-D]+$"})


def regex(required=False, default=None) -> FieldType:
    def read(p, node):
        v = _scalar(p, node, "a regular expression")
        if v is INVALID:
            return v
        try:
            return re.compile(v)
        except re.error as e:
            return p.error(node, f"bad regular expression: {e.msg} at position {e.pos}")
    return FieldType(read, required, default, {"type": "string", "format": "regex"})


def variable(required=False, default=None, settable=True) -> FieldType:
    def read(p, node):
        v = _scalar(p, node, "a variable name")
        if v is INVALID:
            return v
        return check_variable(p, node, v, settable)
    json = {"type": "string", "pattern": "^" + VAR_RE.pattern.removesuffix(r"\Z") + "$"}
    if settable:
        json["not"] = {"pattern": "^(?:caller|call)\\."}
    return FieldType(read, required, default, json)


def check_variable(p: Parser, node: Node, name: str, settable: bool = True):
    if not VAR_RE.match(name):
        return p.error(node, f"'{name}' is not a variable name (letters, digits, '_', dots)")
    if settable and name.startswith(RESERVED_PREFIXES):
        return p.error(node, f"'{name}' is read-only (caller.* and call.* are set by the server)")
    return name


FLOW_JSON = {"type": "string", "pattern": "^" + NAME_RE.pattern.removesuffix(r"\Z") + "$",
             "format": "flow"}


def flow_ref(required=False) -> FieldType:
    def read(p, node):
        v = _scalar(p, node, "a flow name")
        if v is INVALID:
            return v
        if not NAME_RE.match(v):
            return p.error(node, f"'{v}' is not a flow name")
        p.flow_refs.append((v, p.where(node)))
        return v
    return FieldType(read, required, None, FLOW_JSON)


def target(required=False) -> FieldType:
    """A flow name (goto it) or a list of steps (run them, then carry on)."""
    def read(p, node):
        if isinstance(node, SequenceNode):
            steps = p.steps(node, "inline steps")
            return INVALID if steps is INVALID else Target(steps=steps, where=p.where(node))
        name = flow_ref().read(p, node)
        return name if name is INVALID else Target(flow=name, where=p.where(node))
    return FieldType(read, required, None, TARGET_JSON)


TARGET_JSON = {"anyOf": [FLOW_JSON, {"$ref": "#/$defs/steps"}]}


def prompt_file_exists(p: Parser, node: Node, name: str):
    if p.prompts_dir is None:
        return name
    rel = name if name.lower().endswith(".wav") else name + ".wav"
    root = p.prompts_dir.resolve()
    path = (root / rel).resolve()
    if root != path and root not in path.parents:
        return p.error(node, f"prompt file '{name}' is outside {p.prompts_dir}")
    if not path.is_file():
        return p.error(node, f"missing prompt file '{name}' ({p.prompts_dir / rel})")
    return name


def prompt_file(required=False) -> FieldType:
    def read(p, node):
        v = _scalar(p, node, "a prompt file name")
        return v if v is INVALID else prompt_file_exists(p, node, v)
    return FieldType(read, required, None, {"type": "string", "format": "prompt-file"})


PROMPT_FIELDS = {
    "say": template(), "play": prompt_file(), "voice": string(), "language": string(),
    "rate": integer(minimum=50, maximum=500),
}


def prompt(required=False) -> FieldType:
    """TTS text, ``{say: text, voice: ...}``, ``{play: file}``, or a list of these."""
    def one(p, node):
        if isinstance(node, ScalarNode) and not is_null(node):
            if not node.value.strip():
                return p.error(node, "an empty prompt says nothing: write the words to speak "
                                     "or name a prompt file")
            t = read_template(p, node, node.value)
            return t if t is INVALID else Prompt(text=t)
        args = p.fields(node, PROMPT_FIELDS, "a prompt")
        if args is None:
            return INVALID
        if (args.say is None) == (args.play is None):
            return p.error(node, "a prompt needs exactly one of 'say' or 'play'")
        if args.say is not None and not args.say.source.strip():
            return p.error(node, "an empty prompt says nothing: write the words to speak")
        return Prompt(text=args.say, file=args.play, voice=args.voice,
                      language=args.language, rate=args.rate)

    def read(p, node):
        if isinstance(node, SequenceNode):
            items = [one(p, n) for n in node.value]
            if not items:
                return p.error(node, "an empty list is not a prompt")
            return INVALID if INVALID in items else tuple(items)
        v = one(p, node)
        return v if v is INVALID else (v,)
    return FieldType(read, required, None, PROMPT_JSON)


_PROMPT_ONE = [{"type": "string", "format": "template", "pattern": "\\S"},
               {"type": "object", "properties": {
                   **{k: f.json for k, f in PROMPT_FIELDS.items()},
                   "say": {"type": "string", "format": "template", "pattern": "\\S"}},
                "additionalProperties": False,
                "oneOf": [{"required": ["say"]}, {"required": ["play"]}]}]
PROMPT_JSON = {"anyOf": _PROMPT_ONE + [{"type": "array", "minItems": 1,
                                        "items": {"anyOf": _PROMPT_ONE}}]}


def list_of(item: FieldType, required=False, default=()) -> FieldType:
    def read(p, node):
        nodes = [node] if isinstance(node, ScalarNode) and not is_null(node) else p.sequence(node, "this")
        if nodes is None:
            return INVALID
        values = [item.read(p, n) for n in nodes]
        return INVALID if INVALID in values else tuple(values)
    return FieldType(read, required, default,
                     {"anyOf": [item.json or {}, {"type": "array", "items": item.json or {}}]})


def custom(read: Callable[[Parser, Node], Any], required=False, default=None,
           json: Any = None) -> FieldType:
    """A field with its own reader; ``json`` says what it accepts (JSON Schema)."""
    return FieldType(read, required, default, json)
