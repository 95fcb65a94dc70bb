"""In-band DTMF detection while bridged (ivr/call/bridge.py, MediaLeg.want_inband): a leg's
detector runs during a bridge only if its digits can be re-sent to the other leg as RFC 4733
events; it comes back when the bridge lets go.  Real MediaLegs and RtpSessions on in-memory
ports and a task.Clock; the detector service is a fake that counts open channels."""
from __future__ import annotations

from types import SimpleNamespace

from twisted.internet import defer, task

from ivr.call.bridge import Bridge
from ivr.call.media_leg import MediaLeg
from ivr.rtp.clock import MediaClock

from .test_media_leg import FakeInband, Leg as MediaOnly
from .test_media_relay import FakeSession, Leg as RelayLeg, phone_sdp
from tests.rtp.fakes import FakePorts


def context(inband):
    clock = task.Clock()
    ports = iter(range(40000, 41000, 2))

    class Ports:
        def allocate(self, *args, **kwargs):
            return FakePorts(next(ports)).allocate(*args, **kwargs)

        def release(self, pair):
            pass

    return SimpleNamespace(reactor=clock, media_clock=MediaClock(clock), bind_host="127.0.0.1",
                           ports=Ports(), media_timeout=5.0, advertise="127.0.0.1",
                           inband=inband, media_relay=None, media_encryption="optional",
                           allow_insecure_srtp_keys=False)


class Leg(RelayLeg):
    """A bridgeable leg whose phone offered ``formats`` (``"0"``: no telephone-event)."""

    def __init__(self, ctx, name, port, formats):
        self.ctx, self.call_id = ctx, name
        self.digits = []
        self.media = MediaLeg(ctx, lambda d, m: self.digits.append((d, m)), lambda: None)
        self.session = FakeSession()
        self.answered, self.ended, self.bridge = True, False, None
        self.events = []
        self._ended = defer.Deferred()
        self.hung_up = None
        self.media.answer_invite(phone_sdp(port, formats))
        self.phone_port = port


def channels_of(inband, leg):
    return [c for c in inband.open_channels if c is leg.media._inband]


def test_two_legs_without_telephone_event_detect_nothing_while_bridged_and_again_after():
    inband = FakeInband()
    ctx = context(inband)
    a, b = Leg(ctx, "a", 50000, "0"), Leg(ctx, "b", 50100, "0")
    assert len(inband.open_channels) == 2  # each detects its phone's tones before the bridge
    bridge = Bridge(a, b)
    bridge.start()
    assert inband.open_channels == []  # nothing would use the digits: the tones cross as audio
    a.hangup("normal")  # the bridge ends: b is hung up too, and nothing is left open
    assert bridge.finished and b.ended
    assert inband.open_channels == []


def test_the_detector_comes_back_when_the_bridge_lets_go_of_a_leg():
    inband = FakeInband()
    ctx = context(inband)
    a, b, c = (Leg(ctx, "a", 50000, "0"), Leg(ctx, "b", 50100, "0"),
               Leg(ctx, "c", 50200, "0 101"))
    bridge = Bridge(a, b)
    bridge.start()
    assert inband.open_channels == []
    bridge.replace(b, c)  # a blind transfer: b leaves the bridge and listens again
    assert channels_of(inband, b) and not b.ended
    # a's digits can now be re-sent to c as RFC 4733: a's detector runs during the bridge
    assert channels_of(inband, a)
    a.media._inband.on_digit("7")
    assert ("7", "inband") in a.digits


def test_a_leg_without_telephone_event_keeps_detecting_when_the_other_takes_events():
    inband = FakeInband()
    ctx = context(inband)
    a, b = Leg(ctx, "a", 50000, "0"), Leg(ctx, "b", 50100, "0 101")
    assert len(inband.open_channels) == 1  # only a: b sends RFC 4733
    Bridge(a, b).start()
    assert channels_of(inband, a), "a's digits are re-sent to b: its detector must run"


def test_want_inband_never_reopens_a_released_leg():
    leg = MediaOnly()
    leg.media.answer_invite(b"v=0\r\no=- 7 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\n"
                            b"t=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=sendrecv\r\n")
    assert len(leg.inband.open_channels) == 1
    leg.media.want_inband(False)
    assert leg.inband.open_channels == []
    leg.media.want_inband(True)
    assert len(leg.inband.open_channels) == 1
    leg.media.release("normal")
    leg.media.want_inband(True)  # a bridge letting go of a leg that has ended meanwhile
    assert leg.inband.open_channels == []
