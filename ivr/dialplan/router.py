"""Route an incoming call to a flow by the number it called.

Candidates, in order: the Request-URI user part, P-Called-Party-ID (RFC 3455), the To user
part, then Diversion (RFC 5806, the most recent entry).  The first candidate that matches a
route wins; for one candidate the precedence is exact number > name > longest prefix >
pattern / regex (file order) > number class (toll_free, ..., any).

Exact numbers are E.164 or, for what no numbering plan dials, short codes and extensions
(``611``, ``7001``, ``*97``): both the route and the dialled user part are keyed by
:func:`~ivr.dialplan.numbers.route_number`.

Asterisk patterns match the dialled digits, the E.164 digits without '+', or (for numbers of
the default region's country) the national number: ``_NXXNXXXXXX`` is "a US number".
Regular expressions search the E.164 form (``^\\+4420``), or the raw user part when it is
not a number.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import phonenumbers

from ivr.dialplan.model import Dialplan, Route
from ivr.dialplan.numbers import (national_digits, number_class_matches, short_code, to_e164,
                                  user_part)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RouteMatch:
    flow: str
    called_e164: str | None  # the called number in E.164, None for a named route like "echo"
    called_raw: str          # the user part that matched
    route: Route
    source: str              # which header it came from: request_uri, p_called_party_id, to, diversion

    @property
    def called(self) -> str:
        return self.called_e164 or self.called_raw

    @property
    def label(self) -> str:
        """Which route matched, for the CDR: ``kind:value`` as the plan has it after
        validation (``number:+18005550100``, ``number:611``, ``name:echo``, ``prefix:+4420``,
        ``pattern:_NXXNXXXXXX``, ``regex:^\\+49``, ``class:toll_free``)."""
        return f"{self.route.kind}:{self.route.value}"


class Router:
    def __init__(self, dialplan: Dialplan):
        self.region = dialplan.settings.default_region
        self.country_prefix = f"+{phonenumbers.country_code_for_region(self.region)}"
        self.exact: dict[str, Route] = {}
        self.named: dict[str, Route] = {}
        self.prefixes: list[Route] = []
        self.patterns: list[Route] = []
        self.classes: list[Route] = []
        for r in dialplan.routes:
            if r.kind == "number":
                self.exact[r.value] = r
            elif r.kind == "name":
                self.named[r.value.lower()] = r
            elif r.kind == "prefix":
                self.prefixes.append(r)
            elif r.kind in ("pattern", "regex"):
                self.patterns.append(r)
            else:
                self.classes.append(r)
        self.prefixes.sort(key=lambda r: -len(r.value))  # stable: file order among equals

    def route(self, request_uri_user: str | None, to_user: str | None = None,
              diversion: str | None = None, p_called_party_id: str | None = None) -> RouteMatch | None:
        """Header values or bare user parts in; the matching flow or None (answer 404)."""
        candidates = (("request_uri", request_uri_user), ("p_called_party_id", p_called_party_id),
                      ("to", to_user), ("diversion", diversion))
        tried = set()
        for source, value in candidates:
            user = user_part(value)
            if user is None or user in tried:
                continue
            tried.add(user)
            match = self.match_user(user, source)
            if match is not None:
                return match
        log.info("no route for %s (request-uri %r, to %r, diversion %r, p-called-party-id %r)",
                 ", ".join(sorted(tried)) or "nothing", request_uri_user, to_user, diversion,
                 p_called_party_id)
        return None

    def _domestic(self, e164: str | None) -> bool:
        return e164 is not None and e164.startswith(self.country_prefix)

    def match_user(self, user: str, source: str = "request_uri") -> RouteMatch | None:
        e164 = to_e164(user, self.region)

        def found(route: Route) -> RouteMatch:
            return RouteMatch(route.flow, e164, user, route, source)

        key = e164 or short_code(user)
        if key is not None and key in self.exact:
            return found(self.exact[key])
        named = self.named.get(user.lower())
        if named is not None:
            return RouteMatch(named.flow, e164, user, named, source)
        digits = user.replace(" ", "").replace("-", "")
        for r in self.prefixes:
            subject = e164 if r.value.startswith("+") else digits
            if subject is not None and subject.startswith(r.value):
                return found(r)
        national = national_digits(user, self.region) if self._domestic(e164) else None
        for r in self.patterns:
            if r.kind == "regex":
                subjects = (e164 or digits,)
                if any(r.matcher.search(s) for s in subjects):
                    return found(r)
            else:
                subjects = [s for s in (e164, e164 and e164[1:], national, digits) if s]
                if any(r.matcher.match(s) for s in subjects):
                    return found(r)
        for r in self.classes:
            if number_class_matches(user, self.region, r.value):
                return found(r)
        return None
