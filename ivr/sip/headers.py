"""SIP header names and an ordered, case-insensitive multi-valued header list.

Pure: no I/O.  Header names are canonicalised on the way in (compact forms such as
``v`` and ``i`` become ``Via`` and ``Call-ID``), values are kept exactly as received so
a message can be forwarded or round-tripped without damage.
"""
from __future__ import annotations

from typing import Iterable, Iterator

from .uri import SipSyntaxError

#: RFC 3261 section 7.3.3 and later RFCs' compact forms.
COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_SPECIAL_CASE = [
    "Call-ID", "CSeq", "WWW-Authenticate", "MIME-Version", "RSeq", "RAck",
    "P-Asserted-Identity", "P-Preferred-Identity", "P-Called-Party-ID", "SIP-ETag",
    "SIP-If-Match", "Alert-Info", "Call-Info", "Error-Info",
]
_CANONICAL = {name.lower(): name for name in _SPECIAL_CASE}

#: Headers whose value is a comma-separated list (RFC 3261 7.3.1).  Authorization-style
#: headers are *not* list headers: commas separate their parameters.
LIST_HEADERS = frozenset(
    name.lower()
    for name in (
        "Via", "Contact", "Route", "Record-Route", "Allow", "Supported", "Require",
        "Proxy-Require", "Unsupported", "Accept", "Accept-Encoding", "Accept-Language",
        "Content-Encoding", "Content-Language", "In-Reply-To", "Allow-Events",
        "P-Asserted-Identity", "Diversion", "Path", "Service-Route", "Reason",
        "Warning", "Call-Info", "Alert-Info", "Error-Info",
    )
)

#: canonical_name's answers by the name as written (a few dozen in practice); bounded so
#: a peer sending endless distinct header names cannot grow it.
_NAME_MEMO: dict[str, str] = {}
_NAME_MEMO_SIZE = 1024


def canonical_name(name: str) -> str:
    """``'v'`` -> ``'Via'``, ``'call-id'`` -> ``'Call-ID'``, ``'x-foo'`` -> ``'X-Foo'``."""
    try:
        return _NAME_MEMO[name]
    except KeyError:
        pass
    canonical = _canonical_name(name)
    if len(_NAME_MEMO) < _NAME_MEMO_SIZE and len(name) <= 64:
        _NAME_MEMO[name] = canonical
    return canonical


def _canonical_name(name: str) -> str:
    lower = name.lower()
    if len(lower) == 1 and lower in COMPACT_FORMS:
        return COMPACT_FORMS[lower]
    special = _CANONICAL.get(lower)
    if special is not None:
        return special
    return "-".join(part[:1].upper() + part[1:] for part in lower.split("-"))


#: LIST_HEADERS as canonical names (what Headers stores), for the lookups below.
_LIST_CANONICAL = frozenset(canonical_name(name) for name in LIST_HEADERS)


def split_list(value: str, strict: bool = False) -> list[str]:
    """Split a comma-separated header value, respecting quotes and ``<...>``.

    Lenient by default (empty elements are skipped).  With ``strict=True`` an empty
    element (``a,,b`` or a trailing comma), an unterminated quote or ``<`` raises
    :class:`SipSyntaxError`: the RFC 3261 list grammar has no null elements.
    """
    if "," not in value:
        # The common case (one Via, one Contact): the loop below would keep every
        # character, so the answer is the stripped value.  Strictly, it would also
        # raise for an empty value and for an unbalanced quote or ``<``; without a
        # quote (so no escapes either) the last of ``<`` / ``>`` tells whether an
        # angle bracket is left open.
        if strict and ('"' in value or value.rfind("<") > value.rfind(">")):
            return _scan_list(value, strict)
        value = value.strip(" \t")
        if value:
            return [value]
        if strict:
            raise SipSyntaxError(f"empty list element in {value!r}")
        return []
    return _scan_list(value, strict)


def _scan_list(value: str, strict: bool) -> list[str]:
    items: list[str] = []
    current: list[str] = []
    in_quotes = False
    in_angle = False
    escaped = False
    for ch in value:
        if escaped:
            current.append(ch)
            escaped = False
            continue
        if in_quotes:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                in_quotes = False
            current.append(ch)
            continue
        if ch == '"':
            in_quotes = True
        elif ch == "<":
            in_angle = True
        elif ch == ">":
            in_angle = False
        elif ch == "," and not in_angle:
            items.append("".join(current).strip(" \t"))
            current = []
            continue
        current.append(ch)
    items.append("".join(current).strip(" \t"))
    if strict:
        if in_quotes or in_angle or escaped:
            raise SipSyntaxError(f"unbalanced quote or <> in {value!r}")
        if any(not item for item in items):
            raise SipSyntaxError(f"empty list element in {value!r}")
    return [item for item in items if item]


#: How many names one Headers' ``get`` memo keeps (the few a message is read by).
_FIRST_MEMO_SIZE = 32


class Headers:
    """Ordered list of ``(canonical name, raw value)`` pairs with case-insensitive lookup.

    Lookups go through an index (canonical name -> raw values in order) built on the
    first lookup after a change; every method that changes ``_items`` drops it, so a
    lookup always sees the current headers.  A parsed message is read dozens of times
    (validation, the transaction key, the dialog, the application) and changed once or
    twice (a stamped Via), so this turns list scans into dict lookups.

    The index maps a name to its one value (a ``str``) or, for a name on several lines,
    a tuple of them.  A dict of strings is not tracked by the cyclic garbage collector,
    and messages live on in their transactions for 32 s (Timer J, RFC 6026's Accepted
    state), so per-name lists would add thousands of objects to every full collection.
    """

    __slots__ = ("_items", "_index", "_first")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical_name(n), v) for n, v in items]
        self._index: dict[str, str | tuple[str, ...]] | None = None
        self._first: dict[str, str | None] = {}

    @classmethod
    def _canonical(cls, items: list[tuple[str, str]]) -> "Headers":
        """Headers over ``items`` whose names are already canonical (taken, not copied)."""
        new = cls.__new__(cls)
        new._items, new._index, new._first = items, None, {}
        return new

    def _values(self, key: str) -> str | tuple[str, ...] | None:
        """The raw value(s) of canonical ``key``: the value for one line, a tuple for more."""
        index = self._index
        if index is None:
            index = {}
            for n, v in self._items:
                found = index.get(n)
                if found is None:
                    index[n] = v
                elif found.__class__ is tuple:
                    index[n] = found + (v,)
                else:
                    index[n] = (found, v)
            self._index = index
            self._first = {}
        return index.get(key)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: str) -> bool:
        return self._values(_NAME_MEMO.get(name) or canonical_name(name)) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def copy(self) -> "Headers":
        return Headers._canonical(list(self._items))

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` (the first list element for list headers).

        Answers are kept by the name as asked until the headers change (the index is
        rebuilt then, and this memo with it): a message's Via, CSeq, Call-ID, From and
        To are asked for a dozen times each on their way through the layers."""
        if self._index is not None:
            try:
                v = self._first[name]
            except KeyError:
                pass
            else:
                return default if v is None else v
        key = _NAME_MEMO.get(name) or canonical_name(name)
        found = self._values(key)
        if found is None:
            v = None
        else:
            v = found[0] if found.__class__ is tuple else found
            if key in _LIST_CANONICAL:
                parts = split_list(v)
                v = parts[0] if parts else v
        first = self._first
        if len(first) < _FIRST_MEMO_SIZE:
            first[name] = v
        return default if v is None else v

    def get_raw(self, name: str) -> list[str]:
        """Every header line's raw value for ``name``, in order."""
        found = self._values(_NAME_MEMO.get(name) or canonical_name(name))
        if found is None:
            return []
        return list(found) if found.__class__ is tuple else [found]

    def count_raw(self, name: str) -> int:
        """How many header lines ``name`` has (``len(get_raw(name))`` without the list)."""
        found = self._values(_NAME_MEMO.get(name) or canonical_name(name))
        if found is None:
            return 0
        return len(found) if found.__class__ is tuple else 1

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``; list headers are split at their commas."""
        key = canonical_name(name)
        found = self._values(key)
        if found is None:
            return []
        lines = found if found.__class__ is tuple else (found,)
        if key not in _LIST_CANONICAL:
            return list(lines)
        values: list[str] = []
        for v in lines:
            values.extend(split_list(v))
        return values

    def add(self, name: str, value: str) -> None:
        self._items.append((canonical_name(name), str(value)))
        self._index = None

    def prepend(self, name: str, value: str) -> None:
        """Insert before the first header of that name (a new top Via), else at the top."""
        key = canonical_name(name)
        self._index = None
        for index, (n, _) in enumerate(self._items):
            if n == key:
                self._items.insert(index, (key, str(value)))
                return
        self._items.insert(0, (key, str(value)))

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` header by one with ``value`` (kept at the first position)."""
        key = canonical_name(name)
        self._index = None
        for index, (n, _) in enumerate(self._items):
            if n == key:
                self._items[index] = (key, str(value))
                self._items = [
                    item for i, item in enumerate(self._items) if i <= index or item[0] != key
                ]
                return
        self._items.append((key, str(value)))

    def remove(self, name: str) -> None:
        key = canonical_name(name)
        self._index = None
        self._items = [item for item in self._items if item[0] != key]

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first list element of ``name`` (a proxy pops its Via)."""
        key = canonical_name(name)
        for index, (n, v) in enumerate(self._items):
            if n == key:
                self._index = None
                parts = split_list(v) if key in _LIST_CANONICAL else [v]
                if len(parts) > 1:
                    self._items[index] = (key, ", ".join(parts[1:]))
                else:
                    del self._items[index]
                return parts[0] if parts else v
        return None

    def count(self, name: str) -> int:
        return len(self.get_all(name))
