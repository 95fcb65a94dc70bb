"""WebRTC offers through the call layer, in memory (tests/call/harness.py): a Chrome offer
to a plan is answered ICE-lite + DTLS-SRTP with the server's certificate (and nothing is
sent before ICE and DTLS are done); without a certificate it is refused 488; a re-INVITE
that only holds keeps the media, an ICE restart is refused; the CDR says dtls-srtp."""
from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest

from ivr.call.webrtc import DtlsCertificate
from ivr.sdp.session import parse_sdp

from .harness import SERVER_PORT, CallCore
from .test_call_lifecycle import assert_all_ended_once

CHROME = (Path(__file__).parents[1] / "sdp" / "data" / "chrome-120-webrtc-offer.sdp").read_bytes()
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
PLAN = """
routes:
  - {name: echo, flow: echo}
flows:
  echo:
    - answer
    - echo: 30
    - hangup
"""


@pytest.fixture
def core(tmp_path):
    core = CallCore(tmp_path / "plans", PLAN, rtp_pairs=4)
    yield core
    core.close()


def answered_sdp(phone) -> bytes:
    (body,) = [e[2] for e in phone.events if e[0] == "answered"]
    return body


def test_a_chrome_offer_is_answered_ice_lite_dtls_srtp(core):
    certificate = DtlsCertificate.generate(NOW)
    core.media.dtls_certificate = certificate
    session, phone = core.call("echo", CHROME)
    core.run(0.3, step=0.02)
    answer = answered_sdp(phone).decode()
    assert "m=audio " in answer and "UDP/TLS/RTP/SAVPF 0" in answer
    assert "a=ice-lite" in answer and "a=rtcp-mux" in answer
    assert f"a=fingerprint:{certificate.sdp_fingerprint}" in answer
    assert "a=setup:passive" in answer
    (leg,) = core.calls.values()
    port = parse_sdp(answer.encode()).media[0].port
    assert leg.rtp.local_port == port
    assert re.search(rf"a=candidate:\S+ 1 udp \d+ \S+ {port} typ host", answer)
    # ICE has not nominated and DTLS has not keyed: not one packet went out.
    assert leg.rtp.stats()["packets_sent"] == 0
    assert leg.media.media_encryption == "dtls-srtp"
    session.bye()
    core.run(0.3)
    assert_all_ended_once(core, 1)
    assert core.cdrs.records[0]["media_encryption"] == "dtls-srtp"


def test_without_a_certificate_a_webrtc_offer_is_488(core):
    session, phone = core.call("echo", CHROME)
    core.run(0.3, step=0.02)
    assert ("failed", 488) in phone.events
    assert_all_ended_once(core, 1)


def test_a_hold_reinvite_keeps_the_webrtc_media_and_an_ice_restart_is_488(core):
    core.media.dtls_certificate = DtlsCertificate.generate(NOW)
    session, phone = core.call("echo", CHROME)
    core.run(0.3, step=0.02)
    (leg,) = core.calls.values()
    first = answered_sdp(phone).decode()
    results = []
    hold = CHROME.replace(b"a=sendrecv", b"a=sendonly")
    session.reinvite(hold, on_done=lambda response, *rest: results.append(response.status))
    core.run(0.3, step=0.02)
    restart = re.sub(rb"a=ice-ufrag:\S+", b"a=ice-ufrag:Zz9X", CHROME)
    session.reinvite(restart, on_done=lambda response, *rest: results.append(response.status))
    core.run(0.3, step=0.02)
    assert results[1] == 488, results
    assert results[0] == 200, results
    assert not leg.ended
    ours = re.search(r"a=ice-ufrag:(\S+)", first).group(1)
    assert leg.media.local_sdp.media[0].attribute("ice-ufrag") == ours
    assert leg.rtp.direction == "recvonly"  # the hold held; the refused restart changed nothing
    session.bye()
    core.run(0.3)
    assert_all_ended_once(core, 1)
