"""Back-to-back bridge of two answered legs, media relayed through the server.

Each side's received audio payloads are queued, undecoded, for the other side's next
media-clock tick: when both legs use the same codec the bytes are relayed as they came
(no decode + encode per packet); when they differ (PCMU on one leg, PCMA on the other)
the sending leg decodes and re-encodes (``RtpSession.tick`` with an ``EncodedFrame``).
Audio listeners that need samples (recording, in-band DTMF) still get decoded frames.  The queue is a small jitter
buffer: it holds at most ``MAX_FRAMES``, and a read drops the oldest frames beyond
``TARGET_FRAMES`` so latency stays low (a late media tick sends one frame while two
arrived; without the drop each late tick would add 20 ms for the rest of the call), and
plays silence when empty.  A leg that sends packets longer than 20 ms (30, 40, 60 ms) is
received as 20 ms frames (``RtpSession`` re-frames every packet), several at once; each frame
says how many its packet brought (``EncodedFrame.burst``) and the queue keeps that many more,
less one, so a long packet is relayed whole.  The other leg packs the frames into the packet
time its own peer asked for: same codec and same packet time relay the payload bytes exactly.  Digits from one side are re-sent to the other as
RFC 4733 events when that side negotiated telephone-event; when it did not, the first side's
in-band detector is paused for the bridge (``MediaLeg.want_inband``: its tones reach the
other side in the audio, and nothing in a bridge consumes its digits), so a bridge between
two phones without telephone-event does no DTMF detection.  A re-INVITE that adds
telephone-event during the bridge does not restart it (the bridge is hooked again only on a
transfer or when media comes back from rtpengine).  When either leg ends, the
other is hung up and the bridge's Deferred fires with the reason.  A blind transfer
replaces one leg with another (:meth:`Bridge.replace`); the bridge and its Deferred live on.

Relay on arrival: the queue above is the slow path.  Each side also forwards its received
packets straight to the other side's socket (``RtpSession.forward_to``, see
``ivr/rtp/fastpath.py``) whenever they can go as they are (same codec, same packet time, the
other side sending and playing this bridge's source, no RFC 4733 event on its way out), in
the reactor turn they arrive, with the outgoing leg's SSRC, sequence and a continuous
timestamp.  Only what cannot be forwarded goes through the queue and the tick.  Unhooking
(the bridge ends, a transfer) switches forwarding off and the tick takes over seamlessly.

Media through rtpengine: with a ``relay`` (``media_relay: {engine: rtpengine}``,
:mod:`ivr.call.media_relay`) the bridge starts in-process as above and asks the relay to
anchor both legs at rtpengine; once it re-INVITEs them it calls :meth:`Bridge.media_elsewhere`
(unhook) and, if that is undone before the bridge ends, :meth:`Bridge.media_back`.  The
bridge's end and a transfer release the relay's session (:meth:`RtpengineRelay.release`).
"""
from __future__ import annotations

from collections import deque

import numpy as np
from twisted.internet import defer
from twisted.logger import Logger

log = Logger(namespace="ivr.call.bridge")

MAX_FRAMES = 6  # 120 ms
TARGET_FRAMES = 2  # at a read, at most this many are waiting (40 ms); older ones are dropped
_SILENCE = np.zeros(160, dtype=np.int16)
_SILENCE.setflags(write=False)


def _takes_events(leg) -> bool:
    """Whether ``leg`` negotiated telephone-event (digits can be re-sent to it)."""
    negotiated = leg.negotiated
    return negotiated is not None and negotiated.telephone_event_pt is not None


class RelaySource:
    """A never-ending playback source fed by the other leg's audio listener."""

    def __init__(self) -> None:
        self.frames: deque = deque()
        self.relayed = 0
        self.underruns = 0
        self.dropped = 0
        self.burst = 1  # frames the latest packet brought at once (EncodedFrame.burst)

    def push(self, frame) -> None:
        """A decoded frame (int16 ndarray) or an undecoded ``EncodedFrame``."""
        burst = getattr(frame, "burst", 1)
        self.burst = burst if burst > 1 else 1
        frames = self.frames
        if len(frames) >= MAX_FRAMES + self.burst - 1:
            frames.popleft()  # a flood cannot grow the queue
        frames.append(frame)

    def read_frame(self):
        frames = self.frames
        target = TARGET_FRAMES + self.burst - 1
        while len(frames) > target:
            frames.popleft()
            self.dropped += 1
        if frames:
            self.relayed += 1
            return self.frames.popleft()
        self.underruns += 1
        return _SILENCE


class Bridge:
    def __init__(self, a, b, relay=None) -> None:
        self.a, self.b = a, b
        # rtpengine (ivr.call.media_relay), when the server is configured with one
        self.relay = relay if relay is not None else getattr(
            getattr(a, "ctx", None), "media_relay", None)
        self.anchor = None  # the relay's session for this bridge, while it has one
        # Cancelling the bridge (its verb was cancelled) hangs both legs up.
        self.done = defer.Deferred(canceller=lambda d: self._finish(None, "bridge-cancelled"))
        self.finished = False
        self._hooks: list = []
        self.ended_by: str | None = None

    def other(self, leg):
        return self.b if leg is self.a else self.a

    def start(self) -> defer.Deferred:
        self._hook()
        for leg in (self.a, self.b):
            leg.when_ended().addCallback(self._leg_ended, leg)
        log.info("bridged {a} <-> {b}", a=self.a.call_id, b=self.b.call_id)
        if self.relay is not None and not self.finished:
            self.relay.anchor(self)
        return self.done

    def replace(self, old, new) -> None:
        """Swap ``old`` for ``new`` (a blind transfer); ``old`` is left alone, not hung up."""
        self._unhook()
        if self.relay is not None:  # the leg that stays comes back to our media
            self.relay.release(self, keep=(self.other(old),))
        old.bridge = None
        if old is self.a:
            self.a = new
        else:
            self.b = new
        self._hook()
        new.when_ended().addCallback(self._leg_ended, new)
        log.info("bridge: {old} replaced by {new}", old=old.call_id, new=new.call_id)

    def _hook(self) -> None:
        for leg, other in ((self.a, self.b), (self.b, self.a)):
            leg.bridge = self
            source = RelaySource()
            rtp = leg._ensure_rtp()
            rtp.stop_playback("bridged")
            rtp.play(source).addErrback(lambda f: None)
            other_rtp = other._ensure_rtp()
            other_rtp.add_payload_listener(source.push)
            other_rtp.forward_to(rtp, source, source.push)
            digit_cb = self._digit_forwarder(leg)
            other.add_digit_listener(digit_cb)
            # other's in-band digits matter only if they can be re-sent to leg as RFC 4733
            other.want_inband(_takes_events(leg))
            self._hooks.append((other, other_rtp, source.push, digit_cb))

    def media_elsewhere(self) -> None:
        """The relay moves the legs' media to rtpengine: stop relaying in-process."""
        self._unhook()

    def media_back(self) -> None:
        """The legs' media is the server's again: relay in-process."""
        if not self.finished and not self._hooks:
            self._hook()

    def _unhook(self) -> None:
        for other, rtp, push, digit_cb in self._hooks:
            rtp.stop_forwarding()
            rtp.remove_payload_listener(push)
            other.remove_digit_listener(digit_cb)
            if not other.ended:
                other.want_inband(True)
        self._hooks = []

    def _digit_forwarder(self, leg):
        def forward(digit: str) -> None:
            if _takes_events(leg) and leg.rtp:
                leg.rtp.send_dtmf(digit).addErrback(lambda f: None)
        return forward

    def _leg_ended(self, reason, leg) -> None:
        if leg not in (self.a, self.b):
            return  # a leg that was transferred away
        self._finish(leg, reason)

    def _finish(self, leg, reason) -> None:
        """End the bridge: ``leg`` hung up (or None: cancelled); hang up whoever is left."""
        if self.finished:
            return
        self.finished = True
        self.ended_by = leg.call_id if leg is not None else None
        self._unhook()
        if self.relay is not None:
            self.relay.release(self)
        for each in (self.a, self.b):
            each.bridge = None
            if each is not leg and not each.ended:
                each.hangup("bridge-peer-hangup")
        if not self.done.called:
            self.done.callback(reason)
