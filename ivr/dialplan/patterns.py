"""Asterisk extension patterns (``_NXXNXXXXXX``) as regular expressions."""
from __future__ import annotations

import re

_CLASSES = {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]"}
_LITERALS = set("0123456789*#+")


class PatternError(ValueError):
    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.offset = offset


def pattern_to_regex(pattern: str) -> re.Pattern:
    """``_`` then digits, X (0-9), Z (1-9), N (2-9), [1-5] / [137], ``.`` (one or more
    more characters) and ``!`` (zero or more).  Matches the whole string."""
    if not pattern.startswith("_"):
        raise PatternError("an Asterisk pattern starts with '_'", 0)
    if len(pattern) == 1:
        raise PatternError("empty pattern", 0)
    out = []
    i = 1
    while i < len(pattern):
        ch = pattern[i]
        up = ch.upper()
        if up in _CLASSES:
            out.append(_CLASSES[up])
        elif ch in _LITERALS:
            out.append(re.escape(ch))
        elif ch in ".!":
            if i != len(pattern) - 1:
                raise PatternError(f"'{ch}' must end the pattern", i)
            out.append(".+" if ch == "." else ".*")
        elif ch == "[":
            end = pattern.find("]", i)
            if end == -1:
                raise PatternError("'[' is never closed", i)
            body = pattern[i + 1:end]
            if not body or not re.fullmatch(r"(?:[0-9*#](?:-[0-9])?)+", body):
                raise PatternError(f"bad character set '[{body}]'", i)
            out.append("[" + body.replace("*", r"\*").replace("#", r"\#") + "]")
            i = end
        elif ch in "-  ":
            pass  # visual separators
        else:
            raise PatternError(f"'{ch}' is not allowed in a pattern", i)
        i += 1
    return re.compile("".join(out) + r"\Z")
