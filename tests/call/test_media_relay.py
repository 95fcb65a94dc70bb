"""Bridged media handed to rtpengine (ivr/call/media_relay.py), on a task.Clock: a Bridge of
two legs with real MediaLegs and RtpSessions (in-memory ports), their re-INVITEs recorded,
and a fake rtpengine answering the real ng client's datagrams."""
from __future__ import annotations

import random
from types import SimpleNamespace

from twisted.internet import defer, task

from ivr.call.bridge import Bridge
from ivr.call.media_leg import MediaLeg
from ivr.call.media_relay import RtpengineRelay
from ivr.rtp.bencode import decode, encode
from ivr.rtp.clock import MediaClock
from ivr.rtp.rtpengine_ng import NgClient
from ivr.sdp import parse_sdp

from tests.rtp.fakes import FakePorts

NG = ("127.0.0.1", 2223)
RTPE = "127.0.0.9"


def phone_sdp(port: int, formats: str = "0 101", direction: str = "sendrecv") -> bytes:
    te = "a=rtpmap:101 telephone-event/8000\r\n" if "101" in formats.split() else ""
    return (f"v=0\r\no=- 7 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP {formats}\r\n{te}a={direction}\r\n").encode()


class FakeRtpengine:
    """Answers what the NgClient writes: offer/answer with its own port per tag, delete."""

    def __init__(self, client, answer=True) -> None:
        self.client, self.answer = client, answer
        self.commands: list[dict] = []
        self.calls: dict = {}
        self.next_port = 30000

    def write(self, data, addr) -> None:
        cookie, _, body = data.partition(b" ")
        request = {k.decode(): v for k, v in decode(body).items()}
        self.commands.append(request)
        if not self.answer:
            return
        command = request["command"].decode()
        reply = {"result": "ok"}
        if command in ("offer", "answer"):
            port, self.next_port = self.next_port, self.next_port + 2
            self.calls[request["call-id"]] = True
            reply["sdp"] = (f"v=0\r\no=- 1 1 IN IP4 {RTPE}\r\ns=-\r\nc=IN IP4 {RTPE}\r\n"
                            f"t=0 0\r\nm=audio {port} RTP/AVP 0 101\r\n"
                            "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")
        elif command == "delete":
            self.calls.pop(request["call-id"], None)
        self.client.datagramReceived(cookie + b" " + encode(reply), NG)

    def names(self) -> list[str]:
        return [c["command"].decode() for c in self.commands]


class FakeSession:
    def __init__(self) -> None:
        self.reinvites: list[tuple[bytes, object]] = []
        self.busy = False

    def reinvite(self, sdp, on_done=None, extra=None, fail_reason="no-response"):
        if self.busy:
            return False
        self.reinvites.append((sdp, on_done))
        return True


class Leg:
    """What Bridge and the relay use of a Call, around a real MediaLeg."""

    def __init__(self, ctx, name: str, port: int) -> None:
        self.ctx, self.call_id = ctx, name
        self.media = MediaLeg(ctx, lambda d, m: None, lambda: None)
        self.session = FakeSession()
        self.answered, self.ended, self.bridge = True, False, None
        self.events: list[str] = []
        self._ended = defer.Deferred()
        self.hung_up = None
        self.media.answer_invite(phone_sdp(port))
        self.phone_port = port

    @property
    def negotiated(self):
        return self.media.negotiated

    @property
    def rtp(self):
        return self.media.rtp

    def _ensure_rtp(self):
        return self.media.ensure_rtp()

    def want_inband(self, wanted):
        self.media.want_inband(wanted)

    def log_event(self, event, **fields):
        self.events.append(event)

    def when_ended(self):
        return self._ended

    def hangup(self, reason="normal"):
        self.hung_up = reason
        self.end(reason)

    def end(self, reason):
        if not self.ended:
            self.ended = True
            self.media.release(reason)
            self._ended.callback(reason)

    def add_digit_listener(self, cb):
        pass

    def remove_digit_listener(self, cb):
        pass

    def accept_reinvite(self, status: int = 200):
        """The phone answers our last re-INVITE (its own address, as the session would)."""
        sdp, on_done = self.session.reinvites[-1]
        if status == 200:
            self.media.answered(phone_sdp(self.phone_port))
        if on_done is not None:
            on_done(SimpleNamespace(status=status))


def setup(answer=True, timeout=1.0):
    clock = task.Clock()
    mclock = MediaClock(clock)
    ports = iter(range(40000, 41000, 2))

    class Ports:
        def allocate(self, *args, **kwargs):
            self.last = FakePorts(next(ports))
            return self.last.allocate(*args, **kwargs)

        def release(self, pair):
            pass

    ctx = SimpleNamespace(reactor=clock, media_clock=mclock, bind_host="127.0.0.1",
                          ports=Ports(), media_timeout=5.0, advertise="127.0.0.1", inband=None,
                          media_encryption="optional", allow_insecure_srtp_keys=False)
    client = NgClient(clock, NG, timeout=timeout)
    engine = FakeRtpengine(client, answer)
    client.makeConnection(engine)
    relay = RtpengineRelay(client)
    ctx.media_relay = relay
    a, b = Leg(ctx, "a", 50000), Leg(ctx, "b", 50100)
    return clock, engine, relay, a, b


def audio_at(offer: bytes):
    sd = parse_sdp(offer)
    return sd.media[0].remote_address(sd), sd.media[0].port, sd.origin


def test_offer_answer_then_both_legs_are_reinvited_to_rtpengine():
    clock, engine, relay, a, b = setup()
    a_origin, b_origin = a.media.local_sdp.origin, b.media.local_sdp.origin
    bridge = Bridge(a, b)
    bridge.start()
    assert engine.names() == ["offer", "answer"]
    offer, answer = engine.commands
    assert offer["from-tag"] == b"a" and answer["to-tag"] == b"b"
    assert offer["call-id"] == answer["call-id"]
    assert offer["replace"] == [b"origin", b"session-connection"] and offer["ICE"] == b"remove"
    assert b"m=audio 50000 RTP/AVP 0 101" in offer["sdp"]  # leg a's phone
    assert b"m=audio 50100 RTP/AVP 0 101" in answer["sdp"]  # leg b's phone
    # b gets rtpengine's port of the offer, a the answer's; our origin, the next version
    ip, port, origin = audio_at(b.session.reinvites[0][0])
    assert (ip, port) == (RTPE, 30000) and origin == b_origin.__class__(
        b_origin.username, b_origin.sess_id, b_origin.sess_version + 1, "IN", "IP4", "127.0.0.1")
    ip, port, origin = audio_at(a.session.reinvites[0][0])
    assert (ip, port) == (RTPE, 30002) and origin.sess_version == a_origin.sess_version + 1
    # the server's sessions are idle and the in-process relay is off
    assert a.rtp.direction == b.rtp.direction == "inactive"
    assert not a.rtp.forwarding and not b.rtp.forwarding
    a.accept_reinvite()
    b.accept_reinvite()
    assert a.rtp.direction == "inactive"  # the phone's answer is not applied to our session
    assert "media_relay" in a.events and "media_relay" in b.events and relay.anchored == 1
    # the bridge ends: rtpengine's session is deleted, the other leg hung up as before
    a.end("normal")
    assert engine.names() == ["offer", "answer", "delete"]
    assert engine.commands[2]["call-id"] == offer["call-id"] and engine.calls == {}
    assert b.hung_up == "bridge-peer-hangup" and len(a.session.reinvites) == 1


def test_no_answer_keeps_the_in_process_relay():
    clock, engine, relay, a, b = setup(answer=False, timeout=1.0)
    bridge = Bridge(a, b)
    bridge.start()
    assert a.rtp.forwarding and b.rtp.forwarding  # relaying in-process meanwhile
    clock.advance(1.0)
    assert engine.names() == ["offer"] * 3  # the first try and two re-sends, one cookie
    assert relay.fallbacks == 1 and bridge.anchor is None
    assert a.session.reinvites == [] and b.session.reinvites == []
    assert a.rtp.forwarding and b.rtp.forwarding and a.rtp.direction == "sendrecv"
    assert not bridge.finished and a.hung_up is None and b.hung_up is None


def test_a_refused_reinvite_brings_both_legs_back():
    clock, engine, relay, a, b = setup()
    bridge = Bridge(a, b)
    bridge.start()
    a.accept_reinvite()
    b.accept_reinvite(status=488)
    assert engine.names() == ["offer", "answer", "delete"]
    assert b.rtp.direction == "sendrecv" and len(b.session.reinvites) == 1  # as before
    # a had moved: it gets our own port again
    assert len(a.session.reinvites) == 2
    ip, port, _ = audio_at(a.session.reinvites[1][0])
    assert (ip, port) == ("127.0.0.1", a.rtp.local_port)
    a.accept_reinvite()
    assert a.rtp.direction == "sendrecv"
    assert a.rtp.forwarding and b.rtp.forwarding and not bridge.finished


def test_transfer_deletes_and_brings_the_staying_leg_back():
    clock, engine, relay, a, b = setup()
    bridge = Bridge(a, b)
    bridge.start()
    a.accept_reinvite()
    b.accept_reinvite()
    c = Leg(a.ctx, "c", 50200)
    bridge.replace(a, c)
    assert engine.names() == ["offer", "answer", "delete"]
    assert len(b.session.reinvites) == 2 and len(a.session.reinvites) == 1
    ip, port, _ = audio_at(b.session.reinvites[1][0])
    assert (ip, port) == ("127.0.0.1", b.rtp.local_port)
    engine.answer = False  # the new pair's anchoring (next test) is not answered yet
    b.accept_reinvite()
    assert b.rtp.direction == "sendrecv" and b.rtp.forwarding and c.rtp.forwarding
    assert "media_relay_ended" in b.events


def test_after_a_transfer_the_new_pair_is_anchored_again():
    clock, engine, relay, a, b = setup()
    bridge = Bridge(a, b)
    bridge.start()
    a.accept_reinvite()
    b.accept_reinvite()
    first = engine.commands[0]["call-id"]
    c = Leg(a.ctx, "c", 50200)
    bridge.replace(a, c)
    assert engine.names() == ["offer", "answer", "delete"]  # nothing new before b is back
    assert c.session.reinvites == []
    b.accept_reinvite()  # b has our media again: the pair b <-> c goes to rtpengine
    assert engine.names() == ["offer", "answer", "delete", "offer", "answer"]
    offer, answer = engine.commands[3:]
    assert offer["call-id"] == answer["call-id"] != first
    assert b"m=audio 50200 RTP/AVP 0 101" in offer["sdp"]  # c's phone: c took a's place
    assert b"m=audio 50100 RTP/AVP 0 101" in answer["sdp"]  # b's phone
    assert len(b.session.reinvites) == 3 and len(c.session.reinvites) == 1
    assert audio_at(b.session.reinvites[2][0])[0] == RTPE == audio_at(c.session.reinvites[0][0])[0]
    assert b.rtp.direction == c.rtp.direction == "inactive" and not c.rtp.forwarding
    b.accept_reinvite()
    c.accept_reinvite()
    assert relay.anchored == 2 and bridge.anchor.state.value == "anchored"
    assert len(a.session.reinvites) == 1  # the transferred leg is left alone
    c.end("normal")
    assert engine.names()[-1] == "delete" and engine.calls == {}


def test_after_a_transfer_a_refused_return_or_an_ended_bridge_is_not_anchored_again():
    clock, engine, relay, a, b = setup()
    bridge = Bridge(a, b)
    bridge.start()
    a.accept_reinvite()
    b.accept_reinvite()
    bridge.replace(a, Leg(a.ctx, "c", 50200))
    b.accept_reinvite(status=488)  # b refused coming back
    assert engine.names() == ["offer", "answer", "delete"]
    clock, engine, relay, a, b = setup()
    bridge = Bridge(a, b)
    bridge.start()
    a.accept_reinvite()
    b.accept_reinvite()
    c = Leg(a.ctx, "c", 50200)
    bridge.replace(a, c)
    c.end("normal")  # the bridge ends before b's answer
    b.accept_reinvite()
    assert engine.names() == ["offer", "answer", "delete"]


def test_a_leg_reinviting_us_brings_the_bridge_back():
    clock, engine, relay, a, b = setup()
    bridge = Bridge(a, b)
    bridge.start()
    a.accept_reinvite()
    b.accept_reinvite()
    answer = a.media.reoffered(phone_sdp(50004))  # a moved (a new address)
    ip, port, _ = audio_at(answer)
    assert (ip, port) == ("127.0.0.1", a.rtp.local_port)
    assert a.rtp.remote_address == ("127.0.0.1", 50004) and a.rtp.direction == "sendrecv"
    assert engine.names()[-1] == "delete" and len(b.session.reinvites) == 2
    b.accept_reinvite()
    assert a.rtp.forwarding and b.rtp.forwarding


def test_legs_that_need_the_server_stay_in_process():
    clock, engine, relay, a, b = setup()
    b.media.reoffered(phone_sdp(50100, formats="8 101"))  # PCMA on one leg: transcoding
    Bridge(a, b).start()
    assert engine.commands == []
    clock, engine, relay, a, b = setup()
    b.media.reoffered(phone_sdp(50100, formats="0"))  # no telephone-event: in-band DTMF
    Bridge(a, b).start()
    assert engine.commands == []
    clock, engine, relay, a, b = setup()
    a.rtp.add_audio_listener(lambda frame: None)  # recording
    Bridge(a, b).start()
    assert engine.commands == []


def test_the_bridge_ending_while_rtpengine_is_asked():
    clock, engine, relay, a, b = setup(answer=False)
    bridge = Bridge(a, b)
    bridge.start()
    a.end("normal")
    engine.answer = True
    # rtpengine's answer to the (re-sent) offer comes after the bridge ended
    cookie = relay.ng._prefix + "_1"
    relay.ng.datagramReceived(cookie.encode() + b" " + encode(
        {"result": "ok", "sdp": f"v=0\r\no=- 1 1 IN IP4 {RTPE}\r\ns=-\r\nc=IN IP4 {RTPE}\r\n"
                               "t=0 0\r\nm=audio 30000 RTP/AVP 0\r\n"}), NG)
    assert engine.names() == ["offer", "delete"]
    assert a.session.reinvites == [] and b.session.reinvites == []
