"""B7 SRTP cost: CPU per packet with SRTP (protect on sending + unprotect on receiving) against
plain RTP, in the same run, through the real media path.

``python -m bench.b7_srtp [PAIRS] [PERIODS]`` (from the checkout's root), or ``bench/run.py
--only B7``.

PAIRS pairs of ``RtpSession``s on ports from a ``PortAllocator`` with a ``MediaReceiver``,
one ``MediaClock`` with the server's four phases on a ``task.Clock``: each session plays a
looping tone to the other, so every packet is encoded, (protected,) sent over loopback, read
by the receiver, (unprotected,) checked and reframed.  Only the clock's firings are timed
(``time.process_time``).  The same harness runs plain and with SRTP
(AES_CM_128_HMAC_SHA1_80, keys from our own offer/answer), alternating rounds (plain, SRTP,
plain, SRTP, ...) so a machine that changes speed mid-run hurts both alike; each figure is
the median of its rounds.  The headline is the difference, µs per packet (one packet = one
protect + one unprotect).  Also timed: libsrtp alone, protect + unprotect of a 20 ms PCMU
packet, per suite.  Writes ``bench/results/b7_srtp.json``.

With the native socket I/O (the default) SRTP happens inside the batches, in C (protect in
the send buffer before ``sendmmsg``, unprotect after ``recvmmsg``: ``srtp_in_batch`` in
each round); ``IVR_MEDIA_IO=pure`` times the per-packet Python path instead.
"""
from __future__ import annotations

import os
import statistics
import struct
import sys
import time

import numpy as np
from twisted.internet import task

from ivr.media.player import PcmSource
from ivr.rtp.clock import SERVER_PHASES, MediaClock
from ivr.rtp.ports import PortAllocator
from ivr.rtp.receiver import MediaReceiver
from ivr.rtp.session import PlaybackStopped, RtpSession
from ivr.rtp.srtp import SrtpContext, supported_suites
from ivr.sdp import make_answer, make_offer, negotiate_answer
from ivr.sdp.crypto import SUITES

from . import common

TARGETS = {"added_us_per_packet": "<= 3"}
SUITE = "AES_CM_128_HMAC_SHA1_80"  # what every SDES phone offers first
GCM = "AEAD_AES_128_GCM"  # RFC 7714: the full run also times the media path with it
TONE = (6000 * np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000)).astype(np.int16)


def _keys(suite: str):
    offer = make_offer("127.0.0.1", 1000, session_id=1, version=1, media_encryption="required",
                       secure_signalling=True, crypto_suites=(suite,))
    answer, uas = make_answer(offer, "127.0.0.1", 2000, session_id=2, version=1,
                              media_encryption="required", secure_signalling=True)
    return negotiate_answer(offer, answer).srtp, uas.srtp


def one_round(pairs: int, periods: int, warmup: int, srtp: str | None) -> dict:
    """One timed run; ``srtp`` is the suite (None: plain RTP)."""
    clock = task.Clock()
    receiver = MediaReceiver()
    media = MediaClock(clock, phases=SERVER_PHASES, receiver=receiver)
    low, high = common.free_range(pairs * 4 + 40)
    ports = PortAllocator(low, high, receiver=receiver)
    legs = []
    for _ in range(pairs):
        a = RtpSession(clock, media, ports=ports, media_timeout=0)
        b = RtpSession(clock, media, ports=ports, media_timeout=0)
        if srtp:
            keys_a, keys_b = _keys(srtp)
            a.set_srtp(SrtpContext.from_keys(keys_a))
            b.set_srtp(SrtpContext.from_keys(keys_b))
        a.set_remote("127.0.0.1", b.local_port, 0, "PCMU", telephone_event_pt=101)
        b.set_remote("127.0.0.1", a.local_port, 0, "PCMU", telephone_event_pt=101)
        for leg in (a, b):
            leg.play(PcmSource(TONE, loop=0)).addErrback(lambda f: f.trap(PlaybackStopped))
        legs += [a, b]
    step = media.interval / media.phases
    cpu = 0.0
    for k in range(warmup + periods):
        t = time.process_time()
        for _ in range(media.phases):
            clock.advance(step)
        if k >= warmup:
            cpu += time.process_time() - t
    stats = [leg.stats() for leg in legs]
    for leg in legs:
        leg.close()
    receiver.close()
    sent = sum(s["packets_sent"] for s in stats)
    received = sum(s["packets_received"] for s in stats)
    dropped = sum(s.get("srtp_auth_failures", 0) + s.get("srtp_replays", 0)
                  + s.get("srtp_bad_packets", 0) for s in stats)
    measured = 2 * pairs * periods  # packets sent (and received) in the timed periods
    return {"srtp": srtp, "media_io": media.batch.io.name,
            "srtp_in_batch": bool(srtp) and media.batch.srtp, "cpu_s": round(cpu, 4),
            "packets": measured,
            "us_per_packet": round(cpu * 1e6 / measured, 3), "sent_total": sent,
            "received_total": received, "srtp_dropped": dropped}


def library_cost(count: int = 20000) -> dict:
    """libsrtp alone: µs for one protect + one unprotect of a 172-byte RTP packet, per suite."""
    out = {}
    for suite in supported_suites():
        key_a, key_b = os.urandom(SUITES[suite].inline_length), os.urandom(SUITES[suite].inline_length)
        tx, rx = SrtpContext(suite, key_a, key_b), SrtpContext(suite, key_b, key_a)
        packets = [struct.pack("!BBHII", 0x80, 0, i & 0xFFFF, i * 160, 0x1234) + bytes(160)
                   for i in range(1, count + 1)]
        t = time.process_time()
        for p in packets:
            rx.unprotect(tx.protect(p))
        out[suite] = round((time.process_time() - t) * 1e6 / count, 3)
        assert rx.auth_failures == rx.replays == 0
    return out


CONTEXT_COUNTS = (1, 100, 400, 1000)


def library_contexts(counts=CONTEXT_COUNTS, packets: int = 40000, suite: str = SUITE,
                     repeat: int = 3) -> dict:
    """libsrtp alone with N streams served in turn, as the media clock serves its streams
    (one packet for each of N context pairs, then the next round): µs per protect +
    unprotect, through ``SrtpContext`` and through the bare cffi calls (the packet copied
    into one buffer, ``srtp_protect`` and ``srtp_unprotect``, the result copied out: what is
    left without our Python).  N = 1 is one hot context; what grows with N is cache misses
    in libsrtp's and OpenSSL's per-stream state.  Best of ``repeat`` runs per figure."""
    from ivr.rtp.srtp import _ffi, _lib  # the bare calls: the binding SrtpContext itself uses
    length = SUITES[suite].inline_length
    payload = os.urandom(160)
    out = {}
    for n in counts:
        per_n = max(packets // n, 20)
        wrapped, bare = [], []
        for _ in range(repeat):
            pairs = []
            for _ in range(n):
                a, b = os.urandom(length), os.urandom(length)
                pairs.append((SrtpContext(suite, a, b), SrtpContext(suite, b, a)))
            heads = [struct.pack("!BBHII", 0x80, 0, i & 0xFFFF, i * 160, 0x1234) for i in range(1, 2 * per_n + 1)]
            t = time.process_time()
            for head in heads[:per_n]:
                packet = head + payload
                for tx, rx in pairs:
                    rx.unprotect(tx.protect(packet))
            wrapped.append((time.process_time() - t) * 1e6 / (per_n * n))
            assert all(rx.auth_failures == rx.replays == rx.bad_packets == 0 for _, rx in pairs)
            buf, size = _ffi.new("char[]", 1500), _ffi.new("int *")
            view = _ffi.buffer(buf)
            protect, unprotect = _lib.srtp_protect, _lib.srtp_unprotect
            handles = [(tx._tx, rx._rx) for tx, rx in pairs]
            t = time.process_time()
            for head in heads[per_n:]:  # later sequence numbers: the same sessions go on
                packet = head + payload
                for tx, rx in handles:
                    view[0:172] = packet
                    size[0] = 172
                    if protect(tx, buf, size) or unprotect(rx, buf, size):
                        raise AssertionError("libsrtp refused a packet")
                    view[0:size[0]]
            bare.append((time.process_time() - t) * 1e6 / (per_n * n))
        out[str(n)] = {"srtp_context_us": round(min(wrapped), 3), "bare_cffi_us": round(min(bare), 3)}
    return out


def measure(pairs: int = 100, periods: int = 250, warmup: int = 25, rounds: int = 3,
            suites: tuple = (SUITE,)) -> dict:
    """Rounds alternate plain and each suite in ``suites`` (the first is the headline)."""
    runs = []
    for _ in range(rounds):
        runs.append(one_round(pairs, periods, warmup, srtp=None))
        for suite in suites:
            runs.append(one_round(pairs, periods, warmup, srtp=suite))
    plain = statistics.median(r["us_per_packet"] for r in runs if not r["srtp"])
    by_suite = {suite: round(statistics.median(r["us_per_packet"] for r in runs if r["srtp"] == suite), 3)
                for suite in suites}
    srtp = by_suite[suites[0]]
    return {"pairs": pairs, "periods": periods, "rounds": rounds, "suite": suites[0],
            "us_per_packet_plain": round(plain, 3), "us_per_packet_srtp": round(srtp, 3),
            "added_us_per_packet": round(srtp - plain, 3),
            "added_us_per_packet_by_suite": {s: round(v - plain, 3) for s, v in by_suite.items()},
            "library_us_protect_plus_unprotect": library_cost(),
            "library_us_by_rotating_contexts": library_contexts(
                packets=10000 if pairs < 100 else 40000, repeat=1 if pairs < 100 else 3),
            "runs": runs}


def run(work, mode: str, context: dict) -> dict:
    if mode == "quick":
        figures = measure(pairs=50, periods=100, warmup=10, rounds=2)
    else:
        figures = measure(pairs=200, periods=250, warmup=25, rounds=3, suites=(SUITE, GCM))
    print(f"  B7 {figures['us_per_packet_plain']} us per packet plain, {figures['us_per_packet_srtp']} "
          f"with SRTP: +{figures['added_us_per_packet']} us (libsrtp alone: "
          f"{figures['library_us_protect_plus_unprotect']})", flush=True)
    return {"targets": TARGETS, "figures": figures}


def main(argv: list[str]) -> int:
    pairs = int(argv[0]) if argv else 100
    periods = int(argv[1]) if len(argv) > 1 else 250
    started = time.monotonic()
    out = {"targets": TARGETS, "figures": measure(pairs, periods, suites=(SUITE, GCM))}
    f = out["figures"]
    print(f"B7 SRTP: {pairs} pairs x {periods} periods: {f['us_per_packet_plain']} us CPU per packet "
          f"plain, {f['us_per_packet_srtp']} with SRTP, +{f['added_us_per_packet']} us "
          f"(target {TARGETS['added_us_per_packet']}); libsrtp alone "
          f"{f['library_us_protect_plus_unprotect']}")
    common.write_result("b7_srtp", "inprocess", f, TARGETS, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
