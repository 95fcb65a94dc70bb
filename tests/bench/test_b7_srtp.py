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


def test_b7_library_cost_with_rotating_contexts_and_a_second_suite_on_the_media_path():
    """libsrtp alone served round robin over N context pairs (cache effects), through
    SrtpContext and through the bare calls; the media path timed with GCM as well."""
    rotating = b7_srtp.library_contexts(counts=(1, 4), packets=40, repeat=1)
    assert set(rotating) == {"1", "4"}
    for figures in rotating.values():
        assert figures["srtp_context_us"] > 0 and figures["bare_cffi_us"] > 0
    figures = b7_srtp.measure(pairs=2, periods=10, warmup=2, rounds=1, suites=(b7_srtp.SUITE, b7_srtp.GCM))
    assert [r["srtp"] for r in figures["runs"]] == [None, b7_srtp.SUITE, b7_srtp.GCM]
    assert all(r["srtp_dropped"] == 0 and r["sent_total"] == r["received_total"] > 0 for r in figures["runs"])
    assert set(figures["added_us_per_packet_by_suite"]) == {b7_srtp.SUITE, b7_srtp.GCM}
    assert set(figures["library_us_by_rotating_contexts"]) == {"1", "100", "400", "1000"}
