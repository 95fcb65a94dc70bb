"""One owner of a call's life (STYLE rule 13): every INVITE that reaches the dialplan
leaves the call table exactly once, with one CDR carrying the final SIP status, its ports
released and the active-calls gauge back where it was -- whatever ends it.

Driven through the real call core in memory (tests/call/harness.py): examples for each
way a call can end before its plan really starts, then a hypothesis state machine that
mixes random calls, cancels, hang-ups and time, and checks the invariant after every step.
"""
from __future__ import annotations

import gc
import weakref
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from .harness import CallCore, offer

PLAN = """
routes:
  - {name: talk, flow: talk}
  - {name: busy, flow: busy}
  - {name: nowhere, flow: nowhere}
  - {name: boom, flow: boom}
  - {name: ringing, flow: ringing}
  - {name: echo, flow: echo}
flows:
  talk:
    - answer
    - say: "hello"
    - pause: 2
    - hangup
  busy:
    - reject: busy
  nowhere:
    - dial: {to: "9999"}
  boom:
    - answer
    - say: "boom"
  ringing:
    - ring
    - pause: 20
    - answer
    - hangup
  echo:
    - answer
    - echo: 60
"""

GOOD = offer()
NOT_SDP = b"this is not a session description\r\n"
NO_COMMON_CODEC = offer(formats="18", extra="a=rtpmap:18 G729/8000\r\n")
BAD_ADDRESS = offer().replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 10.10.10.256")


@pytest.fixture
def core(tmp_path):
    core = CallCore(tmp_path / "plans", PLAN, rtp_pairs=2)
    yield core
    core.close()


def assert_all_ended_once(core: CallCore, invites: int) -> None:
    assert len(core.calls) == 0, [c.id for c in core.calls.values()]
    ids = Counter(r["leg_id"] for r in core.cdrs.records)
    assert len(core.cdrs.records) == invites, core.cdrs.records
    assert all(n == 1 for n in ids.values()), ids
    assert core.ports.in_use == 0
    assert core.ua.active_sessions() == 0
    assert core.dialplan.runners == {}
    assert core.metrics.active_calls._value.get() == 0


@pytest.mark.parametrize("user, sdp, status, reason", [
    ("talk", NOT_SDP, 400, "rejected"),
    ("talk", NO_COMMON_CODEC, 488, "rejected"),
    ("talk", BAD_ADDRESS, 400, "rejected"),
    ("busy", GOOD, 486, "rejected-486"),
    ("nowhere", GOOD, None, None),          # dial fails at once: the flow's end rejects
    ("boom", GOOD, None, "error"),
    ("unrouted", GOOD, 404, "no-route"),
])
def test_a_call_that_ends_before_its_plan_starts_leaves_once_with_a_record(
        core, user, sdp, status, reason):
    session, phone = core.call(user, sdp)
    core.run(1.0)
    final = [e for e in phone.events if e[0] in ("failed", "answered")]
    assert final, phone.events
    assert_all_ended_once(core, 1)
    (cdr,) = core.cdrs.records
    assert cdr["leg_id"] == session.call_id
    assert cdr["sip_status"] is not None and cdr["sip_status"] >= 200
    if status is not None:
        assert final[0] == ("failed", status)
        assert cdr["sip_status"] == status
    if reason is not None and reason != "error":
        assert cdr["end_reason"] == reason


def test_no_free_rtp_port_ends_the_call_with_a_record(core):
    held = [core.call("echo", offer(4000 + 2 * n)) for n in range(2)]  # both pairs taken
    core.run(0.5)
    assert len(core.calls) == 2 and core.ports.in_use == 2
    session, phone = core.call("talk", GOOD)
    core.run(0.5)
    assert phone.events[-1] == ("failed", 503)
    assert core.cdrs.records[-1]["end_reason"] == "no-media-ports"
    retry = [m for _, m in core.network.sent(5070, "503 INVITE")]
    assert retry and retry[0].headers.get("Retry-After") == "5"
    assert len(core.calls) == 2
    assert len(core.cdrs.records) == 1 and core.cdrs.records[0]["leg_id"] == session.call_id
    # A bad offer is still answered for what it is, not with 503.
    _, bad = core.call("talk", NOT_SDP)
    _, no_codec = core.call("talk", NO_COMMON_CODEC)
    core.run(0.5)
    assert bad.events[-1] == ("failed", 400) and no_codec.events[-1] == ("failed", 488)
    for s, _ in held:
        s.bye()
    core.run(1.0)
    assert_all_ended_once(core, 5)


def test_cancel_before_answer_and_bye_after_answer_are_recorded(core):
    ringing, _ = core.call("ringing", GOOD)
    talking, phone = core.call("echo", GOOD)
    core.run(0.5)
    ringing.cancel()
    talking.bye()
    core.run(1.0)
    assert_all_ended_once(core, 2)
    by_id = {r["leg_id"]: r for r in core.cdrs.records}
    assert by_id[ringing.call_id]["sip_status"] == 487
    assert by_id[ringing.call_id]["outcome"] == "cancelled" or by_id[ringing.call_id]["end_reason"] == "cancelled"
    assert by_id[talking.call_id]["sip_status"] == 200
    assert by_id[talking.call_id]["hangup_side"] == "remote"


def test_two_live_legs_with_one_call_id_are_owned_separately(core):
    first, _ = core.call("echo", GOOD)
    core.run(0.2)
    # A second dialog with the same Call-ID (another From tag): a forking proxy, or a peer
    # that reuses Call-IDs.  Neither may shadow or remove the other.
    from tests.sip.test_ua_pair import Listener
    second = core.phone.invite(f"sip:echo@127.0.0.1:{5070}", Listener(), offer(4002),
                               call_id=first.call_id)
    core.run(0.2)
    assert sorted(core.calls) == sorted([first.call_id, first.call_id + ";2"])
    second.bye()
    core.run(0.5)
    assert list(core.calls) == [first.call_id]
    first.bye()
    core.run(0.5)
    assert_all_ended_once(core, 2)


def test_an_ended_call_is_not_kept_alive_by_the_server(core):
    session, _ = core.call("busy", GOOD)
    core.run(0.5)
    (cdr,) = core.cdrs.records
    assert cdr["leg_id"] == session.call_id
    # Nothing the server keeps refers to the leg once it ended (the 18 KB per call leak).
    refs = []
    for call_id in [cdr["leg_id"]]:
        assert call_id not in core.calls
    gc.collect()
    leaked = [o for o in gc.get_objects() if type(o).__name__ == "Call"
              and getattr(o, "call_id", None) == session.call_id]
    for o in leaked:
        refs.append(weakref.ref(o))
    del leaked
    gc.collect()
    assert all(r() is None for r in refs)


# -- the invariant under random outcomes ---------------------------------------------------

TARGETS = ["talk", "busy", "nowhere", "boom", "ringing", "echo", "unrouted"]
BODIES = {"good": GOOD, "late": None, "not_sdp": NOT_SDP, "no_codec": NO_COMMON_CODEC,
          "bad_address": BAD_ADDRESS}


class CallLifecycle(RuleBasedStateMachine):
    """Every INVITE the phone sends leaves the server's call table exactly once."""

    def __init__(self) -> None:
        super().__init__()
        self.core: CallCore | None = None
        self.sessions: list = []

    @initialize()
    def start(self) -> None:
        import tempfile
        from pathlib import Path
        self._tmp = tempfile.TemporaryDirectory()
        self.core = CallCore(Path(self._tmp.name) / "plans", PLAN, rtp_pairs=3)

    @rule(user=st.sampled_from(TARGETS), body=st.sampled_from(sorted(BODIES)))
    def invite(self, user, body) -> None:
        session, _ = self.core.call(user, BODIES[body])
        self.sessions.append(session)

    @precondition(lambda self: self.sessions)
    @rule(which=st.integers(min_value=0), how=st.sampled_from(["cancel", "bye"]))
    def phone_ends(self, which, how) -> None:
        session = self.sessions[which % len(self.sessions)]
        getattr(session, how)()

    @precondition(lambda self: self.core is not None and len(self.core.calls) > 0)
    @rule(which=st.integers(min_value=0), reason=st.sampled_from(["normal", "api"]))
    def server_hangs_up(self, which, reason) -> None:
        calls = list(self.core.calls.values())
        calls[which % len(calls)].hangup(reason)

    @rule(seconds=st.sampled_from([0.05, 0.3, 1.0, 3.0]))
    def time_passes(self, seconds) -> None:
        self.core.run(seconds, step=min(seconds, 0.1))

    @invariant()
    def every_call_is_owned_or_recorded_once(self) -> None:
        core = self.core
        if core is None:
            return
        assert all(not c.ended for c in core.calls.values())
        ids = Counter(r["leg_id"] for r in core.cdrs.records)
        assert all(n == 1 for n in ids.values()), ids
        assert core.calls.started == len(core.calls) + len(core.cdrs.records)
        assert not set(ids) & set(core.calls)
        assert core.ports.in_use <= len(core.calls)
        assert core.metrics.active_calls._value.get() == len(core.calls)

    def teardown(self) -> None:
        core = self.core
        if core is None:
            return
        try:
            core.run(30.0, step=0.5)  # ring and media timeouts, echo and pauses run out
            core.run(40.0, step=1.0)  # 64*T1 for anything unacknowledged
            assert_all_ended_once(core, len(self.sessions))
            assert all(r["sip_status"] is not None for r in core.cdrs.records)
        finally:
            core.close()
            self._tmp.cleanup()


CallLifecycle.TestCase.settings = settings(
    max_examples=25, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestCallLifecycle = CallLifecycle.TestCase


@pytest.mark.parametrize("reason, status", [("api", 480), ("media-timeout", 480),
                                            ("shutdown", 503), ("error", 500)])
def test_hanging_up_an_unanswered_call_answers_500_only_for_our_own_failures(core, reason, status):
    session, phone = core.call("ringing", GOOD)
    core.run(0.3)
    (call,) = core.calls.values()
    call.hangup(reason)
    core.run(0.5)
    assert phone.events[-1] == ("failed", status)
    assert core.cdrs.records[-1]["sip_status"] == status
    assert_all_ended_once(core, 1)


def test_the_server_raises_its_open_file_limit_to_the_hard_limit():
    import resource
    from ivr.server import raise_open_file_limit
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        old, new = raise_open_file_limit()
        assert old == min(256, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == new
        assert new == hard or hard == resource.RLIM_INFINITY
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_stopping_the_dialplan_service_drops_the_webhook_clients_connections(core):
    closed = []

    class Http:
        def close(self):
            closed.append(True)
            from twisted.internet import defer
            return defer.succeed(None)

    core.dialplan.http = Http()
    d = core.dialplan.stop()
    assert closed == [True] and d.called
