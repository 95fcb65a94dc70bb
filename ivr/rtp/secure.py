"""The encrypted and WebRTC side of an :class:`~ivr.rtp.session.RtpSession`.

SRTP (``set_srtp``, an :class:`~ivr.rtp.srtp.SrtpContext`): every RTP and RTCP packet is
protected just before the socket and unprotected just after it, before anything else looks
at it (latching, statistics, reframing, RFC 4733); a packet that fails (wrong key, forged,
replayed, plain) is dropped and counted in the context.  The encrypting versions of the send
and receive methods are bound over the plain ones on the instance while a context is set, so
a plain session makes no encryption check per packet; both send through the session's one
``_transmit``.  With the native batched socket I/O (:mod:`ivr.rtp.mmsg`) the per-packet
work moves into C: during a media-clock firing the session adds its plain packet and its
context to the clock's batch, which protects it in the send buffer (``SendBatch.add_srtp``),
and the receiver unprotects the RTP socket's packets right after ``recvmmsg``
(``MediaReceiver.set_srtp``), handing the plain ones to the plain handlers; the methods here
remain for the pure backend and for what is sent or read outside those batches.

WebRTC (``set_webrtc``, an :class:`~ivr.rtp.ice.IceLiteAgent` and a
:class:`~ivr.rtp.dtls.DtlsEndpoint`): the RTP port is demultiplexed by first byte (RFC 7983):
STUN checks go to the ICE agent, DTLS to the endpoint, RTP/RTCP to SRTP.  When the handshake
completes its exported keys key an SrtpContext (``set_srtp``); until then, and until ICE has
nominated an address, nothing is sent (no plain RTP or RTCP ever) and RTP is dropped.  Media
goes to the nominated address only.  DTLS is accepted only from an address that passed an
ICE check.  Handshake retransmissions and consent freshness (RFC 7675: no valid check for
30 s ends the media as the media timeout does, through ``on_timeout``) are checked in the
session's housekeeping, on the media clock like everything else.

:class:`SecureStream` is a base class of RtpSession: it uses the session's state (its
port pair, remote address, RTCP reporter, counters, timeout callbacks) and its plain
per-packet methods, which it binds over or calls.
"""
from __future__ import annotations

import struct

from twisted.python import log

from .dtls import DtlsRole, DtlsState
from .ice import Nominated, SendStun
from .packet import is_rtcp
from .srtp import SrtpContext

HEADER = struct.Struct("!BBHII")  # the RTP fixed header we send (no CSRCs, no extension)


class SecureStream:
    # ------------------------------------------------------------------ SRTP
    def set_srtp(self, context) -> None:
        """Encrypt the stream with ``context`` (an SrtpContext from the negotiated keys), or
        send and expect plain RTP again with None.  Set it before ``set_remote``, and again
        only when the negotiated keys change (a new context restarts the replay window)."""
        self._srtp = context
        names = ("_send_rtp", "_rtp_received", "_rtcp_received")
        native = self._native_srtp(context)
        if context is None:
            for name in names:
                self.__dict__.pop(name, None)
            return
        # instance attributes win over the class's methods: the plain path stays untouched
        self._send_rtp = self._send_srtp_batched if native else self._send_srtp
        self._rtp_received = self._srtp_received
        self._rtcp_received = self._srtcp_received

    def _native_srtp(self, context) -> bool:
        """With the native batched socket I/O (:mod:`ivr.rtp.mmsg`), SRTP happens in C: the
        receiver unprotects this session's RTP socket's packets right after ``recvmmsg`` and
        the media clock's batch protects its packets right before ``sendmmsg`` (libsrtp
        itself, pylibsrtp's copy).  True when the batch can protect; the receiver is told
        either way (None: no context, or not natively)."""
        sock = self._rtp_socket
        handles = context.native_handles if context is not None else None
        receiver = getattr(self.clock, "receiver", None)
        if sock is not None and receiver is not None and hasattr(receiver, "set_srtp"):
            cls = type(self)
            receiver.set_srtp(sock, context if handles is not None else None,
                              cls._rtp_received.__get__(self, cls),
                              cls._rtcp_received.__get__(self, cls))
        batch = self._batch
        return (handles is not None and sock is not None and batch is not None
                and batch.srtp)

    @property
    def encrypted(self) -> bool:
        return self._srtp is not None

    def _send_srtp(self, pt: int, marker: bool, ts: int, payload: bytes) -> None:
        """_send_rtp, protected (bound over it by set_srtp)."""
        data = self._srtp.protect(
            HEADER.pack(0x80, (0x80 if marker else 0) | pt, self._seq, ts, self.ssrc) + payload)
        self._seq = (self._seq + 1) & 0xFFFF
        if data is not None:  # None: counted by the context; the sequence number is spent
            self._transmit(data, len(payload))

    def _send_srtp_batched(self, pt: int, marker: bool, ts: int, payload: bytes) -> None:
        """_send_srtp when the media clock's batch protects in C (``SendBatch.add_srtp``):
        while it is open the plain packet joins it with the context; otherwise as before."""
        batch = self._batch
        if not batch.active:
            self._send_srtp(pt, marker, ts, payload)
            return
        data = HEADER.pack(0x80, (0x80 if marker else 0) | pt, self._seq, ts, self.ssrc) + payload
        self._seq = (self._seq + 1) & 0xFFFF
        self._packets_sent += 1
        self._octets_sent += len(payload)  # _send_rtcp tells SR from RR by the counter
        batch.add_srtp(self._rtp_socket, data, self._remote, self._counters, self._srtp)

    def _srtp_received(self, data: bytes, addr) -> None:
        """_rtp_received for SRTP (and SRTCP muxed on the RTP port): unprotect, then the
        plain path."""
        if self._closed:
            return
        if is_rtcp(data):
            plain = self._srtp.unprotect_rtcp(data)
            if plain is not None:
                type(self)._rtcp_received(self, plain, addr)
            return
        plain = self._srtp.unprotect(data)
        if plain is not None:
            type(self)._rtp_received(self, plain, addr)

    def _srtcp_received(self, data: bytes, addr) -> None:
        if self._closed:
            return
        plain = self._srtp.unprotect_rtcp(data)
        if plain is not None:
            type(self)._rtcp_received(self, plain, addr)

    # ------------------------------------------------------------------ WebRTC
    def set_webrtc(self, ice, dtls) -> None:
        """Make this a WebRTC stream: ``ice`` (an IceLiteAgent with our credentials) answers
        the peer's checks, ``dtls`` (a DtlsEndpoint) keys SRTP.  Call once, before
        ``set_remote`` (whose address is then ignored: media goes where ICE nominates)."""
        self._ice, self._dtls = ice, dtls
        self._remote = None
        self._rtp_received = self._webrtc_received
        self._counters.update(dtls_unchecked=0, rtp_before_keys=0, consent_expired=0)

    @property
    def webrtc_ready(self) -> bool:
        """ICE nominated an address and DTLS keyed SRTP: media flows."""
        return self._ice is not None and self._remote is not None

    def _webrtc_received(self, data: bytes, addr) -> None:
        if self._closed or not data:
            return
        first = data[0]
        if first < 4:
            self._webrtc_stun(data, addr)
        elif 20 <= first < 64:
            self._webrtc_dtls(data, addr)
        elif 128 <= first < 192:
            if self._srtp is None:
                self._counters["rtp_before_keys"] += 1
            else:
                self._srtp_received(data, addr)
        else:
            self._counters["bad_packets"] += 1

    def _webrtc_stun(self, data: bytes, addr) -> None:
        for action in self._ice.receive(data, addr, self.reactor.seconds()):
            if isinstance(action, SendStun):
                self._write(self._pair.rtp, action.data, action.addr)
            elif isinstance(action, Nominated):
                log.msg(f"RtpSession {self.local_port}: ICE nominated "
                        f"{action.addr[0]}:{action.addr[1]}")
                self._consent_lost = False
                if self._dtls.role is DtlsRole.CLIENT and self._dtls.state is DtlsState.NEW:
                    for datagram in self._dtls.start():
                        self._write(self._pair.rtp, datagram, action.addr)
                self._webrtc_remote()

    def _webrtc_dtls(self, data: bytes, addr) -> None:
        addr = (addr[0], addr[1])
        if addr not in (self._ice.checked, self._ice.nominated):
            self._counters["dtls_unchecked"] += 1  # DTLS only over a checked pair
            return
        was = self._dtls.state
        for datagram in self._dtls.receive(data):
            self._write(self._pair.rtp, datagram, addr)
        self._webrtc_keyed(was)

    def _webrtc_keyed(self, was) -> None:
        dtls = self._dtls
        if dtls.state is DtlsState.CONNECTED and self._srtp is None:
            log.msg(f"RtpSession {self.local_port}: DTLS-SRTP keyed ({dtls.keys.suite})")
            self.set_srtp(SrtpContext.from_keys(dtls.keys))
            self._rtp_received = self._webrtc_received  # the demux stays in front of SRTP
            self._webrtc_remote()
        elif dtls.state is DtlsState.FAILED and was is not DtlsState.FAILED:
            log.msg(f"RtpSession {self.local_port}: {dtls.error}")

    def _webrtc_remote(self) -> None:
        """Media goes to the nominated address once SRTP is keyed; nowhere before."""
        nominated = self._ice.nominated
        self._remote = nominated if self._srtp is not None else None
        if self._remote is not None:
            self._rtcp.follow_rtp(nominated[0], nominated[1], mux=True)

    def _webrtc_housekeeping(self, now: float) -> None:
        dtls = self._dtls
        if dtls.state is DtlsState.HANDSHAKING:
            to = self._ice.nominated or self._ice.checked
            was = dtls.state
            for datagram in dtls.handle_timeout():
                if to is not None:
                    self._write(self._pair.rtp, datagram, to)
            self._webrtc_keyed(was)
        if not self._consent_lost and self._ice.consent_expired(now):
            self._consent_lost = True
            self._counters["consent_expired"] += 1
            self._remote = None  # RFC 7675 5.1: stop sending
            log.msg(f"RtpSession {self.local_port}: ICE consent expired")
            self._media_gone()
