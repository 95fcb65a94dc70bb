"""bench/relay_inprocess.py: the payloads really go through the relay, and the figure is a cost."""
from bench import relay_inprocess


def test_every_payload_is_relayed_to_the_other_peer_and_a_cost_is_reported():
    figures = relay_inprocess.measure(pairs=4, periods=30, warmup=5)
    assert figures["relayed_packets"] == 2 * 4 * 30
    # one frame per period in, one out: after the warm-up every tick sends a relayed payload
    assert figures["relayed_payloads_back_at_peers"] == figures["relayed_packets"]
    assert figures["us_per_relayed_packet"] > 0
