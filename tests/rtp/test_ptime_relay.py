"""The bridge's relay (RelaySource, wired as Bridge wires it) with packets longer or shorter
than 20 ms: leg a's peer sends 10/30/40/60 ms packets; leg b sends every sample of them, in
order, at the ptime its own peer asked for.  Same codec: the bytes are relayed exactly (a
received packet is cut into 20 ms frames, then joined into b's packets; G.711 is one octet
per sample, so nothing is decoded).  Old behaviour: a 30 ms packet went out as its first
20 ms (decoded and cut), a 60 ms one as its first third."""
import random

import pytest
from twisted.internet import task

from ivr.call.bridge import RelaySource
from ivr.rtp.clock import MediaClock
from ivr.rtp.packet import RtpPacket
from ivr.rtp.session import RtpSession

from .fakes import FakePorts

PEER_A = ("127.0.0.1", 50000)
PEER_B = ("127.0.0.1", 50100)


def relay(sizes_ms, ptime_b=20, codec_b="PCMU", pt_b=0):
    clock = task.Clock()
    media = MediaClock(clock, phases=4)
    ports_a, ports_b = FakePorts(40000), FakePorts(40100)
    a = RtpSession(clock, media, ports=ports_a, rng=random.Random(1), media_timeout=0)
    b = RtpSession(clock, media, ports=ports_b, rng=random.Random(2), media_timeout=0)
    a.set_remote(*PEER_A, payload_type=0, codec="PCMU")
    kw = {"ptime": ptime_b} if ptime_b != 20 else {}
    b.set_remote(*PEER_B, payload_type=pt_b, codec=codec_b, **kw)
    source = RelaySource()
    a.add_payload_listener(source.push)
    b.play(source)
    rng = random.Random(sum(sizes_ms))
    payloads = [bytes(rng.randrange(1, 0x7F) for _ in range(8 * ms)) for ms in sizes_ms]
    at, t = {}, 7
    for i, ms in enumerate(sizes_ms):
        at.setdefault(t, []).append(i)
        t += ms
    seq, ts = 10, 1000
    for now in range(t + 200):
        for i in at.get(now, ()):
            pkt = RtpPacket(0, seq, ts, 0x1234, payloads[i])
            a._pair.rtp.protocol.datagramReceived(pkt.serialize(), PEER_A)
            seq, ts = seq + 1, ts + len(payloads[i])
        clock.advance(0.001)
    out = [RtpPacket.parse(d) for d, _ in ports_b.pair.rtp.sent]
    return payloads, out, source


@pytest.mark.parametrize("ms", [10, 30, 40, 60])
@pytest.mark.parametrize("ptime_b", [20, 30, 60])
def test_every_relayed_sample_arrives_once_in_order(ms, ptime_b):
    payloads, out, source = relay([ms] * (1200 // ms), ptime_b=ptime_b)
    joined = b"".join(payloads)
    data = b"".join(p.payload for p in out)
    start = next(i for i, byte in enumerate(data) if byte != 0xFF)
    assert data[start:start + len(joined) - 160] == joined[:len(joined) - 160]
    assert source.dropped == 0
    assert {len(p.payload) for p in out} == {8 * ptime_b}


def test_a_packet_time_that_changes_mid_call_is_relayed_whole():
    sizes = [30] * 10 + [60] * 5 + [10] * 10 + [40] * 5 + [20] * 5
    payloads, out, source = relay(sizes)
    joined = b"".join(payloads)
    back = b"".join(p.payload for p in out).replace(b"\xff", b"")
    assert back == joined[:len(back)] and len(joined) - len(back) < 160
