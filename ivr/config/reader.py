"""Reading a YAML node tree with the admin's line numbers: a mapping's keys (unknown,
duplicate or plaintext-password keys refused), strings, whole numbers in a range,
booleans, lists and IP addresses, each problem kept as a ``file:line:col: message``
:class:`ConfigError` instead of raised, so one load reports every mistake at once.

Every key of ``config/extensions.yaml`` is read through :class:`_Reader`
(:mod:`.extensions` re-exports it; :mod:`.webrtc` and :mod:`.media_relay` are handed one).
"""
from __future__ import annotations

import ipaddress
import re
from typing import Mapping

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ivr.errors import SourceError

ConfigError = SourceError  # file:line:col: message

_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"


class _Reader:
    def __init__(self, file: str, environ: Mapping[str, str]):
        self.file = file
        self.environ = environ
        self.errors: list[ConfigError] = []

    def error(self, node: Node, message: str) -> None:
        self.errors.append(ConfigError(self.file, node.start_mark.line + 1,
                                       node.start_mark.column + 1, message))

    def mapping(self, node: Node, what: str, allowed: tuple[str, ...] | None = None
                ) -> dict[str, tuple[Node, Node]]:
        if node is None or (isinstance(node, ScalarNode) and node.tag == _NULL):
            return {}
        if not isinstance(node, MappingNode):
            self.error(node, f"{what} must be a mapping")
            return {}
        out: dict[str, tuple[Node, Node]] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, ScalarNode) or knode.tag == _NULL:
                self.error(knode, f"keys in {what} must be strings")
                continue
            key = knode.value
            if key in out:
                self.error(knode, f"duplicate key '{key}' in {what} "
                                  f"(first at line {out[key][0].start_mark.line + 1})")
                continue
            if allowed is not None and key not in allowed:
                if key == "password":
                    self.error(knode, f"plaintext 'password' is not allowed in {what}: run "
                                      "`ivr passwd USER --realm REALM` and paste its ha1_* lines")
                else:
                    self.error(knode, f"unknown key '{key}' in {what}")
                continue
            out[key] = (knode, vnode)
        return out

    def string(self, node: Node, what: str, regex: re.Pattern | None = None) -> str | None:
        if not isinstance(node, ScalarNode) or node.tag == _NULL or node.value == "":
            self.error(node, f"{what} must be a non-empty string")
            return None
        if regex is not None and not regex.match(node.value):
            self.error(node, f"{what} {node.value!r} is not valid")
            return None
        return node.value

    def integer(self, node: Node, what: str, minimum: int, maximum: int) -> int | None:
        if not isinstance(node, ScalarNode) or node.tag != _INT:
            self.error(node, f"{what} must be a whole number")
            return None
        try:
            value = int(node.value.replace("_", ""), 0)
        except ValueError:
            self.error(node, f"{what} must be a whole number")
            return None
        if not minimum <= value <= maximum:
            self.error(node, f"{what} must be between {minimum} and {maximum}")
            return None
        return value

    def boolean(self, node: Node, what: str) -> bool | None:
        if not isinstance(node, ScalarNode) or node.tag != _BOOL:
            self.error(node, f"{what} must be true or false")
            return None
        return node.value.lower() in ("true", "yes", "on")

    def strings(self, node: Node, what: str, regex: re.Pattern | None = None) -> tuple[str, ...]:
        if isinstance(node, ScalarNode) and node.tag != _NULL:
            items = [node]
        elif isinstance(node, SequenceNode):
            items = node.value
        else:
            self.error(node, f"{what} must be a list")
            return ()
        out = (self.string(item, f"item of {what}", regex) for item in items)
        return tuple(s for s in out if s is not None)


def _addresses(r: _Reader, node: Node, what: str) -> tuple[str, ...]:
    """A list of IP addresses (not networks, not names), each in its canonical text."""
    out = []
    items = node.value if isinstance(node, SequenceNode) else [node]
    for text, item in zip(r.strings(node, what), items):
        try:
            out.append(str(ipaddress.ip_address(text.strip("[]"))))
        except ValueError:
            r.error(item, f"{what}: {text!r} is not an IP address")
    return tuple(dict.fromkeys(out))
