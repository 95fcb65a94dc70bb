"""Relay on arrival, the session side: a received packet leaves on another session at once.

``a.forward_to(b, source, listener)`` (a bridge: ``b`` plays ``source``, the relay buffer that
``listener`` fills from ``a``'s audio; the echo line: ``b`` is ``a``) makes ``a`` hand each
received audio packet straight to ``b``, in the same reactor turn, when ``b`` can send it as
it is: ``b`` is still playing ``source`` (whatever that holds for the tick is sent first),
the packet's codec is the one ``b`` sends and its length is ``b``'s packet time, ``b`` is
sending (not on hold, not ``recvonly``/``inactive``) and has no RFC 4733 event on the way.
Nothing of an earlier packet of ``a`` may be waiting in ``a``'s reframer either (order).  ``b`` rewrites the header (its SSRC, its sequence
number, a timestamp continuous with its own packets: :mod:`ivr.rtp.forward`) and sends it
through its own send path, so an SRTP leg protects it (``a`` already unprotected it).  A
packet that cannot be forwarded takes the tick path as before (``listener`` queues it and
``b``'s media-clock tick sends it, transcoded or re-packetized), so both paths interleave
with one sequence counter.

While packets are being forwarded ``b``'s tick sends no audio of its own (it still sends RFC
4733 events, RTCP and does its housekeeping).  When the next packet is more than
``GRACE_TICKS`` periods late (the peer paused, stopped sending, went on hold), a packet could
not be forwarded (it waits in ``source`` for the tick) or forwarding is switched off (the
bridge ended, a transfer), the tick takes over again, at once: the stream stays continuous
(silence or the queued audio), its timestamp continuing from the last forwarded packet
(:meth:`HeaderRewriter.resume`) and its sequence from the same counter.

Samples are not needed for forwarding: ``a``'s audio listeners (recording, in-band DTMF) and
its other payload listeners still get a copy of every packet, after it was sent, decoded only
when an audio listener exists.

In the server ``a``'s RTP socket is read by the :class:`~ivr.rtp.receiver.MediaReceiver`,
which normally reads at the media clock's firings; while ``a`` forwards, the receiver reads
that socket as soon as a datagram arrives (:meth:`~ivr.rtp.receiver.MediaReceiver.watch`).
"""
from __future__ import annotations

from .forward import HeaderRewriter
from .frames import PAD, EncodedFrame, _notify
from .framing import Reframer, frames_per_packet

__all__ = ["Forwarding", "GRACE_TICKS"]

GRACE_TICKS = 1  # periods a forwarded packet is waited for, beyond its own length, before the tick sends
_MASK32 = 0xFFFFFFFF
_SENDING = frozenset(("sendrecv", "sendonly"))


class Forwarding:
    """A base class of RtpSession (uses its state and send path, like SecureStream)."""

    _fwd = None  # receiving side: (target session, its source, the listener to skip)
    _fwd_until = -1  # sending side: tick count up to which forwarded audio stands in for ours
    _rewriter: HeaderRewriter | None = None  # sending side
    forwarded = 0  # sending side: packets sent on arrival
    _copy_reframer = None  # receiving side: 20 ms frames of forwarded packets for listeners

    def forward_to(self, target, source, listener=None) -> None:
        """Forward received audio straight to ``target`` while it plays ``source``;
        ``listener`` (one of our payload listeners, the one feeding ``source``) is skipped
        for forwarded packets."""
        self.stop_forwarding()
        self._fwd = (target, source, listener)
        receiver = getattr(self.clock, "receiver", None)
        if receiver is not None and self._rtp_socket is not None:
            receiver.watch(self._rtp_socket, self.reactor)

    def stop_forwarding(self) -> None:
        """Back to the tick path for this session's audio (the target's tick takes over)."""
        fwd, self._fwd = self._fwd, None
        if fwd is None:
            return
        fwd[0]._release()
        receiver = getattr(self.clock, "receiver", None)
        if receiver is not None and self._rtp_socket is not None:
            receiver.unwatch(self._rtp_socket)

    @property
    def forwarding(self) -> bool:
        return self._fwd is not None

    # ------------------------------------------------------------------ receiving side
    def _forward(self, fwd, decoder, ssrc: int, ts: int, marker, payload: bytes) -> bool:
        """Called by ``_rtp_received`` for an audio packet; True when it was forwarded."""
        if self._reframer.pending:
            return False  # the rest of an earlier packet is still on the tick path: keep order
        if not fwd[0]._relay(fwd[1], decoder, ssrc, ts, marker, payload):
            return False
        listeners = self._payload_listeners
        if self._audio_listeners or (listeners and (len(listeners) > 1 or listeners[0] != fwd[2])):
            self._copy_to_listeners(fwd[2], decoder, marker, payload)
        return True

    def _copy_to_listeners(self, skip, decoder, marker, payload: bytes) -> None:
        others = [cb for cb in self._payload_listeners if cb != skip]  # bound methods: ==
        if not others and not self._audio_listeners:
            return
        burst = frames_per_packet(len(payload))
        reframer = self._copy_reframer
        if reframer is None:  # its own: a forwarded packet never waits in the tick path's
            reframer = self._copy_reframer = Reframer()
        for frame, key in reframer.feed(payload, decoder, PAD.get(decoder, 0), marker):
            if others:
                _notify(others, EncodedFrame(frame, key, burst))
            if self._audio_listeners:
                _notify(self._audio_listeners, key(frame))

    # ------------------------------------------------------------------ sending side
    def _relay(self, source, decoder, ssrc: int, ts: int, marker, payload: bytes) -> bool:
        """Send a packet received by another session (or this one) now, if it can go as it
        is; False sends it down the tick path instead."""
        n = len(payload)
        if (self._source is not source or decoder is not self._send_decoder
                or n != self.ptime * 8 or self._held or self._remote is None
                or self.direction not in _SENDING or self._closed or not self._dtmf_out.idle):
            if self._fwd_until > 0:
                self._fwd_until = 0  # it goes to the tick path: the next tick sends it
            return False
        if source.frames:
            self._drain(source)  # what the tick path holds goes first, now, in order
        if self._packetizer is not None and self._packetizer.pending:
            self._flush_audio()  # what the tick queued goes first, as a shorter packet
        rewriter = self._rewriter
        if rewriter is None:
            rewriter = self._rewriter = HeaderRewriter()
        now_ts = (self._ts + 160) & _MASK32  # where the tick's next packet would start
        packetizer = self._packetizer
        if packetizer is not None:  # it knows exactly, once it has sent a packet
            diff = (packetizer._ts - now_ts) & _MASK32
            if diff <= n or diff >= (1 << 32) - n:
                now_ts = packetizer._ts
        out = rewriter.rewrite(ssrc, ts, marker, n, self._seq, now_ts, self._marker_next)
        self._fwd_until = self._ticks + GRACE_TICKS + (n + 159) // 160
        if out is not None:
            self._marker_next = False
            self.forwarded += 1
            self._send_rtp(self._pt, out[1], out[0], payload)
        return True

    def _drain(self, source) -> None:
        """Send the audio ``source`` holds for the tick (packets that could not be forwarded:
        during hold, a codec or packet-time change, an RFC 4733 event) at once, continuing
        the stream's timestamps, so that forwarding can resume without reordering or losing
        it (the source's own rule still drops what is too old)."""
        ts = (self._ts + 160) & _MASK32
        if self._rewriter is not None:
            ts = self._rewriter.resume(ts, self.ptime * 8, self._seq)
        self._ts = (ts - 160) & _MASK32
        self._fwd_until = -1
        while source.frames:
            frame = source.read_frame()
            self._ts = (self._ts + 160) & _MASK32
            self._send_audio(frame)
            self._marker_next = False

    def _release(self) -> None:
        """Nothing is forwarded to us any more: our next tick sends audio again."""
        if self._fwd_until > 0:
            self._fwd_until = 0

    def _take_over(self) -> None:
        """In the tick (its timestamp already advanced): the tick sends audio again, its
        timestamp continuing from the last forwarded packet."""
        self._fwd_until = -1
        self._ts = self._rewriter.resume(self._ts, self.ptime * 8, self._seq)
