"""Payload listeners and EncodedFrame playback: the bridge's relay without decode + encode."""
import random

import numpy as np
from twisted.internet import task

from ivr.call.bridge import RelaySource
from ivr.media import g711
from ivr.rtp.clock import MediaClock
from ivr.rtp.packet import RtpPacket
from ivr.rtp.session import EncodedFrame, RtpSession

from .fakes import FakePorts

PEER_A = ("127.0.0.1", 50000)
PEER_B = ("127.0.0.1", 50100)


def _pair(codec_b="PCMU", pt_b=0):
    """Leg a (PCMU) relays into leg b (``codec_b``) as the Bridge wires them."""
    clock = task.Clock()
    media = MediaClock(clock)
    ports_a, ports_b = FakePorts(40000), FakePorts(40100)
    a = RtpSession(clock, media, ports=ports_a, rng=random.Random(1))
    b = RtpSession(clock, media, ports=ports_b, rng=random.Random(2))
    a.set_remote(*PEER_A, payload_type=0, codec="PCMU")
    b.set_remote(*PEER_B, payload_type=pt_b, codec=codec_b)
    relay = RelaySource()
    a.add_payload_listener(relay.push)
    b.play(relay)
    return clock, a, b, ports_b


def _feed(session, payloads, start_seq=10):
    for i, payload in enumerate(payloads):
        pkt = RtpPacket(0, start_seq + i, 1000 + 160 * i, 0x1234, payload)
        session._pair.rtp.protocol.datagramReceived(pkt.serialize(), PEER_A)


def _sent_payloads(ports):
    return [RtpPacket.parse(data).payload for data, _ in ports.pair.rtp.sent]


def test_same_codec_relays_the_received_bytes_unchanged():
    clock, a, b, ports_b = _pair()
    # 0x7F is u-law's "negative zero": a decode + encode would turn it into 0xFF
    payloads = [bytes([(i * 7 + n) % 256 for n in range(160)]) for i in range(3)]
    payloads[0] = b"\x7f" * 160
    for payload in payloads:
        _feed(a, [payload], start_seq=10 + payloads.index(payload))
        clock.advance(0.02 + 1e-9)
    out = [p for p in _sent_payloads(ports_b) if p != b"\xff" * 160]
    assert out == payloads


def test_different_codec_is_decoded_and_reencoded():
    clock, a, b, ports_b = _pair(codec_b="PCMA", pt_b=8)
    pcm = np.arange(-1600, 1600, 20, dtype=np.int16)
    payload = g711.ulaw_encode(pcm).tobytes()
    _feed(a, [payload])
    clock.advance(0.02 + 1e-9)
    sent = [RtpPacket.parse(d) for d, _ in ports_b.pair.rtp.sent]
    expected = g711.alaw_encode(g711.ulaw_decode(payload)).tobytes()
    assert expected in [p.payload for p in sent]
    assert all(p.payload_type == 8 for p in sent)


def test_odd_sized_payload_takes_the_decoded_path():
    clock, a, b, ports_b = _pair()
    payload = g711.ulaw_encode(np.full(240, 1000, dtype=np.int16)).tobytes()  # a 30 ms packet
    _feed(a, [payload])
    clock.advance(0.02 + 1e-9)
    assert payload[:160] in _sent_payloads(ports_b)
    assert all(len(p) == 160 for p in _sent_payloads(ports_b))


def test_audio_listeners_still_get_decoded_frames_and_decode_is_skipped_without_them():
    clock, a, b, _ = _pair()
    payload = g711.ulaw_encode(np.full(160, -500, dtype=np.int16)).tobytes()
    calls = []

    def counting_decoder(data):
        calls.append(data)
        return g711.ulaw_decode(data)
    a._decoders[0] = counting_decoder
    _feed(a, [payload])
    assert calls == []  # only the payload listener: nothing decoded
    frames = []
    a.add_audio_listener(frames.append)
    _feed(a, [payload], start_seq=11)
    assert len(calls) == 1 and np.array_equal(frames[0], g711.ulaw_decode(payload))


def test_encoded_frame_pcm_and_payload_listener_removal():
    frame = EncodedFrame(b"\xff" * 160, g711.ulaw_decode)
    assert np.array_equal(frame.pcm(), np.zeros(160, dtype=np.int16))
    clock, a, b, ports_b = _pair()
    got = []
    a.add_payload_listener(got.append)
    a.remove_payload_listener(got.append)
    _feed(a, [b"\x01" * 160])
    assert got == []
