"""bench.b0_streams.inprocess: the media clock's CPU per stream-period, on a task.Clock."""
from bench import b0_streams


def test_every_session_sends_and_receives_once_per_period():
    out = b0_streams.inprocess(streams=12, periods=6, receive=True, null_send=True, warmup=2)
    periods = 6 + 2
    assert out["packets_received"] == 12 * periods  # every packet the peer sent was read
    # every session sends once per period, but a stream's first firing may come before the
    # first period's end (phases): at most one packet fewer per stream
    assert 12 * (periods - 1) <= out["packets_sent"] <= 12 * periods
    assert out["socket_io"] == "drop"
    assert 0 < out["us_per_stream_period"]["p10"] <= out["us_per_stream_period"]["p50"]
