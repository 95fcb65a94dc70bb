"""baresip as a second, non-browser WebRTC-style peer (issue #16): its ``ice`` and
``dtls_srtp`` modules (account ``;mediaenc=dtls_srtp;medianat=ice``) call the bundled
echo line over plain SIP/UDP with a ``UDP/TLS/RTP/SAVP`` offer, and the server answers as
an ICE-lite DTLS-SRTP peer:

* with ``rtcp_mux yes`` baresip hears its own tone come back, the CDR says ``dtls-srtp``,
  and a tshark capture of the server's media ports during the call holds only STUN, DTLS
  and SRTP/SRTCP on the WebRTC leg's port (RFC 7983's first-byte ranges): no plain RTP,
  and no payload that decodes as the tone;
* with baresip's default ``rtcp_mux no`` the offer is refused with 488 and a Warning that
  names a=rtcp-mux: we have one port and one ICE component, and answering such an offer
  (as we once did) left baresip's full ICE agent looking for a component-2 candidate we
  never gave ("ICE not supported by peer") and the call silent.
"""
from __future__ import annotations

import random
import time

import numpy as np

from ivr.media.g711 import ulaw_decode

from .peers import Baresip
from .test_srtp_baresip import Capture, cdrs_when_written, has_tone, last_seconds
from .test_tls_baresip import tone, wait_for

FREQ = 700.0


class WebrtcBaresip(Baresip):
    """baresip with its ``ice`` and ``dtls_srtp`` modules; ``rtcp_mux`` as given."""

    rtcp_mux = True

    def _write_config(self, rtp_low: int) -> None:
        super()._write_config(rtp_low)
        config = self.dir / "config"
        # before account.so, or the account's mediaenc/medianat are unknown when it is read
        config.write_text(config.read_text().replace(
            "module account.so", "module ice.so\nmodule dtls_srtp.so\nmodule account.so")
            + f"rtcp_mux {'yes' if self.rtcp_mux else 'no'}\n")


class NoMuxBaresip(WebrtcBaresip):
    """The same with baresip's default ``rtcp_mux no``."""

    rtcp_mux = False


def start(server_factory, tmp_path):
    rtp_low = random.randrange(30000, 59000, 2)
    server = server_factory(extra=["--rtp-ports", f"{rtp_low}-{rtp_low + 400}"])
    server.rtp_range = (rtp_low, rtp_low + 400)
    return server


def phone(tmp_path, name="webrtc", rtcp_mux=True):
    kind = WebrtcBaresip if rtcp_mux else NoMuxBaresip
    p = kind(tmp_path, name, source=tone(tmp_path / f"{name}.wav", FREQ))
    (p.dir / "accounts").write_text(
        "<sip:visitor@127.0.0.1>;regint=0;answermode=auto;mediaenc=dtls_srtp;medianat=ice\n")
    return p.start()


def kind(payload: bytes) -> str:
    """RFC 7983 7: what a packet on a multiplexed WebRTC port is, by its first byte."""
    first = payload[0] if payload else -1
    if 0 <= first <= 3:
        return "stun"
    if 20 <= first <= 63:
        return "dtls"
    if 128 <= first <= 191:
        return "srtp"  # SRTP or SRTCP (the RTP/RTCP header stays in the clear)
    return "other"


def test_baresip_dtls_srtp_with_ice_hears_its_tone_and_the_wire_is_stun_dtls_srtp(
        server_factory, tmp_path):
    server = start(server_factory, tmp_path)
    caller = phone(tmp_path)
    capture = Capture(tmp_path, server.rtp_range, caller.rtp_range)
    try:
        caller.dial(f"sip:echo@127.0.0.1:{server.sip_port}")
        caller.wait_for_event("CALL_ESTABLISHED", timeout=15)
        time.sleep(9)  # the prompt (about 3 s), then its own voice back
        caller.hangup()
        caller.wait_for_event("CALL_CLOSED", timeout=10)
        heard = last_seconds(caller.received_wav())
    finally:
        packets = capture.stop()
        caller.stop()
    assert "DTLS-SRTP complete" in caller.log() and "ICE not supported" not in caller.log()
    assert has_tone(heard, FREQ), "the tone did not come back"
    (record,) = cdrs_when_written(server, 1)
    assert record["media_encryption"] == "dtls-srtp", record
    assert record["sip_transport"] == "udp", record

    # The WebRTC leg's port: the server's end of every captured packet (one call, one port).
    low, high = server.rtp_range
    ours = {d if low <= d <= high else s for s, d, _ in packets}
    assert len(ours) == 1, ours
    kinds = [kind(p) for _, _, p in packets]
    assert set(kinds) == {"stun", "dtls", "srtp"}, sorted(set(kinds))
    media = [p for _, _, p in packets if kind(p) == "srtp" and not 200 <= p[1] <= 204]
    assert len(media) > 300, len(media)
    # 12 header + 160 PCMU + the 80-bit tag: SRTP; a plain PCMU packet would be 172 bytes
    assert {len(p) for p in media} == {182}, sorted({len(p) for p in media})
    audio = np.concatenate([ulaw_decode(p[12:172]) for p in media])
    spectrum = np.abs(np.fft.rfft(audio[:8000 * 4].astype(np.float64)))
    freqs = np.fft.rfftfreq(len(audio[:8000 * 4]), 1 / 8000)
    near = spectrum[(freqs > FREQ - 20) & (freqs < FREQ + 20)].sum() / spectrum.sum()
    assert near < 0.05, f"{near:.0%} of the captured payloads' energy is at the tone"


def test_baresip_without_rtcp_mux_gets_488_naming_it(server_factory, tmp_path):
    server = start(server_factory, tmp_path)
    caller = phone(tmp_path, "nomux", rtcp_mux=False)
    try:
        caller.dial(f"sip:echo@127.0.0.1:{server.sip_port}")
        closed = caller.wait_for_event("CALL_CLOSED", timeout=15)
    finally:
        caller.stop()
    assert "488" in closed.get("param", ""), closed
    assert "CALL_ESTABLISHED" not in caller.event_types()
    wait_for(lambda: "rtcp-mux" in server.log(), "no 488 logged with its reason", server.log)
