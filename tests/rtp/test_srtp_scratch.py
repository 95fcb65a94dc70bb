"""SrtpContext's per-packet work happens in one scratch buffer per thread, shared by every
context made on that thread (bench/README.md "B7": hundreds of per-stream buffers put each
packet in cold cache lines).  Sharing must not leak one stream's packet into another's
result, and a context made on another thread gets that thread's buffer."""
from __future__ import annotations

import os
import struct
import threading

from ivr.rtp.srtp import SrtpContext

SUITE = "AES_CM_128_HMAC_SHA1_80"


def rtp(seq: int, ssrc: int = 0x1234, fill: int = 0) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + bytes([fill]) * 160


def pair():
    a, b = os.urandom(30), os.urandom(30)
    return SrtpContext(SUITE, a, b), SrtpContext(SUITE, b, a)


def test_contexts_on_one_thread_share_one_buffer_and_results_stay_their_own():
    (a_tx, a_rx), (b_tx, b_rx) = pair(), pair()
    assert a_tx._buf is b_tx._buf is a_rx._buf is b_rx._buf
    first, second = a_tx.protect(rtp(1, fill=1)), b_tx.protect(rtp(1, fill=2))
    assert first != second and len(first) == len(second) == 172 + 10
    out_b = b_rx.unprotect(second)
    out_a = a_rx.unprotect(first)  # the buffer now holds a's packet: b's result is a copy
    assert out_a == rtp(1, fill=1) and out_b == rtp(1, fill=2)
    # a dropped packet leaves nothing behind for the next stream
    assert b_rx.unprotect(a_tx.protect(rtp(2, fill=1))) is None and b_rx.auth_failures == 1
    assert b_rx.unprotect(b_tx.protect(rtp(2, fill=2))) == rtp(2, fill=2)
    assert a_rx.unprotect_rtcp(a_tx.protect_rtcp(b"\x80\xc9\x00\x01" + bytes(4))) == b"\x80\xc9\x00\x01" + bytes(4)


def test_a_context_made_on_another_thread_has_that_threads_buffer():
    here, _ = pair()
    made = []
    worker = threading.Thread(target=lambda: made.append(pair()))
    worker.start()
    worker.join()
    there_tx, there_rx = made[0]
    assert there_tx._buf is there_rx._buf and there_tx._buf is not here._buf
    assert there_rx.unprotect(there_tx.protect(rtp(5))) == rtp(5)
