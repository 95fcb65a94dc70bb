"""The outgoing half of an RtpSession: what each media-clock tick sends.

On every tick the session sends exactly one period's packet while sending is allowed: a DTMF
event packet, else the next frame of the current ``play()`` source, else comfort silence
(carriers expect a continuous stream, and sequence numbers never gap).  Late ticks advance the
timestamp by ``160 * count`` (see ``clock.py``).  A ``ptime`` other than 20 ms goes through the
session's :class:`~ivr.rtp.framing.Packetizer`.  During a media-clock firing the packet joins
the clock's batch (one ``sendmmsg`` for the firing: :mod:`ivr.rtp.sendbatch`); otherwise it is
sent at once.  A failed send counts in ``send_errors`` and never raises.

:class:`Sending` is a mixin of :class:`~ivr.rtp.session.RtpSession` (which holds the state it
reads: sequence, timestamp, source, packetizer, remote address, counters), kept apart so that
the per-packet send path reads as one piece.
"""
from __future__ import annotations

import numpy as np

from ..media.player import FRAME_SAMPLES
from .frames import EncodedFrame
from .secure import HEADER as _HEADER

__all__ = ["Sending", "HOUSEKEEPING_TICKS"]

_MASK32 = 0xFFFFFFFF
_SENDING = frozenset(("sendrecv", "sendonly"))
_ENDED = object()  # _next_audio_frame: the source just ended
HOUSEKEEPING_TICKS = 5  # run _housekeeping on one tick in five (every 100 ms)


class Sending:
    def tick(self, count: int):
        """Send this period's packet.  When the playing source has just ended, returns
        :meth:`_finish_tick` instead: the media clock calls it after the other streams of
        the firing have sent theirs.  Ending a prompt runs the play() Deferred's callbacks
        (the dialplan's next verb, which usually starts the next prompt), and that work must
        not delay every stream ticked after this one.  The packet still goes out in this
        period, from the next source when one was started (gapless), else silence."""
        if self._closed:
            return
        if self._ticked:
            self._ts = (self._ts + FRAME_SAMPLES * count) & _MASK32
        self._ticked = True
        self._ticks += 1
        if self._ticks % HOUSEKEEPING_TICKS == 1:
            # DTMF end timeouts, the media timeout and RTCP need 100 ms resolution, not 20:
            # checking every fifth tick (each stream on its own phase, so no tick carries
            # everyone's) keeps them off most ticks of a busy media clock.
            self._housekeeping(self.reactor.seconds())
        if (self._held or self._remote is None or self.direction not in _SENDING
                or self._closed):
            self._marker_next = True
            if self._packetizer is not None:
                self._packetizer.clear()
            return
        # Digits wait while telephone-event is not negotiated (renegotiated away mid-queue).
        dtmf_out = self._dtmf_out
        dtmf = None
        if not dtmf_out.idle and self._te_pt is not None:
            if self._fwd_until >= 0:
                self._take_over()  # the event's timestamp follows the forwarded audio's
            dtmf = dtmf_out.next_packet(self._ts)
        if dtmf is not None:
            payload, marker, ts = dtmf
            if self._packetizer is not None:
                self._flush_audio()  # the audio before the event, as a shorter packet
            self._send_rtp(self._te_pt, marker or self._marker_next, ts, payload)
            ended, done = dtmf_out.sent()
            if ended:
                self._counters["dtmf_sent"] += 1
                if done is not None:
                    done.callback(None)
        else:
            if self._fwd_until >= 0:  # forwarded packets are this stream's audio (fastpath)
                if self._fwd_until >= self._ticks:
                    return
                self._take_over()
            frame = self._next_audio_frame()
            if frame is _ENDED:
                return self._finish_tick
            if type(frame) is bytes and self._packetizer is None:  # a prompt's encoded frame
                self._send_rtp(self._pt, self._marker_next, self._ts, frame)
            else:
                self._send_audio(frame)
        self._marker_next = False

    def _finish_tick(self) -> None:
        # A finished source's callback may start the next one (gapless), which may itself be
        # empty: up to four in a row are followed, then this period is silence.
        for attempt in range(5):
            ended, self._ended = self._ended, None
            ended[0].callback(ended[1])
            if not self.sending:
                self._marker_next = True
                return
            frame = self._next_audio_frame() if attempt < 4 else None
            if frame is not _ENDED:
                self._send_audio(frame)
                self._marker_next = False
                return

    def _send_audio(self, frame) -> None:
        if frame is None:
            payload = self._silence
        elif type(frame) is bytes:
            payload = frame
        elif type(frame) is EncodedFrame:
            # A relayed payload in the codec we send goes out as it came in.
            if frame.decoder is self._send_decoder and len(frame.payload) == FRAME_SAMPLES:
                payload = frame.payload
            else:
                payload = self._encode(_fit(frame.pcm())).tobytes()
        else:
            payload = self._encode(_fit(frame)).tobytes()
        packetizer = self._packetizer
        if packetizer is None:
            self._send_rtp(self._pt, self._marker_next, self._ts, payload)
            return
        for ts, data, marker in packetizer.add(self._ts, payload, self._marker_next):
            self._send_rtp(self._pt, marker, ts, data)

    def _flush_audio(self) -> None:
        """Send the audio the packetizer holds (less than one packet) as a shorter packet."""
        packetizer = self._packetizer
        if packetizer is None or not packetizer.pending:
            return
        for ts, data, marker in packetizer.flush():
            if self.sending:
                self._send_rtp(self._pt, marker, ts, data)

    def _next_audio_frame(self):
        """The next frame of the playing source; None for silence; ``_ENDED`` when the
        source just ended (its Deferred waits in ``_ended`` for :meth:`_finish_tick`)."""
        src = self._source
        if src is None:
            return None
        try:
            # A source that can hand out encoded frames (a prompt) skips the per-frame
            # G.711 encode: it returns bytes, which tick() sends as they are.
            read_encoded = getattr(src, "read_encoded", None)
            frame = read_encoded(self._encode) if read_encoded is not None else src.read_frame()
        except Exception as e:
            d, self._source, self._play_d = self._play_d, None, None
            d.errback(e)
            return None
        if frame is not None:
            self._played += 1
            return frame
        self._ended = (self._play_d, self._played)
        self._source = self._play_d = None
        return _ENDED

    def _send_rtp(self, pt: int, marker: bool, ts: int, payload: bytes) -> None:
        data = _HEADER.pack(0x80, (0x80 if marker else 0) | pt, self._seq, ts, self.ssrc) + payload
        self._seq = (self._seq + 1) & 0xFFFF
        batch = self._batch
        if batch is not None and batch.active and self._rtp_socket is not None:
            # _transmit's media-clock case inline: once per packet of every stream
            self._packets_sent += 1
            self._octets_sent += len(payload)
            batch.add(self._rtp_socket, data, self._remote, self._counters)
            return
        self._transmit(data, len(payload))

    def _transmit(self, data: bytes, payload_octets: int) -> None:
        """Count and send one RTP packet (plain, or already protected) to the far end."""
        self._packets_sent += 1
        self._octets_sent += payload_octets
        self._rtcp.sent_since_report = True
        sock = self._rtp_socket
        if sock is None:
            self._write(self._pair.rtp, data, self._remote)
            return
        batch = self._batch
        if batch is not None and batch.active:  # a media-clock firing: sent with the others
            batch.add(sock, data, self._remote, self._counters)
            return
        try:
            sock.sendto(data, self._remote)
        except Exception:  # full buffer, unreachable, closed: count, never raise
            self._counters["send_errors"] += 1

    def _write(self, port, data: bytes, addr) -> None:
        # The socket's own sendto: Twisted's Port.write re-validates the address on every
        # packet, a cost the media clock would pay for every stream on every tick.
        sock = getattr(port, "socket", None)  # None: an in-memory port in tests
        try:
            if sock is not None:
                sock.sendto(data, addr)
            else:
                port.write(data, addr)
        except Exception:  # full buffer, unreachable, closed: count, never raise
            self._counters["send_errors"] += 1


def _fit(frame) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.dtype != np.int16:
        arr = np.clip(arr, -32768, 32767).astype(np.int16)
    if arr.shape != (FRAME_SAMPLES,):
        arr = arr.ravel()[:FRAME_SAMPLES]
        if len(arr) < FRAME_SAMPLES:
            arr = np.concatenate([arr, np.zeros(FRAME_SAMPLES - len(arr), dtype=np.int16)])
    return arr
