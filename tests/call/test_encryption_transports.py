"""How a leg's SIP hop is named in its record, and which hops may carry SDES keys."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from ivr.call.encryption import sip_transport
from ivr.call.media_leg import MediaLeg


@pytest.mark.parametrize("transport, name, secure", [
    ("UDP", "udp", False), ("TCP", "tcp", False), ("TLS", "tls", True),
    ("WS", "ws", False), ("WSS", "wss", True)])
def test_every_transport_is_named_and_only_tls_ones_are_secure(transport, name, secure):
    assert sip_transport(SimpleNamespace(transport=transport)) == name
    leg = MediaLeg(SimpleNamespace(), on_digit=lambda d, m: None, on_timeout=lambda: None)
    leg.sip_transport = name
    assert leg.secure_signalling is secure
