"""SRTP and SRTCP (RFC 3711, RFC 7714) for one RTP session: a thin wrapper over pylibsrtp.

What the call layer must do (the lead wires this; nothing below calls it yet)
-----------------------------------------------------------------------------
1. Negotiate with the leg's policy and transport (``ivr.sdp``; ``media_encryption`` is
   ``"required" | "optional" | "off"`` from the extension or trunk, ``secure_signalling`` is
   True when the INVITE came, or goes, over TLS)::

       make_answer(offer, ip, port, ..., media_encryption=policy,
                   secure_signalling=tls, allow_insecure_keys=override,
                   srtp_suites=supported_suites())
       make_reanswer(offer, previous, ip, port, ..., same four)    # keeps our key
       make_offer(ip, port, ..., media_encryption=policy, offer_srtp=None,
                  secure_signalling=tls, allow_insecure_keys=override,
                  crypto_suites=DEFAULT_SUITES)       # ivr.sdp.crypto; KeysNeedTls if no TLS
       negotiate_answer(our_offer, their_answer)   # our offer already holds the policy

   A refusal raises :class:`~ivr.sdp.offer_answer.OfferAnswerError` (488; ``warn_code`` and
   ``str(error)`` make the Warning header) like every other SDP refusal.  The returned
   ``NegotiatedMedia.srtp`` is None for plain RTP, else an ``SrtpKeys`` (suite, tag, our key,
   their key; their ``repr`` hides the keys: never log them).
2. Key the leg's session: ``rtp.set_srtp(SrtpContext.from_keys(negotiated.srtp))`` before
   ``set_remote`` (or ``rtp.set_srtp(None)`` for plain).  On a re-INVITE, call ``set_srtp``
   again only when ``negotiated.srtp`` changed (a new context restarts the replay window
   and the rollover counter).
3. Report: ``rtp.stats()`` holds ``media_encryption`` (``"srtp"`` or ``"off"``),
   ``srtp_suite`` and the drop counters ``srtp_auth_failures``, ``srtp_replays``,
   ``srtp_bad_packets`` and ``srtp_protect_errors`` for the CDR and the metrics.
4. A bridge of an SRTP leg and a plain one needs nothing more: each session decrypts on
   arrival and encrypts on sending, so the relay between them sees plain payloads.

The context
-----------
One :class:`SrtpContext` per stream holds two libsrtp sessions: the outbound one keyed with
our master key (any SSRC we send) and the inbound one keyed with the peer's (any SSRC it
sends; libsrtp keeps a replay window per SSRC, default 128 packets, on for both SRTP and
SRTCP).  ``unprotect``/``unprotect_rtcp`` return the plain packet, or None when the packet
is dropped: a failed authentication (wrong key, forged or damaged packet, a plain packet on
an SRTP stream), a replay, or a packet too short or too long to be SRTP.  Each drop is
counted, never raised.  All the cryptography is libsrtp's.

Pure in the sense of the house rules: bytes in, bytes out; no Twisted, no clock, no socket.
"""
from __future__ import annotations

import threading

import pylibsrtp
from pylibsrtp import _binding

__all__ = ["SrtpContext", "SUITE_PROFILES", "supported_suites", "native_entry_points"]

_P = pylibsrtp.Policy
_ffi, _lib = _binding.ffi, _binding.lib
_srtp_protect, _srtp_unprotect = _lib.srtp_protect, _lib.srtp_unprotect
_srtp_protect_rtcp, _srtp_unprotect_rtcp = _lib.srtp_protect_rtcp, _lib.srtp_unprotect_rtcp
#: SDES suite name (RFC 4568, RFC 7714) -> libsrtp profile.  The _32 profile keeps SRTCP's
#: 80-bit tag, as RFC 4568 6.2.2 requires (libsrtp's profile does it).
SUITE_PROFILES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": _P.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": _P.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": _P.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": _P.SRTP_PROFILE_AEAD_AES_256_GCM,
}


def _works(profile: int) -> bool:
    """The library was built with this profile (GCM needs libsrtp built against OpenSSL)."""
    try:
        key = bytes(_key_length(profile))
        out = pylibsrtp.Session(_P(key, _P.SSRC_ANY_OUTBOUND, srtp_profile=profile))
        inb = pylibsrtp.Session(_P(key, _P.SSRC_ANY_INBOUND, srtp_profile=profile))
        packet = b"\x80\x00\x00\x01" + bytes(8) + bytes(20)
        return inb.unprotect(out.protect(packet)) == packet
    except (pylibsrtp.Error, ValueError):
        return False


def _key_length(profile: int) -> int:
    """Master key + master salt, in bytes, as libsrtp wants them for ``profile``."""
    return (_lib.srtp_profile_get_master_key_length(profile)
            + _lib.srtp_profile_get_master_salt_length(profile))


def native_entry_points() -> tuple[int, int, int, int]:
    """The addresses of ``srtp_protect``, ``srtp_unprotect``, ``srtp_protect_rtcp`` and
    ``srtp_unprotect_rtcp`` in pylibsrtp's own copy of libsrtp, for the batched socket
    extension (``ivr_set_srtp``): every srtp_t is then served by the library that made it,
    and no second libsrtp is ever linked."""
    return tuple(int(_ffi.cast("uintptr_t", _ffi.addressof(_lib, name)))
                 for name in ("srtp_protect", "srtp_unprotect", "srtp_protect_rtcp",
                              "srtp_unprotect_rtcp"))


_SUPPORTED: tuple[str, ...] | None = None


def supported_suites() -> tuple[str, ...]:
    """The suites of SUITE_PROFILES this libsrtp can run (checked once)."""
    global _SUPPORTED
    if _SUPPORTED is None:
        _SUPPORTED = tuple(s for s, p in SUITE_PROFILES.items() if _works(p))
    return _SUPPORTED


# libsrtp's status codes for the drops we count (srtp_err_status_t)
_AUTH_FAIL, _REPLAY_FAIL, _REPLAY_OLD = 7, 9, 10
_BUFFER = 1500                    # pylibsrtp's own limit: an Ethernet MTU
_RTP_ROOM = _BUFFER - (16 + 128)  # the longest packet we protect: room for tag and MKI
_RTCP_ROOM = _BUFFER - (4 + 16 + 128)


_local = threading.local()


def _scratch():
    """This thread's buffer, its cffi view and length cell, shared by every context made on
    the thread: one warm 1500-byte buffer instead of one per stream (at hundreds of streams
    each packet otherwise lands in cold cache lines; bench/README.md "B7").  Every result
    is copied out of it before the call returns, so sharing it is safe on one thread."""
    scratch = getattr(_local, "scratch", None)
    if scratch is None:
        buf = _ffi.new("char[]", _BUFFER)
        scratch = _local.scratch = (buf, _ffi.buffer(buf), _ffi.new("int *"))
    return scratch


class SrtpContext:
    """Both directions of one SRTP stream (see the module docstring).

    The per-packet path calls libsrtp's ``srtp_protect``/``srtp_unprotect`` through
    pylibsrtp's own cffi binding, in place in one scratch buffer shared by the contexts made
    on the same thread (bench/README.md "B7"): one copy in, one copy out, no allocation but
    the result.  pylibsrtp's ``Session``
    still creates and frees the libsrtp sessions; if a pylibsrtp release stops exposing its
    session handle, its ``protect``/``unprotect`` methods are used instead (same results,
    slower).  Not thread-safe: one context belongs to one stream and is used on the thread
    that made it (the reactor's)."""

    __slots__ = ("suite", "_out", "_in", "_tx", "_rx", "_buf", "_view", "_len", "_fallback",
                 "tx_address", "rx_address",
                 "auth_failures", "replays", "bad_packets", "protect_errors")

    def __init__(self, suite: str, local_key: bytes, remote_key: bytes) -> None:
        profile = SUITE_PROFILES.get(suite)
        if profile is None:
            raise ValueError(f"unsupported SRTP suite {suite!r}")
        length = _key_length(profile)
        for name, key in (("local", local_key), ("remote", remote_key)):
            if not isinstance(key, bytes) or len(key) != length:
                raise ValueError(f"{suite} needs a {length}-byte {name} master key and salt")
        self.suite = suite
        # the Session objects own the libsrtp sessions (freed with them): keep them
        self._out = pylibsrtp.Session(_P(local_key, _P.SSRC_ANY_OUTBOUND, srtp_profile=profile))
        self._in = pylibsrtp.Session(_P(remote_key, _P.SSRC_ANY_INBOUND, srtp_profile=profile))
        handles = (getattr(self._out, "_srtp", None), getattr(self._in, "_srtp", None))
        self._fallback = None in handles
        self.tx_address = self.rx_address = 0  # the srtp_t addresses (native_handles)
        if not self._fallback:
            self._tx, self._rx = handles[0][0], handles[1][0]  # srtp_t
            self._buf, self._view, self._len = _scratch()
            self.tx_address = int(_ffi.cast("uintptr_t", self._tx))
            self.rx_address = int(_ffi.cast("uintptr_t", self._rx))
        self.auth_failures = 0   # wrong key, forged, damaged, or a plain packet
        self.replays = 0         # a packet index seen before, or older than the window
        self.bad_packets = 0     # too short / too long / unparsable as SRTP
        self.protect_errors = 0  # our own packet could not be protected (never sent)

    @classmethod
    def from_keys(cls, keys) -> "SrtpContext":
        """From offer/answer's result (``ivr.sdp.crypto.SrtpKeys``: suite, local_key, remote_key)."""
        return cls(keys.suite, keys.local_key, keys.remote_key)

    # ------------------------------------------------------------------ sending
    def protect(self, packet: bytes) -> bytes | None:
        """The SRTP packet for the RTP ``packet``, or None (counted) when it cannot be."""
        n = len(packet)
        if self._fallback or not 12 <= n <= _RTP_ROOM:
            return self._slow(self._out.protect, packet, True)
        # inline (no helper call): this and unprotect run once per packet (bench B7)
        view, length = self._view, self._len
        view[0:n] = packet
        length[0] = n
        if _srtp_protect(self._tx, self._buf, length):
            self.protect_errors += 1
            return None
        return view[0:length[0]]

    def protect_rtcp(self, packet: bytes) -> bytes | None:
        if self._fallback or not 8 <= len(packet) <= _RTCP_ROOM:
            return self._slow(self._out.protect_rtcp, packet, True)
        if self._in_place(_srtp_protect_rtcp, self._tx, packet):
            self.protect_errors += 1
            return None
        return self._view[0:self._len[0]]

    # ------------------------------------------------------------------ receiving
    def unprotect(self, packet: bytes) -> bytes | None:
        """The RTP packet inside the SRTP ``packet``, or None when it is dropped (counted)."""
        if self._fallback or type(packet) is not bytes:
            return self._slow(self._in.unprotect, packet, False)
        n = len(packet)
        if n > _BUFFER:
            self.bad_packets += 1
            return None
        view, length = self._view, self._len
        view[0:n] = packet
        length[0] = n
        status = _srtp_unprotect(self._rx, self._buf, length)
        if status:
            self._drop(status)
            return None
        return view[0:length[0]]

    def unprotect_rtcp(self, packet: bytes) -> bytes | None:
        if self._fallback or type(packet) is not bytes:
            return self._slow(self._in.unprotect_rtcp, packet, False)
        if len(packet) > _BUFFER:
            self.bad_packets += 1
            return None
        status = self._in_place(_srtp_unprotect_rtcp, self._rx, packet)
        if status:
            self._drop(status)
            return None
        return self._view[0:self._len[0]]

    def _in_place(self, function, session, packet: bytes) -> int:
        """libsrtp's ``function`` on ``packet`` in this context's buffer: its status."""
        n = len(packet)
        self._view[0:n] = packet
        self._len[0] = n
        return function(session, self._buf, self._len)

    @property
    def native_handles(self) -> tuple[int, int] | None:
        """``(outbound, inbound)`` libsrtp sessions (``srtp_t``) as addresses, for the batched
        socket extension (:mod:`ivr.rtp.mmsg`), which protects and unprotects in its buffers
        with the same library (:func:`native_entry_points`); None in the fallback mode.
        They live as long as this context: whoever holds one holds the context too."""
        if self._fallback:
            return None
        return (self.tx_address, self.rx_address)

    def count_drop(self, status: int) -> None:
        """Count a received packet that libsrtp refused with ``status`` (its
        ``srtp_err_status_t``; 1, ``fail``, for one too long to be SRTP), as
        :meth:`unprotect` counts its own."""
        self._drop(status)

    def count_protect_error(self) -> None:
        self.protect_errors += 1

    def _drop(self, status: int) -> None:
        if status == _AUTH_FAIL:
            self.auth_failures += 1
        elif status in (_REPLAY_FAIL, _REPLAY_OLD):
            self.replays += 1
        else:
            self.bad_packets += 1

    def _slow(self, method, packet, sending: bool) -> bytes | None:
        """Through pylibsrtp's Session methods: the fallback, and the odd packets (too
        short or too long for the buffer, not bytes) whose errors it words for us."""
        try:
            return method(packet)
        except pylibsrtp.Error as e:
            if sending:
                self.protect_errors += 1
            else:
                self._count(e)
        except (ValueError, TypeError):  # longer than the library's buffer, or not bytes
            if sending:
                self.protect_errors += 1
            else:
                self.bad_packets += 1
        return None

    def _count(self, error: Exception) -> None:
        text = str(error)
        if text.startswith("authentication failure"):
            self.auth_failures += 1
        elif text.startswith("replay check failed"):
            self.replays += 1
        else:
            self.bad_packets += 1

    def stats(self) -> dict:
        return {"srtp_suite": self.suite, "srtp_auth_failures": self.auth_failures,
                "srtp_replays": self.replays, "srtp_bad_packets": self.bad_packets,
                "srtp_protect_errors": self.protect_errors}

    def __repr__(self) -> str:  # never the keys
        return f"<SrtpContext {self.suite}>"
