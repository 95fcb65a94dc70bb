"""SRTP through the call layer, in memory (tests/call/harness.py) with real RTP sockets on
127.0.0.1: an SRTP offer is answered RTP/SAVP under each policy only over TLS, a plain one
is refused under ``required``, keys over plain UDP only with the logged override, an
encrypted echo and RFC 4733 digits, an SRTP leg bridged with a plain one (the relay
decrypts and re-encrypts), re-INVITEs that keep the keys, outbound legs to a ``required``
extension, and the CDR's ``sip_transport`` / ``media_encryption``."""
from __future__ import annotations

import socket
import struct

import numpy as np
import pytest

from ivr.config.extensions import parse_extensions
from ivr.media.g711 import ulaw_decode, ulaw_encode
from ivr.rtp.dtmf import encode_event
from ivr.rtp.srtp import SrtpContext
from ivr.sdp import make_offer, negotiate_answer, parse_sdp, serialize_sdp
from ivr.sip.message import Request, parse_datagram
from ivr.sip.timers import TimerConfig
from ivr.sip.transport import Source, stamp_via
from ivr.sip.ua import UserAgent

from tests.sip.test_ua_pair import HOST, App, FakeTransport

from .harness import PHONE_PORT, SERVER_PORT, CallCore, offer
from .test_call_lifecycle import assert_all_ended_once

DESK_PORT = 5072
PLAN = f"""
routes:
  - {{name: echo, flow: echo}}
  - {{name: menu, flow: menu}}
  - {{name: desk, flow: desk}}
flows:
  echo:
    - answer
    - echo: 30
    - hangup
  menu:
    - answer
    - gather: {{prompt: "your number", num_digits: 3, timeout: 5, variable: account}}
    - hangup
  desk:
    - dial: {{to: "sip:desk@{HOST}:{DESK_PORT}", timeout: 5}}
    - hangup
"""
SUITE = "AES_CM_128_HMAC_SHA1_80"
TONE = (0.3 * 32767 * np.sin(2 * np.pi * 700 * np.arange(160 * 50) / 8000)).astype(np.int16)


class Endpoint:
    """A phone's media end: a UDP socket, its SDP offer, and (SRTP) its keys."""

    def __init__(self, srtp: bool) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.offer_sd = make_offer(HOST, self.port, ("PCMU",), session_id=7, version=1,
                                   media_encryption="required" if srtp else "off",
                                   secure_signalling=True)
        self.offer = serialize_sdp(self.offer_sd)
        self.context: SrtpContext | None = None
        self.remote = None
        self.seq = 0
        self.raw: list[bytes] = []

    def answered(self, answer: bytes) -> None:
        negotiated = negotiate_answer(self.offer_sd, parse_sdp(answer))
        self.remote = (negotiated.remote_ip, negotiated.remote_port)
        if negotiated.srtp is not None:
            self.context = SrtpContext.from_keys(negotiated.srtp)

    def send(self, pt: int, payload: bytes, ts: int, marker: bool = False) -> None:
        packet = struct.pack("!BBHII", 0x80, pt | (0x80 if marker else 0), self.seq, ts,
                             0xC0FFEE) + payload
        self.seq += 1
        if self.context is not None:
            packet = self.context.protect(packet)
        self.last = packet
        self.sock.sendto(packet, self.remote)

    def received_audio(self) -> np.ndarray:
        """Everything that came in, unprotected (SRTP) and decoded as PCMU."""
        frames = []
        while True:
            try:
                data = self.sock.recv(2048)
            except BlockingIOError:
                break
            if len(data) < 12 or 200 <= data[1] <= 204:  # RTCP
                continue
            self.raw.append(data)
            if self.context is not None:
                data = self.context.unprotect(data)
                if data is None:
                    continue
            if data[1] & 0x7F == 0:
                frames.append(ulaw_decode(data[12:]))
        return np.concatenate(frames) if frames else np.zeros(0, np.int16)

    def close(self) -> None:
        self.sock.close()


def tls_from(core, *ports) -> None:
    """Messages from ``ports`` reach the server as if over TLS (Source.transport TLS)."""
    network = core.network

    def deliver(data, origin, to):
        ua = network.uas.get(to)
        if ua is None:
            return
        message = parse_datagram(data)
        source = Source("TLS" if origin[1] in ports else "UDP", origin[0], origin[1])
        if isinstance(message, Request):
            stamp_via(message, source)
        ua.receive(message, source)

    network._deliver = deliver


@pytest.fixture
def core(tmp_path):
    core = CallCore(tmp_path / "plans", PLAN, rtp_pairs=4)
    core.endpoints = []
    yield core
    core.close()
    for endpoint in core.endpoints:
        endpoint.close()


def call(core, user: str, *, srtp: bool, tls: bool):
    if tls:
        tls_from(core, PHONE_PORT)
    endpoint = Endpoint(srtp)
    core.endpoints.append(endpoint)
    session, phone = core.call(user, endpoint.offer)
    core.run(0.2, step=0.02)
    return session, phone, endpoint


def final(phone):
    return [e for e in phone.events if e[0] in ("answered", "failed")]


def warning_of(core, status: int) -> str:
    (response,) = [m for _, m in core.network.sent(SERVER_PORT, f"{status} INVITE")]
    return response.headers.get("Warning")


def cdr(core):
    (record,) = core.cdrs.records
    return record


def voiced(audio: np.ndarray) -> np.ndarray:
    """From the first loud sample to the last (the tone, without the silence around it)."""
    loud = np.nonzero(np.abs(audio) > 1000)[0]
    return audio[loud[0]:loud[-1]] if len(loud) else audio[:0]


def tone_in(audio: np.ndarray) -> bool:
    if len(audio) < 800 or np.sqrt(np.mean(audio.astype(float) ** 2)) < 1000:
        return False
    spectrum = np.abs(np.fft.rfft(audio.astype(float)))
    return abs(np.fft.rfftfreq(len(audio), 1 / 8000)[spectrum.argmax()] - 700) < 20


# -- the policies ---------------------------------------------------------------------

@pytest.mark.parametrize("policy", ["optional", "required"])
def test_an_srtp_offer_over_tls_is_answered_savp_with_our_key(core, policy):
    core.media.media_encryption = policy
    session, phone, endpoint = call(core, "echo", srtp=True, tls=True)
    (answered,) = final(phone)
    assert answered[:2] == ("answered", 200)
    answer = parse_sdp(answered[2])
    assert answer.media[0].proto == "RTP/SAVP"
    endpoint.answered(answered[2])
    assert endpoint.context is not None and endpoint.context.suite == SUITE
    (leg,) = core.calls.values()
    assert leg.rtp.encrypted
    assert any(p.startswith("media_encryption media='srtp:AES_CM") for p in leg.path), leg.path
    session.bye()
    core.run(0.3)
    record = cdr(core)
    assert record["sip_transport"] == "tls"
    assert record["media_encryption"] == f"srtp:{SUITE}"
    assert record["srtp_auth_failures"] == 0 and record["srtp_replays"] == 0
    assert_all_ended_once(core, 1)


def test_policy_off_refuses_an_srtp_offer_even_over_tls(core):
    core.media.media_encryption = "off"
    session, phone, endpoint = call(core, "echo", srtp=True, tls=True)
    assert final(phone) == [("failed", 488)]
    assert warning_of(core, 488).startswith("302 ")
    assert cdr(core)["media_encryption"] == "none"


@pytest.mark.parametrize("policy", ["optional", "required"])
def test_an_srtp_offer_over_plain_udp_is_refused_488_399(core, policy):
    core.media.media_encryption = policy
    session, phone, endpoint = call(core, "echo", srtp=True, tls=False)
    assert final(phone) == [("failed", 488)]
    warning = warning_of(core, 488)
    assert warning.startswith("399 ") and "TLS" in warning, warning
    record = cdr(core)
    assert record["sip_transport"] == "udp" and record["media_encryption"] == "none"
    assert_all_ended_once(core, 1)


def test_required_refuses_a_plain_offer_with_488_302(core):
    core.media.media_encryption = "required"
    session, phone, endpoint = call(core, "echo", srtp=False, tls=True)
    assert final(phone) == [("failed", 488)]
    assert warning_of(core, 488).startswith("302 ")
    assert_all_ended_once(core, 1)


def test_optional_answers_a_plain_offer_plain(core):
    session, phone, endpoint = call(core, "echo", srtp=False, tls=True)
    (answered,) = final(phone)
    assert parse_sdp(answered[2]).media[0].proto == "RTP/AVP"
    session.bye()
    core.run(0.3)
    assert cdr(core)["media_encryption"] == "none" and cdr(core)["srtp_replays"] is None


def test_the_override_accepts_keys_over_udp_and_says_so_on_the_call(core):
    core.media.allow_insecure_srtp_keys = True
    session, phone, endpoint = call(core, "echo", srtp=True, tls=False)
    (answered,) = final(phone)
    assert parse_sdp(answered[2]).media[0].proto == "RTP/SAVP"
    (leg,) = core.calls.values()
    assert any(p.startswith("insecure_srtp_keys what='accepted' transport='udp'")
               for p in leg.path), leg.path


def test_a_late_offer_under_required_is_savp_over_tls_and_488_over_udp(core):
    core.media.media_encryption = "required"
    tls_from(core, PHONE_PORT)
    session, phone = core.call("echo", None)
    core.run(0.2, step=0.02)
    (answered,) = final(phone)
    assert parse_sdp(answered[2]).media[0].proto == "RTP/SAVP"
    session.bye()
    core.run(0.3)
    tls_from(core)  # now plain UDP
    session, phone = core.call("echo", None)
    core.run(0.2, step=0.02)
    assert final(phone) == [("failed", 488)]


# -- media, encrypted -----------------------------------------------------------------

def test_the_echo_comes_back_encrypted_and_decrypts_to_the_tone(core):
    session, phone, endpoint = call(core, "echo", srtp=True, tls=True)
    endpoint.answered(final(phone)[0][2])
    payloads = [bytes(ulaw_encode(TONE[i:i + 160])) for i in range(0, len(TONE), 160)]
    for n, payload in enumerate(payloads):
        endpoint.send(0, payload, 160 * n)
        core.run(0.02, step=0.005)
    core.run(0.3, step=0.005)
    heard = endpoint.received_audio()
    assert tone_in(voiced(heard)) and len(voiced(heard)) > 6000
    # on the wire: no packet carries the tone's PCMU bytes
    sent = set(payloads)
    assert endpoint.raw and not any(raw[12:] in sent or raw[12:-10] in sent
                                    for raw in endpoint.raw)
    assert not tone_in(np.concatenate([ulaw_decode(raw[12:-10]) for raw in endpoint.raw]))
    (leg,) = core.calls.values()
    stats = leg.rtp.stats()
    assert stats["media_encryption"] == "srtp" and stats["packets_received"] == len(payloads)


def test_rfc4733_digits_over_srtp_fill_a_gather_and_a_replay_is_dropped(core):
    session, phone, endpoint = call(core, "menu", srtp=True, tls=True)
    endpoint.answered(final(phone)[0][2])
    (leg,) = core.calls.values()
    core.run(0.3)
    for n, digit in enumerate("427"):
        for k, (end, duration) in enumerate(((False, 160), (False, 320), (True, 480))):
            endpoint.send(101, encode_event(digit, end, 10, duration), 8000 * (n + 1),
                          marker=k == 0)
        if digit == "2":  # the end packet again, as it was: a replay, dropped and counted
            endpoint.sock.sendto(endpoint.last, endpoint.remote)
        core.run(0.1, step=0.01)
    assert leg.variables.get("account") == "427", leg.path
    core.run(1.0)
    record = cdr(core)
    assert record["digits"] == ["427"] and record["dtmf_by_mode"]["rfc4733"] == 3
    assert record["srtp_replays"] == 1 and record["srtp_auth_failures"] == 0


def test_a_reinvite_keeps_the_keys_and_the_context(core):
    session, phone, endpoint = call(core, "echo", srtp=True, tls=True)
    endpoint.answered(final(phone)[0][2])
    (leg,) = core.calls.values()
    context = leg.rtp._srtp
    hold = endpoint.offer.replace(b"a=sendrecv", b"a=sendonly").replace(b" 1 1 IN", b" 7 2 IN")
    answers = []
    session.reinvite(hold, lambda response: answers.append(response))
    core.run(0.2)
    assert leg.rtp._srtp is context  # same keys: the replay window goes on
    assert "hold" in " ".join(leg.path)


# -- bridged: an SRTP leg and a plain one ----------------------------------------------

def test_an_srtp_leg_bridged_with_a_plain_leg_carries_audio_both_ways(core):
    desk = Endpoint(srtp=False)
    core.endpoints.append(desk)

    def answer_plain(session):
        desk.answered_offer = session.remote_sdp
        session.accept(serialize_sdp(make_offer(HOST, desk.port, ("PCMU",), session_id=9,
                                                version=1)))

    app = App(answer_plain)
    core.network.uas[(HOST, DESK_PORT)] = UserAgent(
        core.clock, FakeTransport(core.network, DESK_PORT), app, HOST, DESK_PORT, TimerConfig())
    session, phone, endpoint = call(core, "desk", srtp=True, tls=True)
    core.run(0.3)
    (answered,) = final(phone)
    endpoint.answered(answered[2])
    assert endpoint.context is not None
    desk_offer = parse_sdp(desk.answered_offer)
    assert desk_offer.media[0].proto == "RTP/AVP"  # a plain SIP URI: the default, plain
    desk.remote = (HOST, desk_offer.media[0].port)
    payloads = [bytes(ulaw_encode(TONE[i:i + 160])) for i in range(0, len(TONE), 160)]
    for n, payload in enumerate(payloads):
        endpoint.send(0, payload, 160 * n)
        desk.send(0, payload, 160 * n)
        core.run(0.02, step=0.005)
    core.run(0.2, step=0.005)
    assert tone_in(voiced(desk.received_audio()))      # SRTP in, plain out
    assert tone_in(voiced(endpoint.received_audio()))  # plain in, SRTP out
    inbound, outbound = sorted(core.calls.values(), key=lambda c: c.direction)
    assert inbound.rtp.encrypted and not outbound.rtp.encrypted
    session.bye()
    core.run(0.5)
    records = {r["direction"]: r for r in core.cdrs.records}
    assert records["inbound"]["media_encryption"] == f"srtp:{SUITE}"
    assert records["inbound"]["sip_transport"] == "tls"
    assert records["outbound"]["media_encryption"] == "none"
    assert records["outbound"]["sip_transport"] == "udp"


# -- outbound legs to an extension that requires SRTP ----------------------------------

REQUIRED = f"""
realm: ivr.local
algorithms: [MD5]
extensions:
  "2002": {{ha1_md5: 45f510763d8d21f7a0b550d7d493a274, media_encryption: required,
           static_contacts: ["sip:2002@{HOST}:{DESK_PORT};transport=tls"]}}
  "2003": {{ha1_md5: 45f510763d8d21f7a0b550d7d493a274, media_encryption: required,
           static_contacts: ["sip:2003@{HOST}:{DESK_PORT}"]}}
"""


def test_a_required_extension_is_offered_savp_only_and_only_over_tls(core):
    config, errors = parse_extensions(REQUIRED)
    assert errors == []
    core.control.directory = config
    offers = []
    app = App(lambda s: (offers.append(s.remote_sdp), s.reject(486)))
    core.network.uas[(HOST, DESK_PORT)] = UserAgent(
        core.clock, FakeTransport(core.network, DESK_PORT), app, HOST, DESK_PORT, TimerConfig())
    leg = core.control.originate("2002")
    core.run(0.3)
    (sdp,) = offers
    media = parse_sdp(sdp).media[0]
    assert media.proto == "RTP/SAVP" and media.attribute("crypto") is not None
    assert leg.media.sip_transport == "tls"
    # over UDP the keys would be readable: the leg fails before any INVITE goes out
    with pytest.raises(Exception, match="TLS"):
        core.control.originate("2003")
    assert len(offers) == 1
    core.run(0.3)
    failed = [r for r in core.cdrs.records if r["to_number"] == "2003"]
    assert failed and failed[0]["outcome"] == "failed"


# -- whose policy a leg takes -----------------------------------------------------------

def test_a_leg_takes_its_extensions_or_trunks_policy_else_the_default():
    from types import SimpleNamespace

    from ivr.call.encryption import inbound_policy, outbound_policy
    from ivr.sip.authenticator import Caller, CallerKind
    from ivr.sip.transport import Destination
    config, errors = parse_extensions(f"""
algorithms: [MD5]
extensions:
  "2002": {{ha1_md5: 45f510763d8d21f7a0b550d7d493a274, media_encryption: off}}
trunks:
  carrier: {{address: "192.0.2.10:5061", transport: tls, media_encryption: required}}
""")
    assert errors == []
    extension = SimpleNamespace(caller=Caller(CallerKind.EXTENSION,
                                              extension=config.extensions["2002"]))
    trunk = SimpleNamespace(caller=Caller(CallerKind.TRUNK, trunk=config.trunks["carrier"]))
    anonymous = SimpleNamespace(caller=Caller(CallerKind.ANONYMOUS))
    assert inbound_policy(extension, "optional") == "off"
    assert inbound_policy(trunk, "optional") == "required"
    assert inbound_policy(anonymous, "optional") == "optional"
    assert outbound_policy(config, "2002", None) == "off"
    assert outbound_policy(config, "+15551234567",
                           Destination("TLS", "192.0.2.10", 5061)) == "required"
    assert outbound_policy(config, "sip:x@198.51.100.1", None) is None


def test_inband_dtmf_inside_srtp_fills_a_gather(core):
    """No telephone-event offered: the keys are tones in the encrypted audio, heard by the
    in-band detector on the decrypted samples."""
    from ivr.call.inband import InbandDtmfService
    from tests.interop.pcap import dtmf_audio

    core.media.inband = InbandDtmfService(core.media_clock)
    tls_from(core, PHONE_PORT)
    endpoint = Endpoint(srtp=True)
    core.endpoints.append(endpoint)
    endpoint.offer_sd = make_offer(HOST, endpoint.port, ("PCMU",), telephone_event_pt=None,
                                   session_id=7, version=1, media_encryption="required",
                                   secure_signalling=True)
    endpoint.offer = serialize_sdp(endpoint.offer_sd)
    session, phone = core.call("menu", endpoint.offer)
    core.run(0.2, step=0.02)
    endpoint.answered(final(phone)[0][2])
    (leg,) = core.calls.values()
    assert leg.media.media_encryption.startswith("srtp:")
    core.run(0.3)
    audio = dtmf_audio([(None, 100), ("4", 100), (None, 100), ("2", 100), (None, 100),
                        ("7", 100), (None, 200)])
    for n in range(0, len(audio), 160):
        endpoint.send(0, bytes(ulaw_encode(audio[n:n + 160])), n)
        core.run(0.02, step=0.005)
    core.run(0.5, step=0.01)
    assert leg.variables.get("account") == "427", leg.path
    session.bye()
    core.run(1.0)
    record = cdr(core)
    assert record["dtmf_by_mode"]["inband"] == 3 and record["media_encryption"].startswith("srtp:")
