"""ivr.logging's inline level filter lets through what Twisted's predicate did."""
from __future__ import annotations

from twisted.logger import LogLevel, LogLevelFilterPredicate, PredicateResult

from ivr.logging import _levels_from, _passes


def test_inline_level_filter_matches_twisteds_predicate():
    levels = list(LogLevel.iterconstants())
    for minimum in levels:
        predicate = LogLevelFilterPredicate(defaultLogLevel=minimum)
        wanted = _levels_from(minimum)
        events = [{"log_level": level, "log_namespace": ns}
                  for level in levels for ns in ("ivr.call", "", None)]
        events += [{"log_namespace": "ivr.call"}, {"log_level": LogLevel.critical}, {}]
        for event in events:
            expected = predicate(event) is not PredicateResult.no
            assert _passes(event, wanted) is expected, (minimum, event)
