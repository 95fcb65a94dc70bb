"""RtpSession: one RTP/RTCP port pair and one G.711 stream each way, driven by the MediaClock.

Outgoing: on every media-clock tick the session sends exactly one packet while sending is
allowed: a DTMF event packet, else the next frame of the current ``play()`` source, else
comfort silence (carriers expect a continuous stream, and sequence numbers never gap).  Late
ticks advance the timestamp by ``160 * count`` (see ``clock.py``).  The tick and the send path
are :mod:`ivr.rtp.outgoing`.

Direction (RFC 3264): ``set_direction`` takes OUR direction from the negotiated SDP.  When it
excludes sending (the peer put us on hold with ``sendonly``/``inactive``), or after ``hold()``,
no packets are sent, playback and DTMF pause, and the timestamp keeps running; the first packet
after resuming carries the marker bit.  When it excludes receiving, the media timeout is off.

Packet time: received packets of any size (10, 30, 40, 60 ms ..., changing mid-call) are cut
into 20 ms frames by a :class:`~ivr.rtp.framing.Reframer` before any listener sees them, so
every sample reaches echo, recording, in-band DTMF and a bridge once and in order.  We send
packets of the ``ptime`` given to ``set_remote`` (10/20/30/40/60 ms, what the peer asked for):
the clock still ticks every 20 ms and a :class:`~ivr.rtp.framing.Packetizer` joins the ticks'
frames (30 ms: a packet on two ticks of three; 10 ms: two packets per tick); each packet's
timestamp is that of its first sample.  An RFC 4733 event, a late tick or a ptime change
sends what is queued as a shorter packet; hold drops it.

Incoming: symmetric RTP — the remote address latches onto the source of received packets
(carrying a negotiated payload type) and re-latches whenever it changes (NAT rebinding).
Packets are decoded to int16 and handed to audio listeners in arrival order (no jitter buffer;
duplicates are dropped).  RFC 4733 events go to a DtmfReceiver, digits to ``on_dtmf`` callbacks.

RTCP: a compound SR (or RR when we have not sent) + SDES CNAME about every ``rtcp_interval``
seconds (randomised 0.5..1.5x, RFC 3550 6.2), checked on the media tick; BYE on ``close()``.
RTCP arriving on the RTP port (rtcp-mux) is handled too.

SRTP and WebRTC (``set_srtp``, ``set_webrtc``): see :mod:`ivr.rtp.secure`.  Relay on arrival
(``forward_to``: a bridge or the echo sends a received packet at once, not on the next tick):
see :mod:`ivr.rtp.fastpath`.
"""
from __future__ import annotations

import ipaddress
import random

from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol
from twisted.python import log

from ..media import g711
from ..media.player import FRAME_SAMPLES
from .dtmf import DtmfReceiver, DtmfSendQueue, event_code
from .fastpath import Forwarding
from .frames import EncodedFrame, _notify
from .frames import PAD as _PAD
from .framing import SEND_PTIMES, Packetizer, Reframer, frames_per_packet
from .outgoing import _SENDING, HOUSEKEEPING_TICKS, Sending
from .packet import RtpError, RtpPacket, is_rtcp
from .ports import EphemeralPorts
from .rtcp import RtcpReporter
from .secure import HEADER as _HEADER, SecureStream
from .stats import ReceiveStats

__all__ = ["RtpSession", "PlaybackStopped", "DtmfNotNegotiated", "SessionClosed", "DIRECTIONS",
           "EncodedFrame"]

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# SSRCs, first sequence numbers and timestamps, RTCP intervals: from the OS's generator,
# one for every session (a Random instance carries 2.5 KB of Mersenne state it never uses)
_SYSTEM_RANDOM = random.SystemRandom()
_STATIC_DECODERS = {0: g711.ulaw_decode, 8: g711.alaw_decode}
_CN_PT = 13


class PlaybackStopped(Exception):
    """play()'s Deferred: playback was stopped (stop_playback, a new play(), or close())."""


class DtmfNotNegotiated(Exception):
    """send_dtmf() without a telephone-event payload type in set_remote() (our misuse)."""


class SessionClosed(Exception):
    """The session was closed before the operation finished."""


class _Port(DatagramProtocol):
    noisy = False  # no "starting on port" log line per call
    def __init__(self, session: "RtpSession", rtcp: bool) -> None:
        self.session = session
        self.rtcp = rtcp

    def datagramReceived(self, data, addr):  # noqa: N802 (Twisted callback name)
        try:
            if self.rtcp:
                self.session._rtcp_received(data, addr)
            else:
                self.session._rtp_received(data, addr)
        except Exception:  # bad input is never fatal to the reactor
            log.err(None, "RtpSession: error handling datagram")


class RtpSession(Sending, Forwarding, SecureStream):
    # The state every session has lives in slots: with more than 30 attributes an instance
    # dict grows to 2-3 KB, a tenth of an IVR call's memory (bench MEM).  The instance
    # dict stays (the mixins have none of their own) for what only some sessions set: the
    # relay's state (fastpath.py) and the SRTP path's method overrides (secure.py).
    __slots__ = (
        "reactor", "clock", "host", "media_timeout", "_rng", "_ports", "_pair", "local_port",
        "ssrc", "cname", "_seq", "_ts", "_ticked", "_ticks", "_remote", "_rtcp", "_pt",
        "_te_pt", "_encode", "_send_decoder", "_silence", "_decoders", "ptime", "_packetizer",
        "_reframer", "direction", "_held", "_marker_next", "_closed", "_source", "_play_d",
        "_played", "_ended", "_dtmf_out", "_rx", "_dtmf_rx", "_audio_listeners",
        "_payload_listeners", "_dtmf_callbacks", "_timeout_callbacks", "_rx_reference",
        "_timed_out", "_packets_sent", "_octets_sent", "_counters", "_rtp_socket", "_batch",
        "_srtp", "_ice", "_dtls", "_consent_lost",
        "_packets_at_report",  # _packets_sent when the last RTCP report was built (_send_rtcp)
        "_dtmf_open",  # an RFC 4733 event may be open: housekeeping polls its end timeout
    )

    def __init__(self, reactor, media_clock, host: str = "127.0.0.1", ports=None,
                 media_timeout: float = 30.0, rtcp_interval: float = 5.0, cname: str | None = None,
                 rng: random.Random | None = None, dtmf_end_timeout: float = 0.5,
                 dtmf_gap_ms: int = 60) -> None:
        self.reactor = reactor
        self.clock = media_clock
        self.host = host
        self.media_timeout = media_timeout
        self._rng = rng or _SYSTEM_RANDOM
        self._ports = ports or EphemeralPorts(reactor)
        self._pair = self._ports.allocate(lambda: _Port(self, False), lambda: _Port(self, True),
                                          interface=host, reactor=reactor)
        self.local_port = self._pair.number
        self.ssrc = self._rng.getrandbits(32)
        self.cname = cname or f"ivr-{self.ssrc:08x}@{host}"
        self._seq = self._rng.getrandbits(16)
        self._ts = self._rng.getrandbits(32)
        self._ticked = False
        self._ticks = self.ssrc % HOUSEKEEPING_TICKS  # spread housekeeping over the ticks
        self._remote: tuple[str, int] | None = None
        self._rtcp = RtcpReporter(self.ssrc, self.cname, rtcp_interval, self._rng,
                                  first_seq=self._seq)
        self._pt = 0
        self._te_pt: int | None = None
        self._encode = g711.ulaw_encode
        self._send_decoder = g711.ulaw_decode  # identifies the codec we send (EncodedFrame)
        self._silence = bytes([g711.ULAW_SILENCE]) * FRAME_SAMPLES
        self._decoders: dict[int, object] = {}
        self.ptime = 20  # ms per packet we send
        self._packetizer: Packetizer | None = None  # None: 20 ms, one packet per tick
        self._reframer = Reframer()
        self.direction = "sendrecv"
        self._held = False
        self._marker_next = True
        self._closed = False
        # playback / DTMF out
        self._source = None
        self._play_d: defer.Deferred | None = None
        self._played = 0
        self._ended: tuple | None = None  # (Deferred, frames) of a source that just ended
        self._dtmf_out = DtmfSendQueue(gap_ticks=dtmf_gap_ms // 20)
        # receive side
        self._rx = ReceiveStats()
        self._dtmf_rx = DtmfReceiver(end_timeout=dtmf_end_timeout)
        self._audio_listeners: list = []
        self._payload_listeners: list = []
        self._dtmf_callbacks: list = []
        self._timeout_callbacks: list = []
        self._rx_reference = reactor.seconds()
        self._timed_out = False
        # packets/octets sent are attributes, not dict entries: they change on every tick
        self._packets_sent = 0
        self._octets_sent = 0
        self._counters = dict(dtmf_sent=0, dtmf_received=0,
                              bad_packets=0, unexpected_payload_type=0, send_errors=0,
                              rtcp_sent=0, rtcp_received=0, bad_rtcp=0, relatches=0,
                              media_timeouts=0)
        self._rtp_socket = getattr(self._pair.rtp, "socket", None)  # None: an in-memory port
        self._batch = getattr(media_clock, "batch", None)  # the clock's SendBatch (sendbatch.py)
        self._srtp = None  # SrtpContext while the stream is encrypted
        self._ice = None   # IceLiteAgent on a WebRTC stream
        self._dtls = None  # DtlsEndpoint on a WebRTC stream
        self._consent_lost = False
        self._packets_at_report = 0
        self._dtmf_open = False

    # ------------------------------------------------------------------ configuration
    def set_remote(self, ip: str, port: int, payload_type: int = 0, codec: str = "PCMU",
                   telephone_event_pt: int | None = None, rtcp_port: int | None = None,
                   rtcp_ip: str | None = None, rtcp_mux: bool = False,
                   ptime: int = 20) -> None:
        """Where to send (from the peer's SDP); starts the outgoing stream on the media clock.
        ``ptime``: the packet time we send, one of 10, 20, 30, 40, 60 ms."""
        ipaddress.ip_address(ip)  # ValueError for hostnames: resolve before calling
        if not 0 < port < 65536 or not 0 <= payload_type < 128:
            raise ValueError("bad port or payload type")
        if ptime not in SEND_PTIMES:
            raise ValueError(f"ptime must be one of {SEND_PTIMES} ms")
        if ptime != self.ptime:
            self._flush_audio()  # what is queued goes out in the old size and codec
            self.ptime = ptime
            self._packetizer = None if ptime == 20 else Packetizer(ptime * FRAME_SAMPLES // 20)
        self._remote = (ip, port)
        if rtcp_ip is not None:
            ipaddress.ip_address(rtcp_ip)
        self._rtcp.follow_rtp(ip, port, rtcp_port, rtcp_ip, mux=rtcp_mux)
        if self._ice is not None:
            self._webrtc_remote()  # the SDP's address is not where WebRTC media goes
        self._pt = payload_type
        self._encode = g711.encoder_for(codec)
        self._send_decoder = g711.decoder_for(codec)
        self._silence = bytes([g711.silence_byte(codec)]) * FRAME_SAMPLES
        self._te_pt = telephone_event_pt
        self._decoders = dict(_STATIC_DECODERS)
        self._decoders[payload_type] = g711.decoder_for(codec)
        if self._closed:
            return
        if self._rtcp.next_at is None:
            self._rx_reference = self.reactor.seconds()
            self._rtcp.schedule(self.reactor.seconds())
        self.clock.register(self)

    @property
    def remote_address(self) -> tuple[str, int] | None:
        return self._remote

    def set_direction(self, direction: str) -> None:
        """Our RFC 3264 direction after offer/answer: sendrecv, sendonly, recvonly or inactive."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}")
        if direction in ("sendrecv", "recvonly") and self.direction not in ("sendrecv", "recvonly"):
            self._rx_reference = self.reactor.seconds()  # media timeout restarts
        self.direction = direction

    def hold(self) -> None:
        """Stop sending (as if the peer offered sendonly/inactive); the clock keeps running."""
        self._held = True

    def unhold(self) -> None:
        self._held = False

    @property
    def sending(self) -> bool:
        return (not self._held and self.direction in ("sendrecv", "sendonly")
                and self._remote is not None and not self._closed)

    def _receiving(self) -> bool:
        return self.direction in ("sendrecv", "recvonly")

    # ------------------------------------------------------------------ listeners
    def add_audio_listener(self, cb) -> None:
        """cb(frame: int16 ndarray) for every decoded incoming audio packet."""
        self._audio_listeners.append(cb)

    def remove_audio_listener(self, cb) -> None:
        if cb in self._audio_listeners:
            self._audio_listeners.remove(cb)

    @property
    def has_audio_listeners(self) -> bool:
        """Someone reads this session's decoded audio (recording, speech, in-band DTMF)."""
        return bool(self._audio_listeners)

    def add_payload_listener(self, cb) -> None:
        """cb(EncodedFrame) for every incoming audio packet, before (and without) decoding."""
        self._payload_listeners.append(cb)

    def remove_payload_listener(self, cb) -> None:
        if cb in self._payload_listeners:
            self._payload_listeners.remove(cb)

    def on_dtmf(self, cb) -> None:
        """cb(digit, source='rfc4733') once per received RFC 4733 event."""
        self._dtmf_callbacks.append(cb)

    def on_timeout(self, cb) -> None:
        """cb() when no RTP arrived for ``media_timeout`` seconds (once per silent spell)."""
        self._timeout_callbacks.append(cb)

    # ------------------------------------------------------------------ playback / DTMF
    def play(self, source) -> defer.Deferred:
        """Play a source (``read_frame() -> ndarray | None``); fires with the frame count when
        exhausted, errbacks PlaybackStopped when stopped; cancelling the Deferred stops it."""
        if self._closed:
            return defer.fail(SessionClosed("session closed"))
        self.stop_playback("replaced by a new play()")
        d = defer.Deferred(canceller=self._cancel_play)
        self._source, self._play_d, self._played = source, d, 0
        return d

    def _cancel_play(self, d) -> None:
        if self._play_d is d:
            self._source = self._play_d = None

    def stop_playback(self, reason: str = "stopped") -> bool:
        d = self._play_d
        self._source = self._play_d = None
        if d is None:
            return False
        d.errback(PlaybackStopped(reason))
        return True

    @property
    def playing(self) -> bool:
        return self._play_d is not None

    def send_dtmf(self, digits: str, duration_ms: int = 100) -> defer.Deferred:
        """Queue RFC 4733 events; fires when the last end packet of these digits was sent."""
        if self._te_pt is None:
            return defer.fail(DtmfNotNegotiated("telephone-event was not negotiated"))
        if self._closed:
            return defer.fail(SessionClosed("session closed"))
        codes = [event_code(ch) for ch in digits]  # ValueError on a bad digit, before queuing
        d = defer.Deferred()
        if not codes:
            d.callback(0)
            return d
        for i, code in enumerate(codes):
            self._dtmf_out.add(code, duration_ms, d if i == len(codes) - 1 else None)
        return d

    def _housekeeping(self, now: float) -> None:
        if self._ice is not None:
            self._webrtc_housekeeping(now)
        if self._dtmf_open:  # only a stream that received telephone-events has one to end
            for digit in self._dtmf_rx.poll(now):
                self._deliver_dtmf(digit.digit)
            self._dtmf_open = self._dtmf_rx.state == "in-event"
        if (self.media_timeout and not self._timed_out
                and now - self._rx_reference >= self.media_timeout and self._receiving()):
            self._timed_out = True
            self._counters["media_timeouts"] += 1
            self._media_gone()
        if self._rtcp.due(now):
            self._rtcp.schedule(now)  # first: a report that fails must not stop the next
            self._send_rtcp(now)

    def _media_gone(self) -> None:
        """No media from the far end (RTP stopped, or ICE consent expired)."""
        _notify(self._timeout_callbacks)

    # ------------------------------------------------------------------ receive
    def _rtp_received(self, data: bytes, addr) -> None:
        if self._closed:
            return
        if len(data) >= 12 and data[0] == 0x80 and not 192 <= data[1] <= 223:
            # The common case, parsed in place: version 2, no padding, no header
            # extension, no CSRCs (RtpPacket.parse gives the same fields, slower).
            _b0, b1, seq, timestamp, ssrc = _HEADER.unpack_from(data)
            pt = b1 & 0x7F
            marker = b1 & 0x80
            payload = data[12:]
        elif is_rtcp(data):  # rtcp-mux (RFC 5761)
            self._rtcp_received(data, addr)
            return
        else:
            try:
                pkt = RtpPacket.parse(data)
            except RtpError:
                self._counters["bad_packets"] += 1
                return
            pt, seq, timestamp = pkt.payload_type, pkt.sequence, pkt.timestamp
            ssrc, payload, marker = pkt.ssrc, pkt.payload, pkt.marker
        if self._remote is None or (pt not in self._decoders and pt != self._te_pt and pt != _CN_PT):
            self._counters["unexpected_payload_type"] += 1
            return
        if addr != self._remote:
            addr = (addr[0], addr[1])  # an IPv6 source has four fields; we keep two
        if addr != self._remote:
            self._counters["relatches"] += 1
            log.msg(f"RtpSession {self.local_port}: latching RTP to {addr[0]}:{addr[1]}")
            self._remote = addr
            self._rtcp.follow_rtp(addr[0], addr[1])
        now = self.reactor.seconds()
        verdict = self._rx.update(ssrc, seq, timestamp, now, len(payload))
        self._rx_reference = now
        self._timed_out = False
        if not verdict.accepted or verdict.duplicate:
            return
        if pt == self._te_pt:
            self._dtmf_open = True
            for digit in self._dtmf_rx.feed(timestamp, seq, payload, now):
                self._deliver_dtmf(digit.digit)
        elif payload and pt in self._decoders:
            decoder = self._decoders[pt]
            fwd = self._fwd
            if fwd is not None and self._forward(fwd, decoder, ssrc, timestamp, marker, payload):
                return  # sent on arrival (fastpath.py)
            if (not self._payload_listeners and not self._audio_listeners
                    and len(payload) == FRAME_SAMPLES and not self._reframer.pending):
                return  # nobody reads the audio, and feed() would hand this frame on whole
            # Any packet time in, 20 ms frames out (framing.py): every sample once, in order.
            frames = self._reframer.feed(payload, decoder, _PAD.get(decoder, 0), marker)
            if not frames:
                return
            burst = frames_per_packet(len(payload)) if self._payload_listeners else 1
            for frame, decoder in frames:
                if self._payload_listeners:
                    _notify(self._payload_listeners, EncodedFrame(frame, decoder, burst))
                if self._audio_listeners:  # decoded only when someone listens to audio
                    _notify(self._audio_listeners, decoder(frame))

    def _deliver_dtmf(self, digit: str) -> None:
        self._counters["dtmf_received"] += 1
        _notify(self._dtmf_callbacks, digit, source="rfc4733")

    # ------------------------------------------------------------------ RTCP (rtcp.py)
    @property
    def rtcp_interval(self) -> float:
        return self._rtcp.interval

    @property
    def peer_bye(self) -> bool:
        """The peer sent an RTCP BYE."""
        return self._rtcp.peer_bye

    def _send_rtcp(self, now: float, bye: bool = False) -> None:
        if self._rtcp.remote is None or (self._ice is not None and self._remote is None):
            return
        if self._packets_sent != self._packets_at_report:
            # RTP went out since the last report: an SR (counted here, not per packet)
            self._rtcp.sent_since_report = True
        self._packets_at_report = self._packets_sent
        data = self._rtcp.compound(now, self._rx, self._ts, self._packets_sent,
                                   self._octets_sent, bye=bye)
        if self._srtp is not None:
            data = self._srtp.protect_rtcp(data)
            if data is None:
                return
        self._counters["rtcp_sent"] += 1
        # rtcp-mux (RFC 5761): from the RTP port, to the peer's RTP address
        self._write(self._pair.rtp if self._rtcp.mux else self._pair.rtcp, data,
                    self._rtcp.remote)

    def _rtcp_received(self, data: bytes, addr) -> None:
        if self._closed:
            return
        try:
            self._rtcp.received(data, addr, self.reactor.seconds(), self._rx)
        except RtpError:
            self._counters["bad_rtcp"] += 1
            return
        self._counters["rtcp_received"] += 1

    # ------------------------------------------------------------------ stats / close
    def stats(self) -> dict:
        rx = self._rx.as_dict()
        out = dict(self._counters)
        out.update(packets_sent=self._packets_sent, octets_sent=self._octets_sent)
        out.update(ssrc=self.ssrc, local_port=self.local_port, remote=self._remote,
                   packets_received=rx["packets_received"], octets_received=rx["octets_received"],
                   lost=rx["lost"], duplicates=rx["duplicates"], reordered=rx["reordered"],
                   jitter_ms=rx["jitter_ms"], remote_ssrc=rx["ssrc"], peer=dict(self._rtcp.peer_view),
                   peer_bye=self._rtcp.peer_bye, direction=self.direction, held=self._held)
        if self._ice is not None:
            out.update(self._ice.counters, dtls_state=self._dtls.state.value,
                       ice_nominated=self._ice.nominated, consent_lost=self._consent_lost)
        if self._srtp is not None:
            out["media_encryption"] = "dtls-srtp" if self._dtls is not None else "srtp"
            out.update(self._srtp.stats())
        else:
            out["media_encryption"] = "off"
        return out

    def close(self) -> defer.Deferred:
        """Send RTCP BYE, stop the stream, fail pending operations, release the ports."""
        if self._closed:
            return defer.succeed(None)
        if self._remote is not None:
            self._flush_audio()
            self._send_rtcp(self.reactor.seconds(), bye=True)
            if self._dtls is not None:
                for datagram in self._dtls.close():  # close_notify
                    self._write(self._pair.rtp, datagram, self._remote)
        self._closed = True
        self.clock.unregister(self)
        self.stop_playback("session closed")
        for d in self._dtmf_out.clear():
            d.errback(SessionClosed("session closed"))
        released = defer.maybeDeferred(self._ports.release, self._pair)
        # Drop what refers back to us (the owner's callbacks, the ports' protocols), so a
        # closed session is freed by reference counting, not by the cyclic collector.
        self._dtmf_callbacks, self._timeout_callbacks = [], []
        self._audio_listeners, self._payload_listeners = [], []
        for port in (self._pair.rtp, self._pair.rtcp):
            protocol = getattr(port, "protocol", None)
            if isinstance(protocol, _Port):
                protocol.session = protocol.transport = None
        return released

