"""Fuzzing the whole server path in process (issue #13): every message of the torture
corpus and every recorded fixture under tests/data/sip, mutated, plus generated SDP bodies
in otherwise valid INVITEs, re-INVITEs, UPDATEs and ACKs.  After each one:

- nothing the server sent is a 5xx other than the ones RFC 3261 asks for a client's fault
  (501 for a method it does not know, 505 for a version, 513 for a size);
- nothing was logged as an error (an error is a bug of ours);
- the server still answers an OPTIONS with 200 and takes a normal call;
- once the clock has run on, every call leg has ended.

The harness is tests/sip/test_fuzz_server.py's Server; the examples are bounded so the
three tests take well under a minute together.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ivr.sip.message import Request, Response

from ..sdp.test_bad_input import sdp_bodies
from .test_fuzz_server import (
    DATA, GOOD_SDP, HOST, PLAN, PORT, ErrorLog, Server, final, in_dialog, invite, options,
)
from .test_fuzz import mutate_bytes
from .test_torture import TORTURE

SEEDS = sorted(DATA.glob("*.sip")) + sorted((TORTURE / "rfc4475").glob("*.dat")) + sorted(
    (TORTURE / "rfc5118" / "wire").glob("*.dat"))
SEED_BYTES = [path.read_bytes() for path in SEEDS]
#: The seeds that are INVITEs with an SDP offer, drawn half of the time: retargeted to a
#: routed number, their offers (mutated or not) reach Call's answer.
SDP_INVITES = [data for data in SEED_BYTES
               if data.startswith(b"INVITE ") and b"application/sdp" in data.lower()]

#: 5xx answers the RFCs give for what a client sent (not for a fault of ours).
CLIENT_FAULT_5XX = {501, 505, 513}
START_LINE = re.compile(rb"^INVITE \S+ ")
CONTENT_LENGTH = re.compile(rb"(?im)^((?:Content-Length|l)[ \t]*:[ \t]*)\d+")


def test_the_seeds_are_all_there():
    assert len(SEEDS) == 5 + 49 + 12
    assert len(SDP_INVITES) >= 10


@st.composite
def mutated(draw, seeds=None) -> bytes:
    if seeds is None:
        seeds = SDP_INVITES if draw(st.booleans()) else SEED_BYTES
    data = draw(st.sampled_from(seeds))
    if draw(st.booleans()):  # an INVITE the dialplan routes, so that its SDP is answered
        data = START_LINE.sub(f"INVITE sip:fuzz@{HOST}:{PORT} ".encode(), data, 1)
    head, sep, body = data.partition(b"\r\n\r\n")
    if sep and body and draw(st.booleans()):
        # only the body changes, and Content-Length follows it: the SIP message stays
        # well-formed and the mutated SDP reaches the offer/answer code
        body = _mutate(draw, bytearray(body))
        head = CONTENT_LENGTH.sub(b"\\g<1>%d" % len(body), head)
        return head + sep + body
    return _mutate(draw, bytearray(data))


def _mutate(draw, data: bytearray) -> bytes:
    return mutate_bytes(draw, data, draw(st.integers(0, 5)))


def sdp_mutations() -> st.SearchStrategy[bytes]:
    """Generated bodies, and byte mutations of a good one."""
    return st.one_of(sdp_bodies(), mutated(seeds=[GOOD_SDP]))


@pytest.fixture(scope="module")
def server():
    with tempfile.TemporaryDirectory() as plans:
        Path(plans, "fuzz.yaml").write_text(PLAN)
        server = Server(Path(plans))
        with ErrorLog() as server.errors:
            yield server


def no_5xx(messages) -> None:
    bad = [m for m in messages if isinstance(m, Response) and m.status >= 500
           and m.status not in CLIENT_FAULT_5XX]
    assert not bad, [(m.status, m.reason, m.cseq) for m in bad]


def still_serving(server: Server) -> None:
    """After whatever came before: OPTIONS gets 200, and a normal call is answered."""
    assert final(server.send(options()), "OPTIONS").status == 200
    ok = final(server.send(invite()))
    assert ok.status == 200
    server.send(in_dialog("ACK", ok, 0))


def settle(server: Server, sent: list) -> None:
    """Let every call and transaction run out; check what was sent meanwhile."""
    sent += server.run(40)
    no_5xx(sent)
    assert server.errors.events == [], server.errors.events[0]
    assert [call.call_id for call in server.live] == []


FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(data=mutated())
def test_mutated_corpus_and_fixtures_never_get_a_5xx(server, data):
    server.errors.events.clear()
    sent = server.send(data)
    event(f"answered {sorted({m.status for m in sent if isinstance(m, Response)})}")
    sent += server.run(3)  # the plan answers, pauses and hangs up
    no_5xx(sent)
    still_serving(server)
    settle(server, sent)


@FUZZ
@given(body=sdp_mutations(), content_type=st.sampled_from(
    ["application/sdp", "application/SDP", "application/sdp; charset=utf-8"]))
def test_generated_sdp_in_an_invite_never_gets_a_5xx(server, body, content_type):
    server.errors.events.clear()
    sent = server.send(invite(body, content_type=content_type))
    responses = [m for m in sent if isinstance(m, Response) and m.status >= 200]
    assert len(responses) == 1, sent
    (response,) = responses
    event(f"answered {response.status}")
    if response.status in (400, 488) and response.headers.get("Content-Type") is None:
        # refused for its SDP: a Warning says why (a refusal at the SIP level, e.g. a
        # content type we do not take, carries none)
        warning = response.headers.get("Warning")
        assert warning and re.fullmatch(r'3\d\d \S+ ".*"', warning), warning
    else:
        assert response.status in (200, 415), response
    sent += server.run(3)
    no_5xx(sent)
    still_serving(server)
    settle(server, sent)


@FUZZ
@given(body=sdp_mutations(), how=st.sampled_from(["re-INVITE", "UPDATE", "ACK answer",
                                                  "ACK to our re-offer"]))
def test_generated_sdp_in_a_dialog_never_gets_a_5xx(server, body, how):
    server.errors.events.clear()
    if how == "ACK answer":  # the INVITE has no offer: ours is in the 200, theirs in the ACK
        ok = final(server.send(invite(b"", content_type=None)))
        sent = server.send(in_dialog("ACK", ok, 0, body))
    else:
        ok = final(server.send(invite()))
        sent = server.send(in_dialog("ACK", ok, 0))
        if how == "ACK to our re-offer":
            offer = final(server.send(in_dialog("INVITE", ok, 2)))
            sent += server.send(in_dialog("ACK", offer, 2, body))
        else:
            method = how.removeprefix("re-")
            answer = final(server.send(in_dialog(method, ok, 2, body)), method)
            assert answer.status in (200, 400, 488), answer
            event(f"{how} answered {answer.status}")
            if answer.status != 200:
                assert re.fullmatch(r'3\d\d \S+ ".*"', answer.headers.get("Warning") or "")
            if method == "INVITE":
                sent += server.send(in_dialog("ACK", answer, 2))
            sent.append(answer)
    sent += server.run(3)
    no_5xx(sent)
    assert all(m.method == "BYE" for m in sent if isinstance(m, Request))
    still_serving(server)
    settle(server, sent)
