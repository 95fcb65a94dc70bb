"""ivr/rtp/rtpengine_ng.py: requests and replies on fixed bytes, re-sends and the timeout on
a task.Clock."""
from __future__ import annotations

import pytest
from twisted.internet import task

from ivr.rtp.bencode import BencodeError
from ivr.rtp.rtpengine_ng import NgClient, NgError, NgTimeout, parse_reply, request_bytes

NG = ("127.0.0.1", 2223)


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[tuple[bytes, tuple]] = []

    def write(self, data, addr) -> None:
        self.written.append((data, addr))


def client(**kw):
    clock = task.Clock()
    c = NgClient(clock, NG, **kw)
    c._prefix = "c0ffee"  # fixed cookies for fixed bytes
    transport = FakeTransport()
    c.makeConnection(transport)
    return c, clock, transport


def results(d):
    out = []
    d.addBoth(out.append)
    return out


def test_request_and_reply_bytes():
    assert request_bytes("5323_1", "ping", {}) == b"5323_1 d7:command4:pinge"
    assert request_bytes("a_2", "delete", {"call-id": "x", "from-tag": "t"}) == (
        b"a_2 d7:call-id1:x7:command6:delete8:from-tag1:te")
    assert parse_reply(b"5323_1 d6:result4:ponge") == ("5323_1", {"result": "pong"})
    assert parse_reply(b"k d6:result2:ok3:sdp3:v=0e") == ("k", {"result": "ok", "sdp": "v=0"})
    assert parse_reply(b"k d3:tagd1:ai1eee") == ("k", {"tag": {"a": 1}})


@pytest.mark.parametrize("bad", [b"", b"nocookie", b" d6:result2:oke", b"k li1ee",
                                 b"k d6:result2:ok", b"k" * 70 + b" de"])
def test_bad_replies_raise_value_errors(bad):
    with pytest.raises(BencodeError):
        parse_reply(bad)


def test_ping_gets_pong():
    c, clock, transport = client()
    got = results(c.ping())
    assert transport.written == [(b"c0ffee_1 d7:command4:pinge", NG)]
    c.datagramReceived(b"c0ffee_1 d6:result4:ponge", NG)
    assert got == [{"result": "pong"}]
    clock.advance(10)  # no re-send, no timeout after the reply
    assert len(transport.written) == 1 and got == [{"result": "pong"}]


def test_offer_sends_the_ng_names():
    c, clock, transport = client()
    c.offer("call1", "tagA", b"v=0\r\n", flags=["trust-address"], replace=["origin"])
    assert transport.written[0][0] == (
        b"c0ffee_1 d7:call-id5:call17:command5:offer5:flagsl13:trust-addresse8:from-tag4:tagA"
        b"7:replacel6:origine3:sdp5:v=0\r\ne")


def test_resends_with_the_same_cookie_then_times_out():
    c, clock, transport = client(timeout=2.0, retransmit=(0.25, 0.5, 1.0))
    got = results(c.command("query", **{"call-id": "x"}))
    clock.advance(0.24)
    assert len(transport.written) == 1
    clock.advance(0.01)
    assert len(transport.written) == 2
    clock.advance(0.5)  # 0.75
    assert len(transport.written) == 3
    clock.advance(1.0)  # 1.75
    assert len(transport.written) == 4
    assert len({data for data, _ in transport.written}) == 1  # same cookie, same bytes
    assert got == []
    clock.advance(0.25)  # 2.0
    assert len(got) == 1 and got[0].check(NgTimeout)
    assert not clock.getDelayedCalls()
    c.datagramReceived(b"c0ffee_1 d6:result2:oke", NG)  # too late: dropped
    assert c.dropped == 1 and len(got) == 1


def test_a_reply_to_a_resend_ends_the_request():
    c, clock, transport = client()
    got = results(c.ping())
    clock.advance(0.3)
    c.datagramReceived(b"c0ffee_1 d6:result4:ponge", NG)
    c.datagramReceived(b"c0ffee_1 d6:result4:ponge", NG)  # the answer to the re-send
    assert got == [{"result": "pong"}] and c.dropped == 1
    assert not clock.getDelayedCalls()


def test_error_result_fails_with_the_reason():
    c, clock, transport = client()
    got = results(c.delete("nope"))
    c.datagramReceived(b"c0ffee_1 d12:error-reason15:Unknown call-id6:result5:errore", NG)
    assert got[0].check(NgError) and str(got[0].value) == "Unknown call-id"


def test_garbage_and_strangers_are_dropped():
    c, clock, transport = client()
    got = results(c.ping())
    c.datagramReceived(b"c0ffee_1 d6:result4:ponge", ("127.0.0.2", 2223))  # not rtpengine
    c.datagramReceived(b"\xff\x00garbage", NG)
    c.datagramReceived(b"c0ffee_9 d6:result4:ponge", NG)  # unknown cookie
    assert got == [] and c.dropped == 3
    c.datagramReceived(b"c0ffee_1 d6:result4:ponge", NG)
    assert got == [{"result": "pong"}]


def test_two_requests_are_told_apart_by_cookie():
    c, clock, transport = client()
    first, second = results(c.ping()), results(c.query("x"))
    c.datagramReceived(b"c0ffee_2 d6:result2:oke", NG)
    c.datagramReceived(b"c0ffee_1 d6:result4:ponge", NG)
    assert first == [{"result": "pong"}] and second == [{"result": "ok"}]


def test_close_fails_what_waits():
    c, clock, transport = client()
    got = results(c.ping())
    c.close()
    assert got[0].check(NgTimeout) and not clock.getDelayedCalls()
