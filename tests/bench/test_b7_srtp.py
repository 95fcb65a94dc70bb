"""bench/b7_srtp.py: both rounds really carry every packet (SRTP ones decrypted, none
dropped), and the figures are costs measured in the same run."""
from bench import b7_srtp


def test_b7_measures_plain_and_srtp_rounds_that_carry_every_packet():
    figures = b7_srtp.measure(pairs=3, periods=20, warmup=3, rounds=1)
    plain, srtp = figures["runs"]
    assert plain["srtp"] is None and srtp["srtp"] == "AES_CM_128_HMAC_SHA1_80"
    for run in (plain, srtp):
        assert run["sent_total"] == run["received_total"] > 0  # loopback loses nothing
        assert run["srtp_dropped"] == 0 and run["us_per_packet"] > 0
    assert figures["added_us_per_packet"] == round(
        figures["us_per_packet_srtp"] - figures["us_per_packet_plain"], 3)
    assert set(figures["library_us_protect_plus_unprotect"]) >= {"AES_CM_128_HMAC_SHA1_80"}
