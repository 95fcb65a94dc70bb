"""Route an incoming call to a flow by the number it called.

Candidates, in order: the Request-URI user part, P-Called-Party-ID (RFC 3455), the To user
part, then Diversion (RFC 5806, the most recent entry), each parsed once into a
:class:`~ivr.sip.address.PartyNumber` (:class:`~ivr.sip.address.InviteParties`).  The
first candidate that matches a route wins; for one candidate the precedence is exact
number > name > longest prefix > pattern / regex (file order) > number class (toll_free,
..., any).

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
from ivr.dialplan.numbers import number_class_matches, short_code
from ivr.sip.address import InviteParties, PartyNumber, parse_party
from ivr.sip.e164 import national_digits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RouteMatch:
    flow: str
    number: PartyNumber      # the dialled party that matched, as parsed from its header
    route: Route
    source: str              # which header it came from: request_uri, p_called_party_id, to, diversion

    @property
    def called_e164(self) -> str | None:
        """The called number in E.164, None for a named route like "echo"."""
        return self.number.e164

    @property
    def called_raw(self) -> str:
        """The (unescaped) user part that matched."""
        return self.number.user or ""

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

    def route(self, request_uri_user: str | PartyNumber | None,
              to_user: str | PartyNumber | None = None,
              diversion: str | PartyNumber | None = None,
              p_called_party_id: str | PartyNumber | None = None) -> RouteMatch | None:
        """Header values, bare user parts or parsed parties in; the matching flow or None
        (answer 404)."""
        parse = self.parse
        return self.route_parties(InviteParties(
            parse(request_uri_user), to=parse(to_user), diversion=parse(diversion),
            p_called_party_id=parse(p_called_party_id)))

    def parse(self, value: str | PartyNumber | None) -> PartyNumber | None:
        """A header value as a party, its national numbers read in the plan's region."""
        return parse_party(value, self.region)

    def route_parties(self, parties: InviteParties) -> RouteMatch | None:
        """The INVITE's parties (parsed once, by the caller) in; the matching flow or None."""
        tried = set()
        for source, party in parties.called_candidates():
            user = party.user if party is not None else None
            if user is None or user in tried:
                continue
            tried.add(user)
            match = self.match(party, source)
            if match is not None:
                return match
        log.info("no route for %s (request-uri %r, to %r, diversion %r, p-called-party-id %r)",
                 ", ".join(sorted(tried)) or "nothing", *(
                     p.raw if p is not None else None for p in
                     (parties.request_uri, parties.to, parties.diversion,
                      parties.p_called_party_id)))
        return None

    def _domestic(self, e164: str | None) -> bool:
        return e164 is not None and e164.startswith(self.country_prefix)

    def match(self, party: PartyNumber, source: str = "request_uri") -> RouteMatch | None:
        """The route for one dialled party (which must have a user part), or None."""
        user, e164 = party.user, party.e164

        def found(route: Route) -> RouteMatch:
            return RouteMatch(route.flow, party, route, source)

        key = e164 or short_code(user)
        if key is not None and key in self.exact:
            return found(self.exact[key])
        named = self.named.get(user.lower())
        if named is not None:
            return found(named)
        digits = user.replace(" ", "").replace("-", "")
        for r in self.prefixes:
            subject = e164 if r.value.startswith("+") else digits
            if subject is not None and subject.startswith(r.value):
                return found(r)
        national = national_digits(party.number) if self._domestic(e164) else None
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
            if number_class_matches(party.number, r.value):
                return found(r)
        return None
