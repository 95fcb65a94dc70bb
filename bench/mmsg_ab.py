"""Batched socket I/O, native against pure Python, alternating in one process.

``python -m bench.mmsg_ab [PAIRS] [PERIODS] [ROUNDS]`` (from the checkout's root).

The relay path of :mod:`bench.relay_inprocess` (PAIRS bridged pairs on a ``MediaReceiver``,
one ``MediaClock`` with the server's four phases on a ``task.Clock``, each peer sending one
packet per 20 ms), in two forms: ``tick`` (each leg's payloads queued for the other leg's
tick, the transcoding path) and ``forward`` (relay on arrival: ``forward_to``, the bridge's
path when both legs use the same codec).  Each round measures both backends of
:mod:`ivr.rtp.mmsg`, in alternating order, so the machine's noise hits both alike; only the
clock's firings are timed (``time.process_time``: the receive poll, the relays and the
sends).  Prints CPU µs per relayed packet for each and the native/pure ratio per round; it
writes nothing.
"""
from __future__ import annotations

import statistics
import sys
import time

from twisted.internet import task

from ivr.call.bridge import RelaySource
from ivr.rtp import mmsg
from ivr.rtp.clock import SERVER_PHASES, MediaClock
from ivr.rtp.ports import PortAllocator
from ivr.rtp.receiver import MediaReceiver
from ivr.rtp.session import PlaybackStopped, RtpSession

from . import common
from .relay_inprocess import _HEADER, _peer


def measure(io, pairs: int, periods: int, forward: bool, warmup: int = 25) -> float:
    clock = task.Clock()
    receiver = MediaReceiver(io=io)
    media = MediaClock(clock, phases=SERVER_PHASES, receiver=receiver, io=io)
    low, high = common.free_range(pairs * 4 + 40)
    ports = PortAllocator(low, high, receiver=receiver)
    legs, peers = [], []
    for _ in range(pairs):
        a = RtpSession(clock, media, ports=ports, media_timeout=0)
        b = RtpSession(clock, media, ports=ports, media_timeout=0)
        pa, pb = _peer(), _peer()
        a.set_remote("127.0.0.1", pa.getsockname()[1], 0, "PCMU")
        b.set_remote("127.0.0.1", pb.getsockname()[1], 0, "PCMU")
        to_a, to_b = RelaySource(), RelaySource()
        for leg, source in ((a, to_a), (b, to_b)):
            leg.play(source).addErrback(lambda f: f.trap(PlaybackStopped))
        a.add_payload_listener(to_b.push)
        b.add_payload_listener(to_a.push)
        if forward:
            a.forward_to(b, to_b, to_b.push)
            b.forward_to(a, to_a, to_a.push)
        legs += [a, b]
        peers += [(pa, ("127.0.0.1", a.local_port), 2 * len(peers)),
                  (pb, ("127.0.0.1", b.local_port), 2 * len(peers) + 1)]
    step = media.interval / media.phases
    cpu = 0.0
    for k in range(warmup + periods):
        for sock, dest, ssrc in peers:
            payload = (k.to_bytes(4, "big") + ssrc.to_bytes(4, "big")) * 20
            sock.sendto(_HEADER.pack(0x80, 0, k & 0xFFFF, (k * 160) & 0xFFFFFFFF, ssrc)
                        + payload, dest)
        t = time.process_time()
        for _ in range(media.phases):
            clock.advance(step)
        if k >= warmup:
            cpu += time.process_time() - t
        for sock, _dest, _ssrc in peers:
            try:
                while True:
                    sock.recv(2048)
            except BlockingIOError:
                pass
    errors = sum(leg.stats()["send_errors"] for leg in legs)
    for leg in legs:
        leg.close()
    for sock, _dest, _ssrc in peers:
        sock.close()
    receiver.close()
    if errors:
        raise RuntimeError(f"{errors} send errors")
    return cpu * 1e6 / (2 * pairs * periods)


def main(argv: list[str]) -> int:
    pairs = int(argv[0]) if argv else 200
    periods = int(argv[1]) if len(argv) > 1 else 200
    rounds = int(argv[2]) if len(argv) > 2 else 3
    native, reason = mmsg.load(force_pure=False)
    if reason is not None:
        print(f"no native backend: {reason}")
        return 1
    pure = mmsg.PurePythonIO()
    for forward in (False, True):
        ratios = []
        for r in range(rounds):
            order = (native, pure) if r % 2 == 0 else (pure, native)
            us = {io.name: measure(io, pairs, periods, forward) for io in order}
            ratios.append(us["native"] / us["pure"])
            print(f"{'forward' if forward else 'tick':7s} round {r + 1}: native "
                  f"{us['native']:.2f} us/packet, pure {us['pure']:.2f} -> "
                  f"{ratios[-1]:.3f}", flush=True)
        print(f"{'forward' if forward else 'tick':7s} {pairs} pairs: native/pure median "
              f"{statistics.median(ratios):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
