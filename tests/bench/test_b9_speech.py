"""bench/b9_speech.py: a tiny run (keys only; figures differ per machine): the accuracy part
decodes every utterance of each condition and the load part gets a result for every caller."""
from bench import b9_speech


def test_b9_tiny_run_has_its_keys(tmp_path):
    out = b9_speech.run(tmp_path, "quick", {"b9_calls": 3})
    figures = out["figures"]
    for key in ("accuracy_percent_clean", "accuracy_percent_20db", "accuracy_percent_10db",
                "engine_cpu_ms_per_speech_second", "latency_p95_ms", "load_calls",
                "load_accuracy_percent", "cpu_percent_per_concurrent_recogniser",
                "worker_rss_mb", "pacing_p99_dev_ms_idle_vs_load"):
        assert key in figures, key
    assert figures["utterances_per_condition"] == 18
    load = figures["load"]
    assert load["calls"] == 3 and load["results"] + load["failed"] == 3
    assert load["pacing_idle"]["ticks"] > 0 and load["pacing_under_load"]["ticks"] > 0
