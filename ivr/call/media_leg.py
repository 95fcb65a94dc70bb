"""The media side of one call leg: its RTP session (and so its port pair), the SDP
offer/answer that points it at the far end, in-band DTMF when the far end has no
telephone-event, playback with barge-in, and the release of all of it when the call ends.

The SDP text comes from and goes to the signalling leg; this module only turns offers into
answers (or makes offers) and applies what was negotiated to the RTP session.

SRTP: every offer and answer is made under the leg's ``encryption`` policy and its SIP
transport (:mod:`ivr.call.encryption`; keys only over TLS unless the server allows them
over plain hops).  A refusal is an SdpError (488 with a Warning) like any other.  The
negotiated keys key the RTP session (``set_srtp``) before it is pointed at the far end; a
re-INVITE that keeps the keys keeps the context (its replay window and rollover counter),
one that changes them re-keys, and one that drops them goes back to plain RTP.

WebRTC (an offer in ``UDP/TLS/RTP/SAVP(F)``): answered by :mod:`ivr.call.webrtc`: ICE-lite
and DTLS-SRTP with the server's certificate; the session sends nothing until ICE nominates
and DTLS keys SRTP.  A re-offer that keeps the ICE credentials and fingerprint (a direction
change) gets our answer again; an ICE restart or a new certificate gets 488.
"""
from __future__ import annotations

import secrets
from typing import Callable

from twisted.internet import defer
from twisted.logger import Logger

from ..media.player import PcmSource
from ..rtp.ports import PortsExhausted
from ..rtp.session import PlaybackStopped, RtpSession, SessionClosed
from ..rtp.srtp import SrtpContext, supported_suites
from ..sdp import make_answer, make_offer, make_reanswer, negotiate_answer, parse_sdp, serialize_sdp
from ..sdp.crypto import DEFAULT_SUITES, CryptoAttribute, MediaEncryption, crypto_attributes
from ..sdp.offer_answer import EncryptionRefused, KeysNeedTls, OfferAnswerError
from .encryption import SECURE, describe
from ..sdp.webrtc import make_webrtc_answer
from .webrtc import is_webrtc_offer, webrtc_answer
from .interface import CallEnded, PlaybackResult

log = Logger(namespace="ivr.call.media")
_UNSET = object()


def _ignore_digit(digit: str, mode: str) -> None:
    """A digit reported after the leg was released (nothing listens any more)."""


def _ignore_timeout() -> None:
    """A media timeout reported after the leg was released."""


class MediaLeg:
    def __init__(self, ctx, on_digit: Callable[[str, str], object],
                 on_timeout: Callable[[], None]) -> None:
        self.ctx = ctx  # ivr.call.call.MediaContext
        self._on_digit = on_digit  # (digit, mode): RFC 4733 and in-band digits
        self._on_timeout = on_timeout  # no RTP for ctx.media_timeout seconds
        self.rtp: RtpSession | None = None
        self.negotiated = None  # ivr.sdp.NegotiatedMedia, once an offer/answer completed
        self.local_sdp = None  # the SessionDescription we sent last (offer or answer)
        self.session_id = secrets.randbelow(2**31)
        self._inband = None
        self._inband_wanted = True  # False while a bridge needs none of our digits
        self.stats: dict = {}  # the RTP session's counters, kept when it is released
        self.released_by: str | None = None  # the call's end reason, once released
        #: SRTP policy (required | optional | off): the server's default until the leg's
        #: owner knows better (its extension or trunk, ivr.call.encryption).
        self.encryption: str = getattr(ctx, "media_encryption", "optional")
        self.sip_transport: str | None = None  # udp | tcp | tls: the leg's SIP hop
        self.on_event: Callable[..., None] | None = None  # the call's path log
        self.srtp_keys = _UNSET  # the keys the RTP session runs with (None: plain)
        self.webrtc = None  # ivr.sdp.webrtc.WebrtcMedia of a WebRTC leg
        #: ivr.call.media_relay.Anchor while the far end sends to rtpengine, not to us
        self.relayed_by = None

    # -- encryption --------------------------------------------------------------------
    @property
    def secure_signalling(self) -> bool:
        """Keys in our SDP travel only inside TLS (SIP over TLS, or WebSocket over TLS)."""
        return self.sip_transport in SECURE

    @property
    def _insecure_keys(self) -> bool:
        return bool(getattr(self.ctx, "allow_insecure_srtp_keys", False))

    def _answer_terms(self) -> dict:
        return dict(media_encryption=self.encryption, secure_signalling=self.secure_signalling,
                    allow_insecure_keys=self._insecure_keys, srtp_suites=supported_suites())

    def _make_offer(self, port: int, version: int, keep_srtp: bool = False):
        """Our offer under the policy: RTP/SAVP when ``required`` (or, with ``optional``,
        when the call is encrypted already and ``keep_srtp``: a re-offer keeps our key);
        EncryptionRefused (488, Warning 399) when keys would cross a plain hop."""
        policy = MediaEncryption.of(self.encryption)
        srtp = policy is MediaEncryption.REQUIRED or (
            policy is MediaEncryption.OPTIONAL and keep_srtp)
        crypto = self._our_crypto() if srtp and keep_srtp else None
        suites = tuple(s for s in DEFAULT_SUITES if s in supported_suites())
        try:
            offer = make_offer(self.ctx.advertise, port, session_id=self.session_id,
                               version=version, media_encryption=policy,
                               offer_srtp=srtp if policy is MediaEncryption.OPTIONAL else None,
                               secure_signalling=self.secure_signalling,
                               allow_insecure_keys=self._insecure_keys,
                               crypto_suites=suites, crypto=crypto or None)
        except KeysNeedTls as exc:
            raise EncryptionRefused(str(exc), warn_code=399) from None
        if srtp and not self.secure_signalling:
            self._insecure_use("offered")
        return offer

    def _check_offer(self) -> None:
        """EncryptionRefused (Warning 399) when the policy makes us offer keys over a
        plain hop without the override."""
        if (MediaEncryption.of(self.encryption) is MediaEncryption.REQUIRED
                and not (self.secure_signalling or self._insecure_keys)):
            raise EncryptionRefused("media_encryption is required but SRTP keys are only "
                                    "offered over TLS (sips): the hop is "
                                    f"{self.sip_transport or 'not TLS'}", warn_code=399)

    def _our_crypto(self) -> tuple:
        """The a=crypto lines of our last SDP (a re-offer keeps our key)."""
        if self.local_sdp is None:
            return ()
        return tuple(line for m in self.local_sdp.media
                     for line in crypto_attributes(m.attributes)
                     if isinstance(line, CryptoAttribute))

    def _insecure_use(self, what: str) -> None:
        log.warn("SRTP keys {what} over {t} (not TLS): allowed by allow_insecure_srtp_keys",
                 what=what, t=self.sip_transport or "an unknown transport")
        self._event("insecure_srtp_keys", what=what, transport=self.sip_transport)

    def _event(self, event: str, **fields) -> None:
        if self.on_event is not None:
            self.on_event(event, **fields)

    def _key(self, rtp: RtpSession, keys) -> None:
        """Run the RTP session with ``keys`` (None: plain), keeping its context while
        they are the same keys."""
        if keys == self.srtp_keys:
            return
        first = self.srtp_keys is _UNSET
        rtp.set_srtp(SrtpContext.from_keys(keys) if keys is not None else None)
        self.srtp_keys = keys
        self._event("media_encryption", media=describe(keys), transport=self.sip_transport,
                    **({} if first else {"rekeyed": True}))
        if keys is not None and not self.secure_signalling:
            self._insecure_use("accepted")

    @property
    def media_encryption(self) -> str:
        """``srtp:<suite>``, ``dtls-srtp`` or ``none``: what the leg's media ran with (the
        CDR's)."""
        if self.webrtc is not None:
            return "dtls-srtp"
        return describe(None if self.srtp_keys is _UNSET else self.srtp_keys)

    # -- the RTP session ---------------------------------------------------------------
    def ensure_rtp(self) -> RtpSession:
        """The leg's RTP session, opened (taking a port pair) on first use; raises
        PortsExhausted when none is free."""
        if self.rtp is None:
            self.rtp = RtpSession(self.ctx.reactor, self.ctx.media_clock, host=self.ctx.bind_host,
                                  ports=self.ctx.ports, media_timeout=self.ctx.media_timeout)
            self.rtp.on_dtmf(lambda digit, source="rfc4733": self._on_digit(digit, "rfc4733"))
            self.rtp.on_timeout(self._on_timeout)
        return self.rtp

    def apply(self, negotiated) -> None:
        """Send to where ``negotiated`` says, in its codec and direction; detect in-band
        DTMF exactly when no telephone-event was negotiated (and a bridge has not said the
        digits are not wanted: :meth:`want_inband`)."""
        self.negotiated = negotiated
        rtp = self.ensure_rtp()
        self._key(rtp, negotiated.srtp)  # before set_remote: no packet goes out unkeyed
        rtp.set_remote(negotiated.remote_ip, negotiated.remote_port, negotiated.payload_type,
                       negotiated.codec, negotiated.telephone_event_pt,
                       ptime=negotiated.ptime, rtcp_port=negotiated.rtcp_port,
                       rtcp_ip=negotiated.rtcp_ip, rtcp_mux=negotiated.rtcp_mux)
        rtp.set_direction(negotiated.direction.value)
        self._update_inband()

    def want_inband(self, wanted: bool) -> None:
        """Whether anything needs this leg's in-band digits.  A bridge says no while the
        other leg takes no RFC 4733 events: the tones cross the bridge in the audio anyway,
        no digit would be re-sent, and detecting them costs the relay a decoded copy of every
        packet and the detector's pass (a third of the relay's Python time where a bridge
        does need them, bench/README.md, B3).  Detection resumes when the bridge lets go."""
        self._inband_wanted = wanted
        self._update_inband()

    def _update_inband(self) -> None:
        """Detect in-band DTMF exactly while no telephone-event was negotiated and the
        digits are wanted."""
        negotiated, rtp = self.negotiated, self.rtp
        if negotiated is None or rtp is None or self.released_by is not None:
            return  # nothing to listen to, or released (its channel closed for good)
        if (negotiated.telephone_event_pt is None and self.ctx.inband is not None
                and self._inband_wanted):
            if self._inband is None:
                self._inband = self.ctx.inband.open(lambda d: self._on_digit(d, "inband"))
                rtp.add_audio_listener(self._inband)
        elif self._inband is not None:
            rtp.remove_audio_listener(self._inband)
            self._inband.close()
            self._inband = None

    # -- offer/answer ------------------------------------------------------------------
    def answer_invite(self, offer: bytes | None) -> bytes:
        """Our SDP for a 18x/200 to an INVITE: the answer to its ``offer``, or our offer
        when it had none (the answer then comes in the ACK).  Once made it is kept, so a
        183 and the 200 after it carry the same SDP.  Raises SdpError (400 for a malformed
        offer, before any port is taken; 488 for no common codec) or PortsExhausted."""
        if self.local_sdp is not None:
            return serialize_sdp(self.local_sdp)
        if offer:
            parsed = parse_sdp(offer)
            if is_webrtc_offer(parsed):
                return self._answer_webrtc(parsed)
            try:
                rtp = self.ensure_rtp()
            except PortsExhausted:
                # An offer with no codec of ours (or refused by policy) is still a 488,
                # not a 503.
                make_answer(parsed, self.ctx.advertise, 9, session_id=self.session_id,
                            version=1, **self._answer_terms())
                raise
            answer, negotiated = make_answer(parsed, self.ctx.advertise, rtp.local_port,
                                             session_id=self.session_id, version=1,
                                             **self._answer_terms())
            self.local_sdp = answer
            self.apply(negotiated)
        else:
            self._check_offer()  # refused by policy: 488 before a port is taken
            self.local_sdp = self._make_offer(self.ensure_rtp().local_port, 1)
        return serialize_sdp(self.local_sdp)

    def _answer_webrtc(self, offer) -> bytes:
        certificate = getattr(self.ctx, "dtls_certificate", None)
        if certificate is None:
            raise OfferAnswerError("DTLS-SRTP (WebRTC) media is not enabled here")
        answer, webrtc = webrtc_answer(offer, self.ensure_rtp(), self.ctx.advertise,
                                       certificate, session_id=self.session_id, version=1)
        self.local_sdp, self.webrtc, self.negotiated = answer, webrtc, webrtc.negotiated
        self.rtp.set_direction(webrtc.negotiated.direction.value)
        self._event("webrtc", setup=webrtc.setup, codec=webrtc.negotiated.codec)
        return serialize_sdp(answer)

    def _reoffered_webrtc(self, offer) -> bytes:
        """A re-offer on a WebRTC leg: the same ICE credentials and certificate (hold,
        unhold) keep the media and get our answer again (ICE and DTLS untouched); an ICE
        restart or a new certificate is 488 and leaves the media as it was."""
        ours = next(m for m in self.local_sdp.media if m.attribute("ice-ufrag"))
        answer, webrtc = make_webrtc_answer(
            offer, self.ctx.advertise, self.rtp.local_port, session_id=self.session_id,
            version=self.local_sdp.origin.sess_version + 1,
            ice_ufrag=ours.attribute("ice-ufrag"), ice_pwd=ours.attribute("ice-pwd"),
            fingerprint=ours.attribute("fingerprint"))
        if (webrtc.remote_ufrag, webrtc.remote_fingerprint) != (
                self.webrtc.remote_ufrag, self.webrtc.remote_fingerprint):
            raise OfferAnswerError("ICE restart or a new DTLS certificate is not supported")
        self.local_sdp, self.negotiated = answer, webrtc.negotiated
        self.rtp.set_direction(webrtc.negotiated.direction.value)
        return serialize_sdp(answer)

    def offer(self) -> bytes:
        """Our offer for an INVITE we send (an outbound leg).  Raises EncryptionRefused
        when the policy needs SRTP keys and the hop is not TLS."""
        self._check_offer()  # before a port is taken
        self.local_sdp = self._make_offer(self.ensure_rtp().local_port, 1)
        return serialize_sdp(self.local_sdp)

    def reoffered(self, sdp: bytes | None) -> bytes:
        """A re-INVITE or UPDATE (hold, unhold, a new address): our answer to ``sdp``, or,
        when it has none, a new offer of ours (its answer comes in the ACK).  Raises
        SdpError and leaves the media as it was when ``sdp`` cannot be answered.  A leg
        whose media is at rtpengine comes back to ours first (the bridge then relays)."""
        if self.relayed_by is not None and sdp is not None:
            self.relayed_by.relay.leg_reoffered(self)
        rtp = self.ensure_rtp()
        if sdp is None:
            version = self.local_sdp.origin.sess_version + 1 if self.local_sdp else 1
            encrypted = self.srtp_keys not in (None, _UNSET)
            self.local_sdp = self._make_offer(rtp.local_port, version, keep_srtp=encrypted)
            self.negotiated = None
            return serialize_sdp(self.local_sdp)
        offer = parse_sdp(sdp)
        if self.webrtc is not None:
            return self._reoffered_webrtc(offer)
        if self.local_sdp is not None:
            answer, negotiated = make_reanswer(offer, self.local_sdp, self.ctx.advertise,
                                               rtp.local_port, **self._answer_terms())
        else:
            answer, negotiated = make_answer(offer, self.ctx.advertise, rtp.local_port,
                                             session_id=self.session_id, version=1,
                                             **self._answer_terms())
        self.local_sdp = answer
        self.apply(negotiated)
        return serialize_sdp(answer)

    def answered(self, sdp: bytes):
        """The far end's answer to our offer: applied, and returned (NegotiatedMedia).
        Raises SdpError when it cannot be used; the media is then left as it was.  An
        answer to an offer that points the far end at rtpengine is checked, not applied:
        our RTP session stays idle."""
        negotiated = negotiate_answer(self.local_sdp, parse_sdp(sdp))
        if self.relayed_by is not None:
            return negotiated
        self.apply(negotiated)
        return negotiated

    # -- playback ----------------------------------------------------------------------
    def play(self, audio, digits=None) -> defer.Deferred:
        """Play int16 8 kHz audio; fires with a PlaybackResult, or fails with CallEnded
        when the leg is released meanwhile.  With ``digits`` (a DigitBuffer) a digit barges
        in: one already buffered stops the playback before it starts."""
        if digits is not None and digits.first() is not None:
            return defer.succeed(PlaybackResult(False, digits.first()))
        rtp = self.ensure_rtp()
        result = defer.Deferred()
        interrupted: list[str] = []

        def on_digit(digit: str) -> None:
            interrupted.append(digit)
            rtp.stop_playback("barge-in")

        def finished():
            if digits is not None and digits.barge_in is on_digit:
                digits.barge_in = None

        def done(_):
            finished()
            result.callback(PlaybackResult(True))

        def stopped(failure):
            finished()
            if self.released_by is not None:
                result.errback(CallEnded(self.released_by))
            elif failure.check(PlaybackStopped) and interrupted:
                result.callback(PlaybackResult(False, interrupted[0]))
            elif failure.check(PlaybackStopped, SessionClosed):
                result.callback(PlaybackResult(False))
            else:
                result.errback(failure)

        playing = rtp.play(PcmSource(audio))  # stops (and settles) the one before it
        if digits is not None:
            digits.barge_in = on_digit
        playing.addCallbacks(done, stopped)
        return result

    def stop_playback(self) -> None:
        if self.rtp is not None:
            self.rtp.stop_playback("stopped")

    # -- release -----------------------------------------------------------------------
    def release(self, reason: str) -> None:
        """The call ended (``reason``): stop in-band detection, keep the RTP counters in
        ``stats`` and close the RTP session, which releases its ports."""
        self.released_by = reason
        if self._inband is not None:
            inband, self._inband = self._inband, None
            inband.close()
        if self.rtp is not None:
            self.stats = self.rtp.stats()
            self.rtp.close()  # which drops its callbacks to us
        # The call's bound methods: without them the ended call is freed by reference
        # counting, not left in a cycle for the garbage collector.
        self.on_event = None
        self._on_digit = _ignore_digit
        self._on_timeout = _ignore_timeout
