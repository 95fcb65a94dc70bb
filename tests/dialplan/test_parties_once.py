"""An INVITE's numbers are parsed once (ivr/sip/address.py): the router, the caller ID
and the CDR all read the same parsed parties."""
from __future__ import annotations

import pytest

import ivr.dialplan.numbers
import ivr.dialplan.router
import ivr.sip.address
from ivr.call.records import call_summary
from ivr.sip.address import PartyNumber
from ivr.sip.message import parse_datagram

from tests.call.test_route_on_cdr import FakeSession, service  # noqa: F401 (fixture)


def invite(user: str, extra: str = "") -> object:
    return parse_datagram((
        f"INVITE sip:{user}@127.0.0.1;user=phone SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-1\r\n"
        "From: \"Alice\" <sip:%2B12025550143@127.0.0.2>;tag=a\r\n"
        f"To: <sip:{user}@127.0.0.1>\r\nCall-ID: c-{user}\r\nCSeq: 1 INVITE\r\n"
        f"Max-Forwards: 70\r\nContact: <sip:alice@127.0.0.2:5070>\r\n{extra}"
        "Content-Length: 0\r\n\r\n").encode())


@pytest.fixture
def parses(monkeypatch):
    """Every time a header *string* is parsed into a party, wherever it happens."""
    seen: list[str] = []
    real = ivr.sip.address.parse_party

    def counting(value, region="US"):
        if isinstance(value, str):
            seen.append(value)
        return real(value, region)

    for module in (ivr.sip.address, ivr.dialplan.router, ivr.dialplan.numbers):
        monkeypatch.setattr(module, "parse_party", counting, raising=False)
    return seen


def test_router_caller_id_and_cdr_share_one_parse(service, parses, monkeypatch):  # noqa: F811
    matches = []
    route_parties = service.router.route_parties
    monkeypatch.setattr(service.router, "route_parties",
                        lambda parties: matches.append(route_parties(parties)) or matches[-1])
    session = FakeSession(invite("%2B1-800-555-0100",
                                 "P-Asserted-Identity: <tel:+1-202-555-0143>\r\n"))
    call = service.start_call(session, session.invite)

    (match,) = matches
    assert isinstance(match.number, PartyNumber) and match.number.phone
    assert match.number.e164 == "+18005550100"
    row = call_summary(call)
    assert row["to_number"] == match.number.e164 == call.called
    # the caller is P-Asserted-Identity's party, the very object the INVITE's parse made
    assert call.caller.address is not None and call.caller.address.scheme == "tel"
    assert row["from_number"] == call.caller.address.e164 == "+12025550143"
    # each header string was parsed once: Request-URI, To, From, P-Asserted-Identity
    assert sorted(parses) == sorted([
        "sip:%2B1-800-555-0100@127.0.0.1;user=phone", "<sip:%2B1-800-555-0100@127.0.0.1>",
        '"Alice" <sip:%2B12025550143@127.0.0.2>;tag=a', "<tel:+1-202-555-0143>"])


def test_a_call_nobody_routes_records_the_dialled_user_unescaped(service):  # noqa: F811
    session = FakeSession(invite("no%62ody"))
    call = service.start_call(session, session.invite)
    assert session.rejected == [404]
    assert call_summary(call)["to_number"] == "nobody"
