"""The WebRTC flavour of the SDP answer (RFC 8829 as browsers speak it, RFC 8843 BUNDLE,
RFC 8839 ICE, RFC 5763/8842 DTLS-SRTP).  Pure.

An offer is WebRTC when its audio stream is ``UDP/TLS/RTP/SAVP(F)`` (see
:func:`is_webrtc_offer`).  :func:`make_webrtc_answer` accepts the first such audio stream
that shares a codec with us (browsers list Opus first; we choose PCMU or PCMA, in the
offer's order, and ``telephone-event/8000``) and rejects every other m= line (video, data
channels).  The answer carries, at session level, ``a=ice-lite`` and, when the offer
bundled the stream, ``a=group:BUNDLE <mid>``; on the stream ``a=mid``, ``a=rtcp-mux``,
our ``a=ice-ufrag``/``a=ice-pwd``, one host candidate on the RTP port with
``a=end-of-candidates``, ``a=fingerprint`` and ``a=setup`` (``passive`` to ``actpass`` or
``active``, ``active`` to ``passive``).  ``a=ssrc``, ``a=msid``, ``a=extmap``,
``a=rtcp-fb``, ``a=ice-options`` and the offer's candidates are ignored: the lite agent
learns the peer's address from its checks.

Refusals are 488 like every other (:class:`~ivr.sdp.offer_answer.OfferAnswerError`): no
ICE credentials, no ``a=rtcp-mux`` (we have one port and one ICE component), no usable
``a=fingerprint``, ``a=setup:holdconn``, no common codec.
What the media layer needs is :class:`WebrtcMedia`: the negotiated stream and the peer's
ICE username fragment, its fingerprint and our DTLS role.
"""
from __future__ import annotations

from dataclasses import dataclass

from .offer_answer import (
    DEFAULT_PTIME, NegotiatedMedia, NoCommonCodec, OfferAnswerError, _audio_media, _maxptime,
    _normalise_codecs, _pick_codec, _rejected, _session, _telephone_event_pt, send_ptime,
)
from .rtcp_attrs import MUX_ATTRIBUTE, offers_mux
from .session import Direction, MediaDescription, SessionDescription

__all__ = ["WEBRTC_PROTOS", "WebrtcMedia", "is_webrtc_offer", "make_webrtc_answer",
           "candidate_value", "FINGERPRINT_HASHES"]

WEBRTC_PROTOS = frozenset({"UDP/TLS/RTP/SAVPF", "UDP/TLS/RTP/SAVP"})
#: a=fingerprint hash functions we check (RFC 8122) -> digest length in bytes
FINGERPRINT_HASHES = {"sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64}
_HEX = frozenset("0123456789ABCDEF")


@dataclass(frozen=True)
class WebrtcMedia:
    negotiated: NegotiatedMedia
    remote_ufrag: str
    remote_pwd: str
    remote_fingerprint: tuple[str, str]  # (hash name, upper-case hex with colons)
    setup: str                           # OUR role: "passive" (DTLS server) or "active"
    mid: str | None


def is_webrtc_offer(offer: SessionDescription) -> bool:
    """Its first audio stream asks for DTLS-SRTP (UDP/TLS/RTP/SAVP or SAVPF)."""
    for m in offer.media:
        if m.media == "audio" and m.port:
            return m.proto.upper() in WEBRTC_PROTOS
    return False


def candidate_value(ip: str, port: int) -> str:
    """Our one host candidate (RFC 8839 5.1): component 1, UDP, host type preference 126."""
    priority = (126 << 24) | (65535 << 8) | 255
    return f"1 1 udp {priority} {ip} {port} typ host"


def _attr(m: MediaDescription, offer: SessionDescription, name: str) -> str | None:
    """Media-level attribute, else session-level (ICE and DTLS attributes may be either)."""
    value = m.attribute(name)
    return value if value is not None else offer.attribute(name)


def _fingerprint(value: str | None) -> tuple[str, str]:
    parts = (value or "").split()
    if len(parts) == 2 and parts[0].lower() in FINGERPRINT_HASHES:
        algorithm, digest = parts[0].lower(), parts[1].upper()
        octets = digest.split(":")
        if len(octets) == FINGERPRINT_HASHES[algorithm] and all(
                len(o) == 2 and set(o) <= _HEX for o in octets):
            return algorithm, digest
    raise OfferAnswerError(f"no usable a=fingerprint ({value!r})", warn_code=306)


def _our_setup(value: str | None) -> str:
    theirs = (value or "active").strip().lower()  # RFC 4145: absent means active
    if theirs in ("actpass", "active"):
        return "passive"
    if theirs == "passive":
        return "active"
    raise OfferAnswerError(f"a=setup:{theirs} cannot start a DTLS association", warn_code=302)


def _bundled(offer: SessionDescription, mid: str | None) -> bool:
    if mid is None:
        return False
    for name, value in offer.attributes:
        if name == "group" and value:
            parts = value.split()
            if parts[0].upper() == "BUNDLE" and mid in parts[1:]:
                return True
    return False


def make_webrtc_answer(offer: SessionDescription, local_ip: str, port: int, *,
                       session_id: int | str, version: int, ice_ufrag: str, ice_pwd: str,
                       fingerprint: str, supported=("PCMU", "PCMA"),
                       ptime: int | None = DEFAULT_PTIME, telephone_event: bool = True,
                       direction: Direction = Direction.SENDRECV,
                       ) -> tuple[SessionDescription, WebrtcMedia]:
    """Answer a WebRTC offer (see the module docstring).  ``fingerprint`` is ours
    (``sha-256 AB:..``); ``ice_ufrag``/``ice_pwd`` are our ICE credentials."""
    allowed = _normalise_codecs(supported)
    answer_media: list[MediaDescription] = []
    result: WebrtcMedia | None = None
    for index, m in enumerate(offer.media):
        usable = (result is None and m.media == "audio" and not m.rejected
                  and m.proto.upper() in WEBRTC_PROTOS)
        codecs = m.codecs if usable else None
        pick = _pick_codec(m, allowed, codecs) if codecs is not None else None
        if pick is None:
            answer_media.append(_rejected(m))
            continue
        ufrag, pwd = _attr(m, offer, "ice-ufrag"), _attr(m, offer, "ice-pwd")
        if not ufrag or not pwd:
            raise OfferAnswerError("WebRTC offer without a=ice-ufrag and a=ice-pwd",
                                   warn_code=399)
        if not offers_mux(m):
            # One port, one host candidate (component 1): RTCP on its own port would need a
            # component-2 candidate and a second DTLS association (RFC 5764 4.1).  Answering
            # without a=rtcp-mux left a full ICE agent (baresip with rtcp_mux no) checking
            # for a component 2 we never offered: ICE failed and the call stayed silent.
            raise OfferAnswerError("WebRTC offer without a=rtcp-mux: RTCP must share the "
                                   "RTP port (RFC 5761)", warn_code=399)
        remote_fingerprint = _fingerprint(_attr(m, offer, "fingerprint"))
        setup = _our_setup(_attr(m, offer, "setup"))
        codec, pt = pick
        te_pt = _telephone_event_pt(m, codecs) if telephone_event else None
        offered = m.direction(offer)
        ours = offered.reverse().intersect(direction)
        media = _audio_media(port, [(codec, pt)], te_pt, ptime, ours, proto=m.proto)
        mid = m.attribute("mid")
        extra: list[tuple[str, str | None]] = []
        if mid is not None:
            extra.append(("mid", mid))
        if offers_mux(m):
            extra.append((MUX_ATTRIBUTE, None))
        extra += [("ice-ufrag", ice_ufrag), ("ice-pwd", ice_pwd),
                  ("fingerprint", fingerprint), ("setup", setup),
                  ("candidate", candidate_value(local_ip, port)), ("end-of-candidates", None)]
        media = MediaDescription(media.media, media.port, media.proto, media.formats,
                                 attributes=media.attributes + tuple(extra))
        answer_media.append(media)
        negotiated = NegotiatedMedia(
            # where media goes is what ICE nominates; c= of a browser's offer is 0.0.0.0:9
            remote_ip="0.0.0.0", remote_port=m.port or 9, codec=codec, payload_type=pt,
            telephone_event_pt=te_pt, ptime=send_ptime(m.ptime, _maxptime(m)), direction=ours,
            on_hold=offered in (Direction.SENDONLY, Direction.INACTIVE),
            media_index=index, rtcp_mux=offers_mux(m))
        result = WebrtcMedia(negotiated, ufrag, pwd, remote_fingerprint, setup, mid)
    if result is None:
        raise NoCommonCodec(f"no WebRTC audio stream offers any of {', '.join(allowed)}")
    answer = _session(local_ip, session_id, version, answer_media, timing=offer.timing)
    attributes: list[tuple[str, str | None]] = [("ice-lite", None)]
    if _bundled(offer, result.mid):
        attributes.append(("group", f"BUNDLE {result.mid}"))
    answer = SessionDescription(
        origin=answer.origin, session_name=answer.session_name, connection=answer.connection,
        timing=answer.timing, media=answer.media, attributes=tuple(attributes))
    return answer, result
