"""RtpSession.has_audio_listeners: whether anyone reads the decoded audio (what
ivr.call.media_relay checks before handing a bridge to rtpengine)."""
from __future__ import annotations

import random

from twisted.internet import task

from ivr.rtp.clock import MediaClock
from ivr.rtp.session import RtpSession

from .fakes import FakePorts


def test_has_audio_listeners_follows_add_and_remove_but_not_payload_listeners():
    clock = task.Clock()
    session = RtpSession(clock, MediaClock(clock), ports=FakePorts(40000), rng=random.Random(1))
    assert session.has_audio_listeners is False
    session.add_payload_listener(lambda frame: None)  # the relay's raw payloads do not count
    assert session.has_audio_listeners is False
    first, second = (lambda frame: None), (lambda frame: None)
    session.add_audio_listener(first)
    session.add_audio_listener(second)
    assert session.has_audio_listeners is True
    session.remove_audio_listener(first)
    assert session.has_audio_listeners is True
    session.remove_audio_listener(second)
    session.remove_audio_listener(second)  # twice: harmless
    assert session.has_audio_listeners is False
