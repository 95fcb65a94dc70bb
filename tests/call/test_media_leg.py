"""The media leg of a call (ivr/call/media_leg.py): SDP offer/answer, in-band DTMF,
playback with barge-in, the media timeout and the release, on a fake clock with in-memory
ports (no network)."""
from __future__ import annotations

import numpy as np
import pytest
from twisted.internet import task

from ivr.call.call import MediaContext
from ivr.call.digits import DigitBuffer
from ivr.call.interface import CallEnded, PlaybackResult
from ivr.call.media_leg import MediaLeg
from ivr.rtp.clock import MediaClock
from ivr.rtp.ports import PortsExhausted
from ivr.sdp import SdpError, parse_sdp

from ..rtp.fakes import FakePorts

PEER = "192.0.2.7"
SECOND = np.zeros(8000, dtype=np.int16)


def sdp(formats: str = "8 101", port: int = 30000, direction: str = "sendrecv",
        version: int = 1, ip: str = PEER) -> bytes:
    lines = [f"v=0", f"o=- 7 {version} IN IP4 {ip}", "s=-", f"c=IN IP4 {ip}", "t=0 0",
             f"m=audio {port} RTP/AVP {formats}"]
    if "101" in formats.split():
        lines.append("a=rtpmap:101 telephone-event/8000")
    lines.append(f"a={direction}")
    return ("\r\n".join(lines) + "\r\n").encode()


class NoPorts:
    def allocate(self, *args, **kwargs):
        raise PortsExhausted("every port pair is in use")


class FakeInband:
    """The in-band detector service: remembers open channels and lets a test press keys."""

    def __init__(self):
        self.open_channels = []

    def open(self, on_digit):
        channel = Channel(self, on_digit)
        self.open_channels.append(channel)
        return channel


class Channel:
    def __init__(self, service, on_digit):
        self.service, self.on_digit = service, on_digit

    def __call__(self, frame):
        pass

    def close(self):
        self.service.open_channels.remove(self)


class Leg:
    """A MediaLeg with what it reports: digits (by mode) and media timeouts."""

    def __init__(self, ports=None, media_timeout: float = 0.0):
        self.clock = task.Clock()
        self.ports = ports or FakePorts(40000)
        self.inband = FakeInband()
        ctx = MediaContext(reactor=self.clock, media_clock=MediaClock(self.clock),
                           ports=self.ports, advertise="203.0.113.1", bind_host="127.0.0.1",
                           inband=self.inband, media_timeout=media_timeout)
        self.digits = DigitBuffer(self.clock)
        self.timeouts = 0
        self.media = MediaLeg(ctx, self.digits.push, self._timeout)

    def _timeout(self):
        self.timeouts += 1


def outcome(d):
    out = []
    d.addBoth(out.append)
    return out


def test_an_offer_is_answered_from_our_port_in_its_codec():
    leg = Leg()
    answer = parse_sdp(leg.media.answer_invite(sdp("8 0 101")))
    m = answer.media[0]
    assert (answer.connection.address, m.port) == ("203.0.113.1", 40000)
    assert m.formats[0] == "8"  # the offerer's first choice, PCMA
    n = leg.media.negotiated
    assert (n.remote_ip, n.remote_port, n.codec, n.telephone_event_pt) == (PEER, 30000, "PCMA", 101)
    assert leg.media.rtp.remote_address == (PEER, 30000)


def test_the_183_and_the_200_carry_the_same_answer():
    leg = Leg()
    first = leg.media.answer_invite(sdp())
    assert leg.media.answer_invite(sdp(port=31000)) == first
    assert leg.media.negotiated.remote_port == 30000


def test_a_malformed_offer_is_400_before_a_port_is_taken():
    leg = Leg()
    with pytest.raises(SdpError) as err:
        leg.media.answer_invite(b"v=0\r\nthis is not SDP\r\n")
    assert err.value.status == 400
    assert leg.media.rtp is None and not hasattr(leg.ports, "pair")


def test_no_common_codec_is_488_even_when_no_port_is_free():
    leg = Leg(ports=NoPorts())
    with pytest.raises(SdpError) as err:
        leg.media.answer_invite(sdp("18"))
    assert err.value.status == 488
    with pytest.raises(PortsExhausted):  # a usable offer without a free port
        leg.media.answer_invite(sdp())


def test_a_late_offer_is_ours_and_the_answer_applies_it():
    leg = Leg()
    ours = parse_sdp(leg.media.answer_invite(None))
    assert ours.media[0].port == 40000 and leg.media.negotiated is None
    leg.media.answered(sdp("0 101", port=32000))
    assert (leg.media.negotiated.codec, leg.media.negotiated.remote_port) == ("PCMU", 32000)


def test_a_bad_answer_leaves_the_media_as_it_was():
    leg = Leg()
    leg.media.answer_invite(None)
    with pytest.raises(SdpError):
        leg.media.answered(sdp("18"))
    assert leg.media.negotiated is None


def test_a_reinvite_holds_and_our_answer_has_a_new_version():
    leg = Leg()
    first = parse_sdp(leg.media.answer_invite(sdp()))
    answer = parse_sdp(leg.media.reoffered(sdp(direction="sendonly", version=2)))
    assert leg.media.negotiated.on_hold
    assert answer.media[0].direction(answer).value == "recvonly"
    assert answer.origin.sess_version == first.origin.sess_version + 1
    assert leg.media.rtp.direction == "recvonly"


def test_a_reinvite_we_cannot_answer_changes_nothing():
    leg = Leg()
    leg.media.answer_invite(sdp())
    before = leg.media.negotiated
    with pytest.raises(SdpError):
        leg.media.reoffered(sdp("18", version=2))
    assert leg.media.negotiated is before


def test_a_reinvite_without_sdp_gets_our_offer_and_waits_for_the_answer():
    leg = Leg()
    first = parse_sdp(leg.media.answer_invite(sdp()))
    offer = parse_sdp(leg.media.reoffered(None))
    assert offer.origin.sess_version == first.origin.sess_version + 1
    assert leg.media.negotiated is None
    leg.media.answered(sdp(port=33000, version=2))
    assert leg.media.negotiated.remote_port == 33000


def test_inband_detection_runs_exactly_while_there_is_no_telephone_event():
    leg = Leg()
    leg.media.answer_invite(sdp("0"))  # no telephone-event
    (channel,) = leg.inband.open_channels
    channel.on_digit("5")
    assert leg.digits.by_mode["inband"] == 1 and leg.digits.first() == "5"
    leg.media.reoffered(sdp("0 101", version=2))  # now it sends RFC 4733: stop listening
    assert leg.inband.open_channels == []
    leg.media.reoffered(sdp("0", version=3))
    assert len(leg.inband.open_channels) == 1
    leg.media.release("normal")
    assert leg.inband.open_channels == []


def test_a_buffered_digit_barges_in_before_playback_starts():
    leg = Leg()
    leg.media.answer_invite(sdp())
    leg.digits.push("3", "info")
    assert outcome(leg.media.play(SECOND, leg.digits)) == [PlaybackResult(False, "3")]
    assert not leg.media.rtp.playing
    assert leg.digits.first() == "3"  # still there for the gather that follows


def test_a_digit_during_playback_stops_it():
    leg = Leg()
    leg.media.answer_invite(sdp())
    got = outcome(leg.media.play(SECOND, leg.digits))
    leg.clock.advance(0.2)
    assert got == []
    leg.digits.push("9", "rfc4733")
    assert got == [PlaybackResult(False, "9")]
    assert leg.digits.barge_in is None


def test_without_barge_in_a_digit_does_not_stop_playback():
    leg = Leg()
    leg.media.answer_invite(sdp())
    got = outcome(leg.media.play(np.zeros(1600, dtype=np.int16)))
    leg.digits.push("9", "rfc4733")
    assert got == []
    leg.clock.pump([0.005] * 60)
    assert got == [PlaybackResult(True)]


def test_a_playback_that_replaces_another_keeps_its_barge_in():
    leg = Leg()
    leg.media.answer_invite(sdp())
    first = outcome(leg.media.play(SECOND, leg.digits))
    second = outcome(leg.media.play(SECOND, leg.digits))
    assert first == [PlaybackResult(False)]  # replaced
    leg.digits.push("1", "info")
    assert second == [PlaybackResult(False, "1")]


def test_release_ends_playback_with_call_ended_and_frees_the_ports():
    leg = Leg()
    leg.media.answer_invite(sdp())
    got = outcome(leg.media.play(SECOND, leg.digits))
    leg.media.release("remote-bye")
    assert got[0].check(CallEnded) and str(got[0].value) == "remote-bye"
    assert leg.ports.released == [40000]
    assert leg.media.stats["local_port"] == 40000
    assert leg.digits.barge_in is None


def test_no_rtp_for_the_media_timeout_is_reported_once():
    leg = Leg(media_timeout=2.0)
    leg.media.answer_invite(sdp())
    leg.clock.pump([0.01] * 199)
    assert leg.timeouts == 0
    leg.clock.pump([0.01] * 11)  # checked every 100 ms
    assert leg.timeouts == 1
    leg.clock.pump([0.01] * 300)
    assert leg.timeouts == 1
