"""Target resolution in the call-control core: extensions, SIP URIs, numbers via trunks."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from ivr.call.telephony import UnknownTarget
from ivr.call.control import CallControl
from ivr.config.extensions import parse_extensions
from ivr.sip.transport import Destination

CONFIG = """
realm: ivr.local
algorithms: [MD5]
extensions:
  "2001": {ha1_md5: 87a565bc203f8cedf2e3139a4402bcff, static_contacts: ["sip:desk@10.0.0.5:5070"]}
  "2002": {ha1_md5: 45f510763d8d21f7a0b550d7d493a274}
trunks:
  carrier: {address: "192.0.2.10:5080", transport: udp}
ring_groups:
  desk: {members: ["2001", "2002"], strategy: sequential}
"""


class Registrar:
    def __init__(self, bindings):
        self.bindings = bindings

    def lookup(self, ext):
        return self.bindings.get(ext, [])


def control(bindings=None):
    config, errors = parse_extensions(CONFIG)
    assert errors == []
    return CallControl(media=None, ua=None, calls={}, directory=config,
                       registrar=Registrar(bindings or {}))


def test_sip_uri_is_called_as_is():
    assert control().routes("sip:bob@example.com") == [("sip:bob@example.com", None, None)]


def test_registered_extension_is_reached_where_it_registered_from():
    binding = SimpleNamespace(uri="sip:2002@10.1.1.1:5060", target=lambda: ("udp", "203.0.113.7", 40000))
    routes = control({"2002": [binding]}).routes("2002")
    assert routes == [("sip:2002@10.1.1.1:5060", Destination("UDP", "203.0.113.7", 40000), None)]


def test_unregistered_extension_falls_back_to_static_contacts_or_fails():
    assert control().routes("2001") == [("sip:desk@10.0.0.5:5070", None, None)]
    with pytest.raises(UnknownTarget):
        control().routes("2002")


def test_numbers_go_out_through_an_allowed_trunk_only():
    routes = control().routes("+12125551234")
    assert routes == [("sip:+12125551234@192.0.2.10:5080", Destination("UDP", "192.0.2.10", 5080),
                       None)]
    assert control().routes("+12125551234", ("carrier",))[0][0].endswith("@192.0.2.10:5080")
    with pytest.raises(UnknownTarget, match="not allowed"):
        control().routes("+12125551234", ())
    with pytest.raises(UnknownTarget):
        control().routes("not-a-number")


def test_ring_groups_come_from_the_directory():
    groups = control().ring_groups()
    assert list(groups) == ["desk"]
    assert groups["desk"].members == ("2001", "2002") and groups["desk"].strategy == "sequential"
    assert CallControl(media=None, ua=None, calls={}).ring_groups() == {}
