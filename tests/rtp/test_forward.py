"""The pure header rewrite of relay on arrival (ivr/rtp/forward.py): fixed inputs, and a
property test that the outgoing stream stays one stream (sequence +1 per packet, timestamps
never backwards) whatever mix of forwarded and tick-sent packets, new incoming SSRCs,
reordering and pauses it sees."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.rtp.forward import MAX_STEP, HeaderRewriter, later

M32 = 0xFFFFFFFF


def test_later_uses_serial_arithmetic():
    assert later(10, 5) == 10 and later(5, 10) == 10
    assert later(3, M32 - 2) == 3  # 3 comes after the wrap
    assert later(7, 7) == 7


def test_first_packet_starts_where_the_tick_would_send_next_and_keeps_the_incoming_spacing():
    rw = HeaderRewriter()
    # the tick's next packet would carry 1000; our next sequence number is 50
    assert rw.rewrite(0xAAAA, 90_000, False, 160, 50, 1000) == (1000, False)
    assert rw.rewrite(0xAAAA, 90_160, False, 160, 51, 1160) == (1160, False)
    # the peer paused 1 s (silence suppression) and marks its new talk spurt: the jump is kept
    assert rw.rewrite(0xAAAA, 98_320, True, 160, 52, 1320) == (9320, True)
    assert rw.end == 9480


def test_reordered_and_duplicate_packets_are_dropped():
    rw = HeaderRewriter()
    rw.rewrite(1, 500, False, 160, 7, 0)
    assert rw.rewrite(1, 660, False, 160, 8, 0) == (160, False)
    assert rw.rewrite(1, 500, False, 160, 9, 0) is None  # older than the last one sent
    assert rw.rewrite(1, 660, False, 160, 9, 0) is None  # the same timestamp again
    assert rw.rewrite(1, 820, False, 160, 9, 0) == (320, False)  # the session's seq did not move


def test_a_new_incoming_ssrc_continues_our_timestamps_with_a_marker_only_on_a_gap():
    rw = HeaderRewriter()
    rw.rewrite(1, 123_456, False, 160, 0, 5000)
    assert rw.rewrite(1, 123_616, False, 160, 1, 5160) == (5160, False)
    # a transfer: a new peer, unrelated seq/timestamps, arriving on time -> contiguous, no marker
    assert rw.rewrite(2, 7, False, 160, 2, 5320) == (5320, False)
    assert rw.rewrite(2, 167, False, 160, 3, 5480) == (5480, False)
    # another one, 100 ms later by our clock: the time that passed shows, with a marker
    assert rw.rewrite(3, 1, False, 160, 4, 6440) == (6440, True)


def test_a_packet_sent_by_the_tick_in_between_anchors_a_new_segment_after_it():
    rw = HeaderRewriter()
    rw.rewrite(1, 0, False, 160, 10, 1000)  # -> 1000, seq 10
    # the tick sent seq 11 (an RFC 4733 event at 1160); our next is seq 12, tick next 1320
    out = rw.rewrite(1, 320, False, 160, 12, 1320)
    assert out == (1320, True)
    # and the segment goes on from there
    assert rw.rewrite(1, 480, False, 160, 13, 1480) == (1480, False)


def test_an_implausible_incoming_jump_is_a_restarted_stream():
    rw = HeaderRewriter()
    rw.rewrite(1, 0, False, 160, 0, 0)
    out = rw.rewrite(1, MAX_STEP + 1000, False, 160, 1, 160)
    assert out == (160, False)  # re-anchored where the stream was, not 10 s ahead


def test_resume_continues_from_the_last_forwarded_packet_or_the_clock_when_much_later():
    rw = HeaderRewriter()
    assert rw.resume(777, 160) == 777  # nothing forwarded yet
    rw.rewrite(1, 0, False, 160, 0, 1000)  # end 1160
    assert rw.resume(1100, 160) == 1160  # within a packet either way: contiguous
    assert rw.resume(1300, 160) == 1160
    assert rw.resume(5000, 160) == 5000  # a long pause: the clock
    assert rw.resume(100, 160) == 1160  # never backwards
    # resume closed the segment: the next forwarded packet re-anchors
    assert rw.rewrite(1, 160, False, 160, 1, 1160) == (1160, False)


def test_resume_never_snaps_back_behind_a_packet_the_tick_sent_since():
    rw = HeaderRewriter()
    rw.rewrite(1, 0, False, 160, 0, 1000)  # ours: seq 0, ts 1000, end 1160
    assert rw.resume(1100, 160, seq=1) == 1160  # we were the last sender: contiguous
    # the tick sent seq 1 at 1160 meanwhile; its clock now says 1320, a little after 1160
    assert rw.resume(1320, 160, seq=2) == 1320


# ---------------------------------------------------------------- property: one stream

events = st.lists(st.one_of(
    st.tuples(st.just("fwd"), st.integers(0, 2), st.integers(-400, 4000), st.booleans()),
    st.tuples(st.just("tick"), st.integers(1, 3)),
    st.tuples(st.just("resume"), st.integers(0, 2000)),
), min_size=1, max_size=120)


@settings(max_examples=300, deadline=None)
@given(events, st.integers(0, M32), st.integers(0, 0xFFFF), st.integers(0, M32))
def test_outgoing_sequence_and_timestamps_stay_one_stream(evs, clock0, seq0, in0):
    """A model session: one sequence counter, a clock timestamp; forwarded packets (incoming
    timestamps stepping by any amount, sometimes backwards, from up to three SSRCs), tick
    packets at the clock, the tick taking over.  Every packet sent has seq = previous + 1 and
    a timestamp not before the previous one's."""
    rw = HeaderRewriter()
    seq, clock = seq0, clock0
    in_ts = {0: in0, 1: in0 ^ 0x5555, 2: 17}
    sent = []  # (seq, ts)
    for ev in evs:
        if ev[0] == "fwd":
            _, ssrc, step, marker = ev
            in_ts[ssrc] = (in_ts[ssrc] + step) & M32
            out = rw.rewrite(ssrc, in_ts[ssrc], marker, 160, seq, (clock + 160) & M32)
            if out is not None:
                sent.append((seq, out[0]))
                seq = (seq + 1) & 0xFFFF
        elif ev[0] == "tick":
            clock = (clock + 160 * ev[1]) & M32
            ts = rw.resume(clock, 160, seq)  # the tick's packet (the session takes over first)
            if sent and not 0 <= (ts - sent[-1][1]) & M32 < 0x80000000:
                raise AssertionError("resume went backwards")
            clock = ts
            sent.append((seq, ts))
            seq = (seq + 1) & 0xFFFF
        else:
            clock = (clock + ev[1]) & M32
    for (s1, t1), (s2, t2) in zip(sent, sent[1:]):
        assert s2 == (s1 + 1) & 0xFFFF
        assert (t2 - t1) & M32 < 0x80000000, (t1, t2)  # not backwards (serial arithmetic)


def test_the_rewrite_is_pure():
    """Rule 1: importing ivr.rtp.forward on its own pulls no Twisted, socket or select."""
    import subprocess
    import sys
    code = ("import sys, ivr.rtp.forward; "
            "bad = [m for m in ('twisted', 'socket', 'select', 'asyncio') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
