import pytest

from ivr.rtp.stats import ReceiveStats


def feed(st, seqs, ssrc=1, start_arrival=0.0, ts_per_seq=160, spacing=0.02):
    out = []
    for i, seq in enumerate(seqs):
        out.append(st.update(ssrc, seq % 65536, (seq * ts_per_seq) & 0xFFFFFFFF, start_arrival + i * spacing, 160))
    return out


def test_in_order_no_loss_no_jitter():
    st = ReceiveStats()
    feed(st, range(100, 150))
    assert st.received == 50 and st.expected == 50 and st.lost == 0
    assert st.jitter == 0 and st.jitter_ms == pytest.approx(0.0, abs=1e-9)
    assert st.duplicates == 0 and st.reordered == 0
    assert st.octets == 50 * 160
    assert st.extended_max == 149


def test_loss_and_fraction():
    st = ReceiveStats()
    seqs = [s for s in range(0, 100) if s % 10 != 3]  # lose 10 of 100
    feed(st, seqs)
    assert st.expected == 100 and st.received == 90 and st.lost == 10
    assert st.interval_fraction_lost() == (10 << 8) // 100  # 25
    assert st.interval_fraction_lost() == 0  # nothing new in this interval
    feed(st, [100, 101, 104], start_arrival=10)
    assert st.interval_fraction_lost() == (2 << 8) // 5


def test_sequence_wrap():
    st = ReceiveStats()
    feed(st, range(65530, 65546))
    assert st.cycles == 65536
    assert st.extended_max == 65545
    assert st.expected == 16 and st.lost == 0


def test_duplicates_and_reordering():
    st = ReceiveStats()
    verdicts = feed(st, [1, 2, 4, 3, 3, 5, 2, 6])
    assert [v.duplicate for v in verdicts] == [False, False, False, False, True, False, True, False]
    assert [v.reordered for v in verdicts] == [False, False, False, True, False, False, False, False]
    assert st.duplicates == 2 and st.reordered == 1
    assert st.expected == 6 and st.received == 8
    assert st.cumulative_lost == -2 and st.lost == 0


def test_reorder_across_wrap():
    st = ReceiveStats()
    verdicts = feed(st, [65534, 0, 65535, 1])
    assert [v.reordered for v in verdicts] == [False, False, True, False]
    assert st.expected == 4 and st.lost == 0


def test_jitter_rfc3550_a8():
    st = ReceiveStats()
    # packets 20 ms apart in timestamp, arrivals alternate 10 ms early/late
    arrivals = [0.0, 0.03, 0.04, 0.07, 0.08]
    for i, a in enumerate(arrivals):
        st.update(7, i, i * 160, a)
    j = 0.0
    for k in range(1, 5):
        d = abs((arrivals[k] - arrivals[k - 1]) * 8000 - 160)
        j += (d - j) / 16
    assert st.jitter == int(j)
    assert st.jitter_ms == pytest.approx(j / 8)


def test_timestamp_wrap_no_jitter_spike():
    st = ReceiveStats()
    for i in range(5):
        st.update(7, i, (0xFFFFFF00 + i * 160) & 0xFFFFFFFF, i * 0.02)
    assert st.jitter == 0


def test_large_jump_needs_confirmation_then_restarts():
    st = ReceiveStats()
    feed(st, range(10))
    v = st.update(1, 30000, 0, 1.0)
    assert not v.accepted and st.received == 10
    v = st.update(1, 30001, 160, 1.02)
    assert v.accepted and v.restarted
    assert st.received == 1 and st.base_seq == 30001


def test_new_ssrc_restarts():
    st = ReceiveStats()
    feed(st, range(10))
    v = st.update(2, 500, 0, 1.0)
    assert v.restarted and st.ssrc == 2 and st.received == 1


def test_report_block_with_lsr_dlsr():
    st = ReceiveStats()
    assert st.report_block(0.0) is None
    feed(st, [0, 1, 3])
    st.on_sender_report((0x12345678 << 32) | 0x9ABC0000, arrival=10.0)
    rb = st.report_block(now=10.5)
    assert rb.ssrc == 1 and rb.highest_seq == 3 and rb.cumulative_lost == 1
    assert rb.fraction_lost == 64
    assert rb.lsr == 0x56789ABC and rb.dlsr == 32768
    d = st.as_dict()
    assert d["lost"] == 1 and d["packets_received"] == 3 and d["expected"] == 4
