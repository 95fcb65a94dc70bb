"""The HTTP API of one node sees the farm (#18 item 5, PostgreSQL mode; here on SQLite with
a second node's rows written beside ours): ``GET /v1/click-to-call`` lists every node's
sessions, ``GET /v1/calls/{id}`` finds another node's call."""
from __future__ import annotations

from ivr.api.farm_calls import FarmCalls
from ivr.store.node_calls import NodeCalls
from ivr.store.sessions import SessionStore

from .harness import Env


def farm(tmp_path):
    env = Env(tmp_path)
    env.api.sessions.share(SessionStore(env.db, "a"))
    env.api.farm_calls = FarmCalls(env.api, NodeCalls(env.db, "a"))
    return env


def test_the_session_list_shows_every_nodes_sessions(tmp_path):
    env = farm(tmp_path)
    now = env.clock.seconds()
    body = {"id": "c2c_b1", "state": "ringing_agent", "agent": "+12125550100",
            "customer": "+12125550101", "created_at": now - 5}
    SessionStore(env.db, "b").save("c2c_b1", "ringing_agent", False, body, now - 5, now)
    r = env.request("POST", "/v1/click-to-call", {"agent": "+12125550199",
                                                 "customer": "+12125551234"})
    assert r.code == 201, r.body
    mine = r.json["id"]
    env.advance(0.5)
    listed = env.request("GET", "/v1/click-to-call")
    assert listed.code == 200
    by_id = {s["id"]: s for s in listed.json["sessions"]}
    assert set(by_id) == {mine, "c2c_b1"}
    assert by_id["c2c_b1"]["node"] == "b" and by_id["c2c_b1"]["state"] == "ringing_agent"
    assert by_id[mine]["node"] == "a" and "events" in by_id[mine]


def test_the_session_list_is_this_nodes_own_when_the_database_fails(tmp_path):
    env = farm(tmp_path)
    env.request("POST", "/v1/click-to-call", {"agent": "+12125550199",
                                              "customer": "+12125551234"})
    env.api.sessions.shared.db.close()
    listed = env.request("GET", "/v1/click-to-call")
    assert listed.code == 200 and len(listed.json["sessions"]) == 1


def test_another_nodes_call_is_found_by_id(tmp_path):
    env = farm(tmp_path)
    now = env.clock.seconds()
    NodeCalls(env.db, "b").publish([{"id": "leg-b-7", "state": "answered", "to": "2001"}], now)
    r = env.request("GET", "/v1/calls/leg-b-7")
    assert r.code == 200, r.body
    assert r.json == {"id": "leg-b-7", "state": "answered", "to": "2001", "node": "b"}
    missing = env.request("GET", "/v1/calls/leg-nope")
    assert missing.code == 404 and missing.error_code() == "not_found"
    env.advance(30)                 # b stopped publishing: its calls are no longer listed
    assert env.request("GET", "/v1/calls/leg-b-7").code == 404


def test_a_new_session_is_answered_once_every_node_can_read_it(tmp_path):
    """201 only after the session's first write is committed: a client whose next request
    lands on another node (a load balancer) must find it there, not get 404."""
    import json

    from twisted.internet.defer import Deferred

    from .harness import DEV_KEY

    env = farm(tmp_path)
    store = env.api.sessions.shared
    held: list[Deferred] = []
    record = store.record

    def slow_record(*args, **kwargs):  # the database's commit, held until released
        gate = Deferred()
        held.append(gate)
        return gate.addCallback(lambda _: record(*args, **kwargs))
    store.record = slow_record
    body = json.dumps({"agent": "+12125550199", "customer": "+12125551234"}).encode()
    d = env.http.request("POST", "http://ivr.test/v1/click-to-call", data=body,
                         headers={"X-API-Key": [DEV_KEY],
                                  "Content-Type": ["application/json"]})
    env.http.flush()
    answers = []
    d.addBoth(answers.append)
    assert held and answers == [], "answered before the session was written"
    while held:
        held.pop(0).callback(None)
        env.http.flush()
    assert len(answers) == 1 and answers[0].code == 201
    content = []
    answers[0].content().addBoth(content.append)
    env.http.flush()
    sid = json.loads(content[0])["id"]
    row = []
    SessionStore(env.db, "b").get(sid).addBoth(row.append)
    assert row[0] is not None and row[0]["node"] == "a"
