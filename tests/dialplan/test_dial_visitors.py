"""A dial step with ``allow_trunk: true`` still gets no trunk when the caller is an
anonymous browser caller (SIP over WebSocket, no extension; issue #16 item 4)."""
from __future__ import annotations

from types import SimpleNamespace

from ivr.sip.authenticator import Caller, CallerKind
from ivr.sip.transport import Source

from tests.dialplan.fakes import FakeCall
from tests.dialplan.helpers import start
from tests.dialplan.test_dial import PLAN, FakeTelephony


def dial(tmp_path, transport):
    call = FakeCall()
    call.session = SimpleNamespace(source=Source(transport, "198.51.100.7", 40001),
                                   caller=Caller(CallerKind.ANONYMOUS))
    tel = FakeTelephony(call.clock)
    start(tmp_path, PLAN % ('"+12125551234"', ", allow_trunk: true"), call=call,
          telephony=tel)
    return tel


def test_allow_trunk_is_ignored_for_a_browser_visitor(tmp_path):
    assert dial(tmp_path, "WSS").trunks_asked == ()


def test_allow_trunk_still_applies_to_other_anonymous_callers(tmp_path):
    assert dial(tmp_path, "UDP").trunks_asked is None


def test_a_sip_uri_naming_a_trunk_is_skipped_for_a_browser_visitor(tmp_path):
    from ivr.config.extensions import parse_extensions
    directory, errors = parse_extensions(
        'trunks:\n  carrier: {address: "192.0.2.10:5080", transport: udp}\n')
    assert errors == []

    class Telephony(FakeTelephony):
        def routes(self, target, trunks=None):
            return [(target, None, None)]

    for transport, dialled in (("WS", []), ("UDP", ["sip:+12125551234@192.0.2.10:5080"])):
        call = FakeCall()
        call.session = SimpleNamespace(source=Source(transport, "198.51.100.7", 40001),
                                       caller=Caller(CallerKind.ANONYMOUS))
        tel = Telephony(call.clock)
        tel.directory = directory
        start(tmp_path, PLAN % ('"sip:+12125551234@192.0.2.10:5080"', ""), call=call,
              telephony=tel)
        assert tel.order == dialled, transport
