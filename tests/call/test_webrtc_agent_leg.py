"""Calls we place to a browser (issue #16: agents answer from a browser tab), in memory
(tests/call/harness.py): a browser registered over WebSocket takes only a WebRTC offer,
which the server does not make, so the INVITE to a WS/WSS destination carries no offer;
the browser's 200 OK carries its WebRTC offer and our ICE-lite + DTLS-SRTP answer goes
in the ACK.  A 200 without one ends the leg; UDP destinations still get our offer."""
from __future__ import annotations

import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from ivr.call.webrtc import DtlsCertificate
from ivr.sip.timers import TimerConfig
from ivr.sip.transport import Destination
from ivr.sip.ua import UserAgent

from tests.sip.test_ua_pair import HOST, FakeTransport

from .harness import CallCore
from .test_call_lifecycle import assert_all_ended_once

CHROME = (Path(__file__).parents[1] / "sdp" / "data" / "chrome-120-webrtc-offer.sdp").read_bytes()
BROWSER_PORT = 5074
PLAN = """
routes:
  - {name: echo, flow: echo}
flows:
  echo:
    - answer
    - hangup
"""


@pytest.fixture
def core(tmp_path):
    core = CallCore(tmp_path / "plans", PLAN, rtp_pairs=4)
    core.media.dtls_certificate = DtlsCertificate.generate(
        datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
    yield core
    core.close()


def browser(core, answer_with: bytes | None, reject: bool = False):
    """A UA at BROWSER_PORT that answers every INVITE 200 with ``answer_with`` (or 486)."""
    seen = []

    def incoming(session):
        seen.append(session.remote_sdp)
        if reject:
            session.reject(486)
        else:
            session.accept(answer_with)

    ua = UserAgent(core.clock, FakeTransport(core.network, BROWSER_PORT),
                   SimpleNamespace(incoming_call=incoming), HOST, BROWSER_PORT, TimerConfig())
    core.network.uas[(HOST, BROWSER_PORT)] = ua
    return seen


def dial(core, transport: str):
    route = (f"sip:agent@{HOST}:{BROWSER_PORT};transport=ws", Destination(transport, HOST,
                                                                         BROWSER_PORT), None)
    return core.control.originate_route(route, "2001")


def test_a_browser_gets_no_offer_and_our_webrtc_answer_goes_in_the_ack(core):
    offers = browser(core, CHROME)
    leg = dial(core, "WS")
    core.run(0.5, step=0.02)
    assert offers == [None]  # the INVITE carried no SDP
    (ack,) = [m for _, _, m in core.network.log if getattr(m, "method", "") == "ACK"]
    answer = ack.body.decode()
    assert "UDP/TLS/RTP/SAVPF" in answer and "a=ice-lite" in answer
    assert f"a=fingerprint:{core.media.dtls_certificate.sdp_fingerprint}" in answer
    assert leg.answered and not leg.ended
    assert leg.media.media_encryption == "dtls-srtp"
    assert leg.media.sip_transport == "ws"
    leg.hangup("test")
    core.run(0.5)
    assert_all_ended_once(core, 1)
    assert core.cdrs.records[0]["media_encryption"] == "dtls-srtp"


def test_a_2xx_without_an_offer_to_our_offerless_invite_ends_the_leg(core):
    browser(core, None)
    leg = dial(core, "WSS")
    core.run(0.5, step=0.02)
    assert leg.ended
    assert any("bad_answer_sdp" in line for line in leg.path), leg.path
    assert_all_ended_once(core, 1)


def test_a_udp_destination_still_gets_our_offer(core):
    offers = browser(core, None, reject=True)
    dial(core, "UDP")
    core.run(0.5, step=0.02)
    assert offers and offers[0] and b"m=audio" in offers[0]
