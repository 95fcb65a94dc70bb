"""Round-trip editing of one dialplan file: read it as plain JSON with the line of every
entry, and write a changed JSON document back into the same YAML text keeping comments,
key order, quoting and layout of everything that did not change (ruamel.yaml).

    doc, lines = read_document(text)          # JSON value, {"/flows/main/2": (13, 7)}
    new_text = apply_document(text, changed)  # YAML text; untouched parts byte for byte

Pure: text in, text out (no files, no clock).  ``ivr.dialplan.loader`` stays the judge of
whether the result is a valid plan.
"""
from __future__ import annotations

import difflib
import io
import json
import re
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_TYPED = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool",
          "tag:yaml.org,2002:null"}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")  # flow and verb names stay unquoted
_INDENTS = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0), (2, 4, 0))


class EditError(ValueError):
    """The text does not parse or the document is not plain JSON data."""


def _pointer(base: str, key) -> str:
    return base + "/" + str(key).replace("~", "~0").replace("/", "~1")


def _value(node: Node, at: str, lines: dict) -> Any:
    lines[at] = lines.get(at) or (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, ScalarNode):
        if node.tag in _TYPED:
            return yaml.SafeLoader("").construct_object(node)
        return node.value
    if isinstance(node, SequenceNode):
        return [_value(n, _pointer(at, i), lines) for i, n in enumerate(node.value)]
    if isinstance(node, MappingNode):
        out = {}
        for knode, vnode in node.value:
            key = _pointer(at, knode.value if isinstance(knode, ScalarNode) else "?")
            lines[key] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
            out[str(knode.value) if isinstance(knode, ScalarNode) else "?"] = \
                _value(vnode, key, lines)
        return out
    raise EditError(f"unsupported YAML node at line {node.start_mark.line + 1}")


def read_document(text: str) -> tuple[Any, dict[str, tuple[int, int]]]:
    """The file as JSON (scalars keep YAML's int/float/bool/null, everything else is the
    text as written) and the (line, col) of every entry by JSON pointer."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise EditError(f"YAML: {e}") from None
    lines: dict = {}
    if node is None:
        return None, lines
    return _value(node, "", lines), lines


def _yaml(indent) -> YAML:
    y = YAML()
    y.preserve_quotes = True
    y.width = 4096
    y.brace_single_entry_mapping_in_flow_sequence = True
    y.indent(mapping=indent[0], sequence=indent[1], offset=indent[2])
    return y


def _dump(y: YAML, data) -> str:
    out = io.StringIO()
    y.dump(data, out)
    return out.getvalue()


def round_trip_yaml(text: str) -> YAML:
    """The ruamel settings under which ``text`` comes back unchanged (or the usual ones)."""
    for indent in _INDENTS:
        y = _yaml(indent)
        try:
            if _dump(y, y.load(text)) == text:
                return y
        except Exception:  # noqa: BLE001 - any ruamel failure: try the next settings
            continue
    return _yaml(_INDENTS[0])


def _to_rt(value, quote: bool = False):
    """Plain JSON -> ruamel containers (block style); keys that look like numbers quoted,
    strings double-quoted when the file writes its strings so (``quote``)."""
    if isinstance(value, dict):
        m = CommentedMap()
        for k, v in value.items():
            m[_key(k)] = _to_rt(v, quote)
        return m
    if isinstance(value, list):
        s = CommentedSeq()
        s.extend(_to_rt(v, quote) for v in value)
        return s
    if quote and isinstance(value, str) and "\n" not in value and not _WORD.match(value):
        return DoubleQuotedScalarString(value)
    return value


# -- the comment that trails a block (blank lines, the next section's heading) ----------

def _tail(node):
    """(comment holder, key, slot) of the comment after ``node``'s last line, or None."""
    if isinstance(node, (CommentedMap, CommentedSeq)) and node.fa.flow_style():
        return None
    if isinstance(node, CommentedMap) and len(node):
        last = list(node)[-1]
        entry = node.ca.items.get(last)
        if entry and entry[2] is not None:
            return node, last, 2
        return _tail(node[last])
    if isinstance(node, CommentedSeq) and len(node):
        last = len(node) - 1
        entry = node.ca.items.get(last)
        if entry and entry[0] is not None:
            return node, last, 0
        return _tail(node[last])
    return None


def _take_tail(node):
    found = _tail(node)
    if found is None:
        return None
    holder, key, slot = found
    token = holder.ca.items[key][slot]
    holder.ca.items[key][slot] = None
    return token


def _put_tail(node, token) -> None:
    if token is None:
        return
    found = _tail(node)
    if found is not None:  # already has one: keep both, ours after
        holder, key, slot = found
        holder.ca.items[key][slot].value += token.value
        return
    while isinstance(node, (CommentedMap, CommentedSeq)) and len(node):
        last = list(node)[-1] if isinstance(node, CommentedMap) else len(node) - 1
        child = node[last]
        if not isinstance(child, (CommentedMap, CommentedSeq)) or not len(child) \
                or child.fa.flow_style():
            if isinstance(node, CommentedMap):
                node.ca.items.setdefault(last, [None, None, None, None])[2] = token
            else:
                node.ca.items.setdefault(last, [None, None])[0] = token
            return
        node = child


def _key(k: str):
    k = str(k)
    try:
        parsed = yaml.safe_load(k)
    except yaml.YAMLError:
        parsed = None
    return DoubleQuotedScalarString(k) if not isinstance(parsed, str) or parsed != k else k


def _scalar(old, new, quote):
    if isinstance(new, str) and isinstance(old, (DoubleQuotedScalarString,
                                                 SingleQuotedScalarString)):
        return type(old)(new)
    return _to_rt(new, quote)


def _canon(v) -> str:
    return json.dumps(v, sort_keys=True)


def _merge(rt, old, new, quote):
    if old == new and type(old) is type(new):
        return rt
    if isinstance(new, dict) and isinstance(old, dict) and isinstance(rt, CommentedMap):
        keys = {str(k): k for k in rt}
        tail = _take_tail(rt)
        for k in [k for k in old if k not in new]:
            if k in keys:
                del rt[keys[k]]
        for pos, (k, v) in enumerate(new.items()):
            if k in keys and k in old:
                rt[keys[k]] = _merge(rt[keys[k]], old[k], v, quote)
            else:
                rt.insert(min(pos, len(rt)), _key(k), _to_rt(v, quote))
        _put_tail(rt, tail)
        return rt
    if isinstance(new, list) and isinstance(old, list) and isinstance(rt, CommentedSeq):
        ops = difflib.SequenceMatcher(None, [_canon(x) for x in old],
                                      [_canon(x) for x in new], autojunk=False).get_opcodes()
        pool: dict[str, list] = {}  # items removed from one place, maybe put back elsewhere
        for tag, i1, i2, _j1, _j2 in ops:
            if tag in ("delete", "replace"):
                for i in range(i1, i2):
                    pool.setdefault(_canon(old[i]), []).append(rt[i])
        tail = _take_tail(rt)
        for tag, i1, i2, j1, j2 in reversed(ops):
            if tag == "equal":
                continue
            common = min(i2 - i1, j2 - j1) if tag == "replace" else 0
            for n in range(common):
                if pool.get(_canon(new[j1 + n])):
                    rt[i1 + n] = pool[_canon(new[j1 + n])].pop()
                else:
                    rt[i1 + n] = _merge(rt[i1 + n], old[i1 + n], new[j1 + n], quote)
            for i in range(i2 - 1, i1 + common - 1, -1):
                del rt[i]
            for n, v in enumerate(new[j1 + common:j2]):
                reused = pool.get(_canon(v))
                rt.insert(i1 + common + n, reused.pop() if reused else _to_rt(v, quote))
        _put_tail(rt, tail)
        return rt
    return _scalar(rt, new, quote)


def apply_document(text: str, new: Any) -> str:
    """``text`` changed into ``new`` (plain JSON), with every untouched part as it was."""
    try:
        json.dumps(new)
    except (TypeError, ValueError):
        raise EditError("the document is not plain JSON data") from None
    old, _ = read_document(text)
    y = round_trip_yaml(text)
    try:
        rt = y.load(text)
    except Exception as e:  # noqa: BLE001 - ruamel's errors have no common base
        raise EditError(f"YAML: {e}") from None
    quote = '"' in text or not text.strip()
    if rt is None or old is None or not isinstance(new, (dict, list)):
        return _dump(y, _to_rt(new, quote)) if new is not None else ""
    return _dump(y, _merge(rt, old, new, quote))


__all__ = ["EditError", "apply_document", "read_document", "round_trip_yaml"]
