"""Every /v1 endpoint with good and bad input, over a FakeTelephony on a task.Clock."""
from __future__ import annotations

import csv
import io

import pytest

from ivr.httpclient.signing import SIGNATURE_HEADER, verify

from .harness import Env

AGENT, CUSTOMER = "2001", "+12025550143"
OK_PLANS = {AGENT: {"ring": 0.5, "answer": 2},
            CUSTOMER: {"ring": 0.5, "answer": 3, "hangup": 20}}


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path, OK_PLANS)


def c2c(env, **body):
    return env.request("POST", "/v1/click-to-call", {"agent": AGENT, "customer": CUSTOMER,
                                                     **body})


# -- click-to-call ---------------------------------------------------------------------

def test_click_to_call_end_to_end_with_webhooks_and_cdrs(env):
    r = c2c(env, customer="(202) 555-0143", caller_id="202-555-0100",
            callback_url="http://hooks.test/ivr", record=True, whisper="Website lead")
    assert r.code == 201
    sid = r.json["id"]
    assert r.header("Location") == f"/v1/click-to-call/{sid}"
    assert r.json["customer"] == CUSTOMER and r.json["state"] == "ringing_agent"
    env.advance(40)
    s = env.request("GET", f"/v1/click-to-call/{sid}").json
    assert s["state"] == "completed" and s["reason"] == "customer-hangup"
    assert [e["event"] for e in s["events"]] == ["initiated", "ringing_agent", "agent_answered",
                                                 "whisper", "ringing_customer", "bridged",
                                                 "completed"]
    agent, customer = env.tel.all
    assert customer.caller_id == "+12025550100" and agent.said == ["Website lead"]
    assert len(agent.recordings) == len(customer.recordings) == 1
    # webhooks: in order, signed
    got = env.receiver.requests
    assert [e["event"] for e in env.receiver.events(sid)] == [e["event"] for e in s["events"]]
    assert [e["sequence"] for e in env.receiver.events(sid)] == list(range(1, 8))
    for t, url, body, headers in got:
        assert url == "http://hooks.test/ivr"
        assert verify(b"secret", headers[SIGNATURE_HEADER], body, now=t)
    # CDRs: both legs, linked by the session id
    rows = env.request("GET", "/v1/cdrs").json["cdrs"]
    assert {(r["role"], r["leg_id"]) for r in rows} == {("agent", agent.id),
                                                        ("customer", customer.id)}
    assert all(r["session_id"] == sid and r["outcome"] == "answered" for r in rows)
    cust = next(r for r in rows if r["role"] == "customer")
    assert cust["hangup_side"] == "customer" and cust["billsec"] == 20.0
    # start_recording's file is on each leg's record (the session fills it in)
    assert {r["role"]: r["recording"] for r in rows} == {
        "agent": agent.recordings[0], "customer": customer.recordings[0]}
    assert env.metrics.registry.get_sample_value(
        "ivr_click_to_call_sessions_total",
        {"state": "completed", "reason": "customer-hangup"}) == 1.0


def test_click_to_call_agent_busy_cdr_and_failed_webhook(tmp_path):
    env = Env(tmp_path, {AGENT: {"fail": ("busy", 1)}})
    sid = c2c(env, callback_url="http://h/x").json["id"]
    env.advance(2)
    s = env.request("GET", f"/v1/click-to-call/{sid}").json
    assert (s["state"], s["reason"]) == ("failed", "agent-busy")
    assert env.receiver.events(sid)[-1]["data"]["reason"] == "agent-busy"
    rows = env.request("GET", "/v1/cdrs?outcome=busy").json["cdrs"]
    assert [r["role"] for r in rows] == ["agent"]


@pytest.mark.parametrize("body,status,code", [
    ({"customer": CUSTOMER}, 400, "missing_field"),
    ({"agent": AGENT}, 400, "missing_field"),
    ({"agent": AGENT, "customer": "not a number"}, 400, "invalid_number"),
    ({"agent": AGENT, "customer": "+1 202 555"}, 422, "invalid_number"),
    ({"agent": AGENT, "customer": 12025550143}, 400, "invalid_field"),
    ({"agent": "7777", "customer": CUSTOMER}, 422, "unknown_target"),
    ({"agent": AGENT, "customer": CUSTOMER, "caller_id": "x"}, 400, "invalid_number"),
    ({"agent": AGENT, "customer": CUSTOMER, "max_duration": -5}, 400, "invalid_field"),
    ({"agent": AGENT, "customer": CUSTOMER, "max_duration": "10"}, 400, "invalid_field"),
    ({"agent": AGENT, "customer": CUSTOMER, "record": "yes"}, 400, "invalid_field"),
    ({"agent": AGENT, "customer": CUSTOMER, "callback_url": "ftp://x"}, 400, "invalid_field"),
    ({"agent": AGENT, "customer": CUSTOMER, "whisper": 5}, 400, "invalid_field"),
    ({"agent": AGENT, "customer": CUSTOMER, "timeout": 0}, 400, "invalid_field"),
])
def test_click_to_call_bad_input(env, body, status, code):
    r = env.request("POST", "/v1/click-to-call", body)
    assert (r.code, r.error_code()) == (status, code), r.body
    assert env.tel.all == []


def test_click_to_call_list_get_cancel(env):
    sid = c2c(env).json["id"]
    assert [s["id"] for s in env.request("GET", "/v1/click-to-call").json["sessions"]] == [sid]
    assert env.request("GET", "/v1/click-to-call/nope").code == 404
    r = env.request("DELETE", f"/v1/click-to-call/{sid}")
    assert r.code == 200 and r.json["state"] == "failed" and r.json["reason"] == "cancelled"
    r = env.request("DELETE", f"/v1/click-to-call/{sid}")
    assert r.code == 409 and r.error_code() == "already_ended"
    env.advance(3600)
    assert env.request("GET", f"/v1/click-to-call/{sid}").code == 404   # forgotten after TTL


def test_max_duration_from_the_api(env):
    sid = c2c(env, max_duration=5).json["id"]
    env.advance(12)
    s = env.request("GET", f"/v1/click-to-call/{sid}").json
    assert (s["state"], s["reason"], s["hangup_side"]) == ("completed", "max-duration", "system")


# -- do-not-disturb ----------------------------------------------------------------------

def test_dnd_blocks_promotional_calls_unless_transactional(env):
    r = env.request("PUT", "/v1/dnd/2025550143", {"reason": "asked us"})
    assert r.code == 201 and r.json["number"] == CUSTOMER
    assert env.request("PUT", "/v1/dnd/+12025550143").code == 200
    assert env.request("GET", "/v1/dnd").json["numbers"][0]["number"] == CUSTOMER
    r = c2c(env)
    assert r.code == 403 and r.error_code() == "do_not_disturb"
    r = env.request("POST", "/v1/calls", {"to": CUSTOMER, "flow": "otp"})
    assert r.code == 403
    assert env.tel.all == []
    assert c2c(env, transactional=True).code == 201
    assert env.request("POST", "/v1/calls", {"to": CUSTOMER, "flow": "otp",
                                             "transactional": True}).code == 201
    assert env.request("DELETE", "/v1/dnd/%2B12025550143").code == 204
    assert env.request("DELETE", "/v1/dnd/+12025550143").code == 404
    assert c2c(env).code == 201


def test_dnd_bad_input(env):
    assert env.request("PUT", "/v1/dnd/abc").error_code() == "invalid_number"
    assert env.request("PUT", "/v1/dnd/+12025550143", raw=b"{bad").code == 400
    assert env.request("PUT", "/v1/dnd/+12025550143", {"reason": 5}).code == 400


# -- calls -----------------------------------------------------------------------------

def test_originate_runs_flow_after_sending_digits(env):
    env.tel.gather = True
    r = env.request("POST", "/v1/calls", {"to": CUSTOMER, "flow": "otp", "send_digits": "1w2",
                                          "variables": {"code": "4821"},
                                          "callback_url": "http://h/calls"})
    assert r.code == 201
    call_id = r.json["id"]
    assert r.header("Location") == f"/v1/calls/{call_id}" and r.json["flow"] == "otp"
    env.advance(3)
    leg = env.tel.leg(call_id)
    assert leg.digits_sent == ["1w2"]
    assert env.tel.flows == [(call_id, "otp", {"code": "4821"})]
    got = env.request("GET", f"/v1/calls/{call_id}").json
    assert got["state"] == "answered" and got["remote"] == CUSTOMER
    assert [c["id"] for c in env.request("GET", "/v1/calls").json["calls"]] == [call_id]
    r = env.request("DELETE", f"/v1/calls/{call_id}")
    assert r.code == 202 and leg.hangups == ["api"]
    assert env.request("DELETE", f"/v1/calls/{call_id}").code == 409
    assert [e["event"] for e in env.receiver.events(call_id)] == [
        "initiated", "ringing", "answered", "completed"]
    cdr = env.request("GET", f"/v1/cdrs?number={CUSTOMER}").json["cdrs"][0]
    assert (cdr["flow"], cdr["route"], cdr["outcome"], cdr["digits"]) == ("otp", "api",
                                                                          "answered", ["12"])


def test_originate_no_answer(tmp_path):
    env = Env(tmp_path, {})
    call_id = env.request("POST", "/v1/calls", {"to": CUSTOMER, "flow": "otp",
                                                "timeout": 10}).json["id"]
    env.advance(10)
    assert env.request("GET", f"/v1/calls/{call_id}").json["end_reason"] == "no-answer"
    assert env.request("GET", "/v1/cdrs?outcome=no-answer").json["count"] == 1


@pytest.mark.parametrize("body,status,code", [
    ({"flow": "otp"}, 400, "missing_field"),
    ({"to": CUSTOMER}, 400, "missing_field"),
    ({"to": "garbage", "flow": "otp"}, 400, "invalid_number"),
    ({"to": CUSTOMER, "flow": 3}, 400, "invalid_field"),
    ({"to": CUSTOMER, "flow": "nope"}, 422, "unknown_flow"),
    ({"to": CUSTOMER, "flow": "otp", "send_digits": "12x"}, 400, "invalid_field"),
    ({"to": CUSTOMER, "flow": "otp", "variables": [1]}, 400, "invalid_field"),
])
def test_originate_bad_input(tmp_path, body, status, code):
    env = Env(tmp_path, flows={"otp", "survey"})
    r = env.request("POST", "/v1/calls", body)
    assert (r.code, r.error_code()) == (status, code)


def test_unknown_call_is_404(env):
    assert env.request("GET", "/v1/calls/nope").code == 404
    assert env.request("DELETE", "/v1/calls/nope").error_code() == "not_found"


# -- CDR queries and lookup ----------------------------------------------------------------

def test_cdr_filters_and_csv(env):
    for i, outcome in enumerate(["answered", "busy", "answered"]):
        env.store.record({"leg_id": f"L{i}", "from_number": "+12025550100",
                          "to_number": f"+1202555014{i}", "setup_at": 100.0 * (i + 1),
                          "end_at": 100.0 * (i + 1) + 10, "outcome": outcome})
    get = lambda q: [r["leg_id"] for r in env.request("GET", "/v1/cdrs" + q).json["cdrs"]]
    assert get("") == ["L2", "L1", "L0"]
    assert get("?outcome=answered") == ["L2", "L0"]
    assert get("?since=150&until=300") == ["L1"]
    assert get("?since=1970-01-01T00:02:30Z") == ["L2", "L1"]
    assert get("?number=2025550141") == ["L1"]
    assert get("?limit=1&offset=1") == ["L1"]
    r = env.request("GET", "/v1/cdrs?format=csv")
    assert r.header("Content-Type").startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.body.decode())))
    assert [row["leg_id"] for row in rows] == ["L2", "L1", "L0"]
    r = env.request("GET", "/v1/cdrs", headers={"Accept": "text/csv"})
    assert r.body.startswith(b"leg_id,")


@pytest.mark.parametrize("query", ["?since=yesterday", "?until=nan", "?limit=0",
                                   "?limit=abc", "?outcome=great", "?number=%00",
                                   "?format=xml"])
def test_cdr_bad_filters(env, query):
    r = env.request("GET", "/v1/cdrs" + query)
    assert r.code == 400 and "error" in r.json


def test_lookup(env):
    r = env.request("GET", "/v1/lookup/+18005551212").json
    assert (r["valid"], r["e164"], r["type"], r["toll_free"], r["region"]) == (
        True, "+18005551212", "toll_free", True, "US")
    r = env.request("GET", "/v1/lookup/020%207946%200018?region=gb").json
    assert (r["e164"], r["region"], r["type"]) == ("+442079460018", "GB", "fixed_line")
    r = env.request("GET", "/v1/lookup/+1202555").json
    assert r["valid"] is False and r["e164"] is None
    assert env.request("GET", "/v1/lookup/hello").code == 400
    assert env.request("GET", "/v1/lookup/+18005551212?region=USA").code == 400
