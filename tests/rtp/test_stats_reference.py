"""ReceiveStats against a plain transcription of RFC 3550 A.1 / A.3 / A.8, packet by packet.

``ReceiveStats.update`` handles the next in-order packet on an inline fast path; this checks
that every verdict and every counter (received, lost, duplicates, reordered, the extended
highest sequence, jitter to the last bit) stays what the general rules give, over random
streams with losses, duplicates, reordering, sequence and timestamp wrap, large jumps and
SSRC changes.
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.rtp.stats import ReceiveStats

SEQ_MOD = 1 << 16


class Reference:
    """The rules as the module docstring and RFC 3550 state them, no shortcuts."""

    def __init__(self) -> None:
        self.ssrc = None
        self.started = False

    def _init(self, seq):
        self.max_seq, self.bad_seq, self.cycles, self.base_seq = seq, SEQ_MOD + 1, 0, seq
        self.received = 0
        self.seen = {seq}  # extended sequence numbers received (for the 128 window)
        self.jitter, self.transit = 0.0, None

    def update(self, ssrc, seq, ts, arrival, octets):
        restarted = dup = reord = False
        if not self.started or ssrc != self.ssrc:
            self.ssrc, self.started = ssrc, True
            self.duplicates = self.reordered = self.octets = 0
            self._init(seq)
            restarted = True
        else:
            udelta = (seq - self.max_seq) % SEQ_MOD
            ext_max = self.cycles + self.max_seq
            if 0 < udelta < 3000:
                if seq < self.max_seq:
                    self.cycles += SEQ_MOD
                self.max_seq = seq
                self.seen.add(ext_max + udelta)
            elif udelta == 0:
                dup = True
            elif udelta <= SEQ_MOD - 100:
                if seq == self.bad_seq:
                    self._init(seq)
                    restarted = True
                else:
                    self.bad_seq = (seq + 1) % SEQ_MOD
                    return (False, False, False, False)
            else:
                behind = SEQ_MOD - udelta
                if behind < 128 and ext_max - behind in self.seen:
                    dup = True
                else:
                    reord = True
                    if behind < 128:
                        self.seen.add(ext_max - behind)
        self.received += 1
        self.octets += octets
        if dup:
            self.duplicates += 1
        else:
            self.reordered += reord
            if self.transit is not None:
                delta = (ts - self.transit[1]) & 0xFFFFFFFF
                if delta >= 1 << 31:
                    delta -= 1 << 32
                d = (arrival - self.transit[0]) * 8000 - delta
                self.jitter += (abs(d) - self.jitter) / 16.0
            self.transit = (arrival, ts)
        return (True, dup, reord, restarted)


# One step: (seq advance, ts advance, arrival advance in ms, new ssrc?)
_steps = st.lists(st.tuples(
    st.one_of(st.just(1), st.just(1), st.just(1), st.integers(-130, 130), st.integers(0, 65535)),
    st.one_of(st.just(160), st.integers(-2000, 2000), st.integers(0, 0xFFFFFFFF)),
    st.floats(0, 60),
    st.integers(0, 40).map(lambda n: n == 0)), max_size=300)


@settings(max_examples=200, deadline=None)
@given(seq0=st.one_of(st.integers(65300, 65535), st.integers(0, 65535)),
       ts0=st.one_of(st.integers(0xFFFF0000, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF)), steps=_steps)
def test_update_matches_the_reference(seq0, ts0, steps):
    ours, ref = ReceiveStats(), Reference()
    ssrc, seq, ts, arrival = 7, seq0, ts0, 1000.0
    for dseq, dts, dt, new_ssrc in steps:
        ssrc += new_ssrc
        seq, ts, arrival = (seq + dseq) % SEQ_MOD, (ts + dts) & 0xFFFFFFFF, arrival + dt / 1000
        v = ours.update(ssrc, seq, ts, arrival, 160)
        assert (v.accepted, v.duplicate, v.reordered, v.restarted) == ref.update(ssrc, seq, ts, arrival, 160)
        assert ours.received == ref.received and ours.octets == ref.octets
        assert ours.duplicates == ref.duplicates and ours.reordered == ref.reordered
        assert ours.extended_max == ref.cycles + ref.max_seq
        assert ours.expected == ref.cycles + ref.max_seq - ref.base_seq + 1
        assert ours._jitter == ref.jitter  # bit for bit: the same operations in the same order
