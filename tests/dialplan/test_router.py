import pytest

from ivr.dialplan.numbers import caller_id
from ivr.sip.address import user_part
from ivr.sip.e164 import to_e164
from ivr.dialplan.router import Router

from tests.dialplan.helpers import plan_of

PLAN = """
settings: {default_region: US}
routes:
  - {number: "+18005550100", flow: menu}
  - {name: echo, flow: echo}
  - {prefix: "+4420", flow: london}
  - {prefix: "+44", flow: uk}
  - {prefix: "9", flow: outside_line}
  - {pattern: "_212NXXXXXX", flow: national}
  - {regex: "^\\\\+49", flow: germany}
  - {class: toll_free, flow: tollfree}
flows:
  menu: [hangup]
  echo: [hangup]
  london: [hangup]
  uk: [hangup]
  outside_line: [hangup]
  national: [hangup]
  germany: [hangup]
  tollfree: [hangup]
"""


@pytest.fixture
def router(tmp_path):
    return Router(plan_of(tmp_path, PLAN))


@pytest.mark.parametrize("user,flow,e164", [
    ("+18005550100", "menu", "+18005550100"),
    ("8005550100", "menu", "+18005550100"),            # region US normalisation
    ("1-800-555-0100", "menu", "+18005550100"),
    ("echo", "echo", None),
    ("ECHO", "echo", None),
    ("+442079460000", "london", "+442079460000"),      # longest prefix wins
    ("+441614960000", "uk", "+441614960000"),
    ("2125551234", "national", "+12125551234"),        # Asterisk pattern on the national number
    ("+493012345678", "germany", "+493012345678"),     # regex on E.164
    ("8885550123", "tollfree", "+18885550123"),        # class toll_free
    ("+18885550123", "tollfree", "+18885550123"),
])
def test_precedence_and_normalisation(router, user, flow, e164):
    m = router.route(user)
    assert m is not None and m.flow == flow
    assert m.called_e164 == e164


def test_exact_beats_class_and_prefix_beats_pattern(router):
    assert router.route("8005550100").route.kind == "number"
    assert router.route("911").flow == "outside_line"  # raw digits prefix "9"


def test_unknown_number_is_none(router):
    assert router.route("+33123456789") is None
    assert router.route("nobody") is None
    assert router.route(None) is None


def test_trunk_headers(router):
    # the R-URI carries the trunk account: the DID is in To / P-Called-Party-ID / Diversion
    m = router.route("trunk-account", to_user="<sip:+18005550100@carrier.example>")
    assert (m.flow, m.source) == ("menu", "to")
    m = router.route("trunk-account", "<sip:nobody@x>",
                     p_called_party_id='"Menu" <tel:+1-800-555-0100>')
    assert (m.flow, m.source) == ("menu", "p_called_party_id")
    m = router.route("trunk-account", "<sip:nobody@x>",
                     diversion="<sip:echo@pbx.example>;reason=unconditional;counter=1, <sip:x@y>")
    assert (m.flow, m.source) == ("echo", "diversion")
    # the Request-URI wins when it routes
    assert router.route("echo", to_user="<sip:+18005550100@x>").flow == "echo"


def test_user_part_forms():
    assert user_part('"Bob, Jr" <sip:+15551234567@h;user=phone>;tag=1') == "+15551234567"
    assert user_part("sips:echo@example.com:5061") == "echo"
    assert user_part("tel:+1-800-555-0100;phone-context=+1") == "+1-800-555-0100"
    assert user_part("<sip:example.com>") is None
    assert user_part("") is None and user_part(None) is None
    assert user_part("sip:%2B1555@h") == "+1555"


def test_e164():
    assert to_e164("8005550100", "US") == "+18005550100"
    assert to_e164("020 7946 0000", "GB") == "+442079460000"
    assert to_e164("011 44 20 7946 0000", "US") == "+442079460000"
    assert to_e164("echo", "US") is None and to_e164("12", "US") is None


def test_caller_id_from_pai_and_privacy():
    c = caller_id('"Front" <sip:1000@pbx>;tag=1', '"Alice" <sip:+12125551234@t>, <tel:+12125551234>',
                  "id")
    assert (c.number, c.name, c.private) == ("+12125551234", "Alice", True)
    assert c.raw == '"Alice" <sip:+12125551234@t>'
    c = caller_id('"Bob" <sip:2125551234@x>;tag=9')
    assert (c.number, c.name, c.private) == ("+12125551234", "Bob", False)
    c = caller_id('"Anonymous" <sip:anonymous@anonymous.invalid>;tag=1')
    assert (c.number, c.name, c.private) == (None, None, True)
    c = caller_id("<sip:alice@example.com>", privacy="none")
    assert (c.number, c.private) == ("alice", False)


def test_pattern_national_form_only_for_home_country(tmp_path):
    router = Router(plan_of(tmp_path, """
        routes:
          - {pattern: "_NXXNXXXXXX", flow: us}
        flows:
          us: [hangup]
        """))
    assert router.route("+12125551234").flow == "us"
    assert router.route("+493012345678") is None  # national 3012345678 is German, not ours
