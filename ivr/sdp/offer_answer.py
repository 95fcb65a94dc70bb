"""SDP offer/answer (RFC 3264) for one G.711 audio stream plus RFC 4733 telephone-event.

Pure functions over :mod:`ivr.sdp.session` models.  Directions in
:class:`NegotiatedMedia` are always from *our* point of view (``sendonly`` means
we send and do not expect media back).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from .rtcp_attrs import MUX_ATTRIBUTE, offers_mux, rtcp_target
from .session import (
    Connection, Direction, MediaDescription, Origin, RtpMap, SdpError, SessionDescription,
)

__all__ = [
    "OfferAnswerError", "NoCommonCodec", "NegotiatedMedia", "SUPPORTED_CODECS",
    "make_offer", "make_answer", "make_reanswer", "negotiate_answer", "bump_version", "hold_offer",
    "SEND_PTIMES", "send_ptime",
]

#: Codecs we can encode, with their static payload type.
SUPPORTED_CODECS: dict[str, int] = {"PCMU": 0, "PCMA": 8}
#: RTP profiles we can answer (AVPF is AVP plus optional feedback we may ignore).
_RTP_PROTOS = {"RTP/AVP", "RTP/AVPF"}
DEFAULT_PTIME = 20
#: Packet times we send (ms): what the media clock's 20 ms frames can be packed into.
SEND_PTIMES = (10, 20, 30, 40, 60)
TELEPHONE_EVENT_FMTP = "0-16"


class OfferAnswerError(SdpError):
    """The peer's offer or answer breaks RFC 3264 (answer with 488 / tear down)."""

    status = 488


class NoCommonCodec(OfferAnswerError):
    """No audio stream shares a codec with us: answer the INVITE with 488 Not Acceptable Here."""

    warn_code = 305  # RFC 3261 20.43: Incompatible media format


@dataclass(frozen=True)
class NegotiatedMedia:
    remote_ip: str
    remote_port: int
    codec: str               # "PCMU" or "PCMA"
    payload_type: int
    telephone_event_pt: int | None
    ptime: int               # the packet time we send: one of SEND_PTIMES, from the peer's
                             # a=ptime and a=maxptime (see send_ptime)
    direction: Direction     # ours: do we send / expect to receive
    on_hold: bool            # the peer's description puts the stream on hold (RFC 3264 8.4)
    media_index: int = 0     # which m= line carries the call audio
    rtcp_port: int | None = None  # the peer's a=rtcp port (None: RTP port + 1)
    rtcp_ip: str | None = None    # the peer's a=rtcp address (None: remote_ip)
    rtcp_mux: bool = False        # RTCP on the RTP ports both ways (RFC 5761)


def _maxptime(m: MediaDescription) -> int | None:
    """``a=maxptime`` in whole milliseconds (None if absent or unusable), read like a=ptime."""
    try:
        ms = round(float(m.attribute("maxptime") or ""))
    except (ValueError, OverflowError):
        return None
    return ms if 0 < ms <= 1000 else None


def send_ptime(ptime: int | None, maxptime: int | None = None) -> int:
    """The packet time to send to a peer whose SDP said ``a=ptime``/``a=maxptime``: its
    ptime (20 ms when absent), no more than its maxptime, rounded down to one of
    SEND_PTIMES (25 -> 20, 50 -> 40, 100 -> 60); 10 when it asks for less than 10."""
    want = ptime or DEFAULT_PTIME
    if maxptime:
        want = min(want, maxptime)
    fits = [p for p in SEND_PTIMES if p <= want]
    return fits[-1] if fits else SEND_PTIMES[0]


def _addrtype(ip: str) -> str:
    return "IP6" if ":" in ip else "IP4"


def _normalise_codecs(codecs) -> tuple[str, ...]:
    names = tuple(c.upper() for c in codecs)
    unknown = [c for c in names if c not in SUPPORTED_CODECS]
    if unknown or not names:
        raise ValueError(f"unsupported codec(s) {unknown or 'none'}; choose from {sorted(SUPPORTED_CODECS)}")
    return names


def _audio_media(port: int, codec_pts: list[tuple[str, int]], te_pt: int | None,
                 ptime: int | None, direction: Direction, proto: str = "RTP/AVP") -> MediaDescription:
    formats = [str(pt) for _, pt in codec_pts]
    attrs: list[tuple[str, str | None]] = [("rtpmap", f"{pt} {name}/8000") for name, pt in codec_pts]
    if te_pt is not None:
        formats.append(str(te_pt))
        attrs += [("rtpmap", f"{te_pt} telephone-event/8000"), ("fmtp", f"{te_pt} {TELEPHONE_EVENT_FMTP}")]
    if ptime:
        attrs.append(("ptime", str(ptime)))
    attrs.append((direction.value, None))
    return MediaDescription("audio", port, proto, tuple(formats), attributes=tuple(attrs))


def _session(local_ip: str, session_id: int | str, version: int, media, timing=None,
             username: str = "ivr") -> SessionDescription:
    conn = Connection("IN", _addrtype(local_ip), local_ip)
    kwargs = {"timing": timing} if timing is not None else {}
    return SessionDescription(
        origin=Origin(username, str(session_id), int(version), "IN", _addrtype(local_ip), local_ip),
        session_name="ivr", connection=conn, media=tuple(media), **kwargs)


def make_offer(local_ip: str, port: int, codecs=("PCMU", "PCMA"), telephone_event_pt: int | None = 101, *,
               session_id: int | str, version: int, ptime: int | None = DEFAULT_PTIME,
               direction: Direction = Direction.SENDRECV) -> SessionDescription:
    """An initial (or late) offer: one audio stream with ``codecs`` in preference order."""
    names = _normalise_codecs(codecs)
    if telephone_event_pt is not None and not 96 <= telephone_event_pt <= 127:
        raise ValueError("telephone-event needs a dynamic payload type (96-127)")
    media = _audio_media(port, [(n, SUPPORTED_CODECS[n]) for n in names], telephone_event_pt, ptime, direction)
    return _session(local_ip, session_id, version, [media])


def _pick_codec(m: MediaDescription, allowed: tuple[str, ...],
                codecs: dict[int, RtpMap] | None = None) -> tuple[str, int] | None:
    """First payload type in the peer's order that is one of ``allowed`` (G.711 8 kHz mono).

    ``codecs`` is ``m.codecs`` when the caller has it already.  Its keys are the m= line's
    payload types in their order (first occurrence) minus those without a name, so
    walking it is walking the m= line."""
    for pt, c in (m.codecs if codecs is None else codecs).items():
        if c.clock == 8000 and c.channels == 1 and c.encoding.upper() in allowed:
            return c.encoding.upper(), pt
    return None


def _telephone_event_pt(m: MediaDescription,
                        codecs: dict[int, RtpMap] | None = None) -> int | None:
    for pt, c in (m.codecs if codecs is None else codecs).items():
        if c.clock == 8000 and c.encoding.lower() == "telephone-event":
            return pt
    return None


def _usable_audio(m: MediaDescription) -> bool:
    return m.media == "audio" and not m.rejected and m.proto.upper() in _RTP_PROTOS


def _remote(sd: SessionDescription, m: MediaDescription) -> str:
    """The IP address to send the stream to.  What we cannot send to is refused (488)
    with the Warning code of RFC 3261 20.43 that says why: we resolve no host names and
    send no multicast."""
    conn = m.effective_connection(sd)
    if conn is None:
        raise OfferAnswerError("audio stream has no c= line at media or session level")
    if conn.nettype != "IN":
        raise OfferAnswerError(f"c= network type {conn.nettype} is not IN", warn_code=300)
    if conn.addrtype not in ("IP4", "IP6"):
        raise OfferAnswerError(f"c= address type {conn.addrtype} is not IP4 or IP6",
                               warn_code=301)
    address = conn.address.split("/")[0]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # the parser let it through as a host name
        raise OfferAnswerError(f"c= address {address} is a host name, not an IP address",
                               warn_code=301) from None
    if ip.is_multicast:
        raise OfferAnswerError(f"c= address {address} is not a unicast address")
    return address


def _rejected(m: MediaDescription) -> MediaDescription:
    return MediaDescription(m.media, 0, m.proto, m.formats)


def make_answer(offer: SessionDescription, local_ip: str, port: int, supported=("PCMU", "PCMA"), *,
                session_id: int | str, version: int, ptime: int | None = DEFAULT_PTIME,
                telephone_event: bool = True, direction: Direction = Direction.SENDRECV,
                ) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer ``offer``: accept the first audio stream sharing a codec, reject every other m= line.

    ``direction`` is what we are willing to do; the answer mirrors the offer within that
    (offer sendonly -> answer recvonly, inactive -> inactive).
    """
    allowed = _normalise_codecs(supported)
    answer_media: list[MediaDescription] = []
    negotiated: NegotiatedMedia | None = None
    for index, m in enumerate(offer.media):
        codecs = m.codecs if negotiated is None and _usable_audio(m) else None
        pick = _pick_codec(m, allowed, codecs) if codecs is not None else None
        if pick is None:
            answer_media.append(_rejected(m))
            continue
        codec, pt = pick
        te_pt = _telephone_event_pt(m, codecs) if telephone_event else None
        offered = m.direction(offer)
        ours = offered.reverse().intersect(direction)
        media = _audio_media(port, [(codec, pt)], te_pt, ptime, ours, proto=m.proto)
        if offers_mux(m):  # RFC 5761: accepted whenever offered
            media = replace(media, attributes=media.attributes + ((MUX_ATTRIBUTE, None),))
        answer_media.append(media)
        rtcp = rtcp_target(m)
        connection = m.effective_connection(offer)
        negotiated = NegotiatedMedia(
            remote_ip=_remote(offer, m), remote_port=m.port, codec=codec, payload_type=pt,
            telephone_event_pt=te_pt, ptime=send_ptime(m.ptime, _maxptime(m)), direction=ours,
            # m.is_hold(offer), with the direction found above
            on_hold=(connection is not None and connection.is_null)
            or offered in (Direction.SENDONLY, Direction.INACTIVE),
            media_index=index, rtcp_port=rtcp.port, rtcp_ip=rtcp.ip, rtcp_mux=offers_mux(m))
    if negotiated is None:
        raise NoCommonCodec(f"no audio stream offers any of {', '.join(allowed)}")
    answer = _session(local_ip, session_id, version, answer_media, timing=offer.timing)
    return answer, negotiated


def make_reanswer(offer: SessionDescription, previous: SessionDescription, local_ip: str, port: int,
                  supported=("PCMU", "PCMA"), **kwargs) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer a re-INVITE (hold, unhold, codec change) within an existing session.

    Keeps ``previous``'s o= session id and bumps its version only when the answer
    actually changes (RFC 3264 section 8).
    """
    o = previous.origin
    answer, negotiated = make_answer(offer, local_ip, port, supported,
                                     session_id=o.sess_id, version=o.sess_version, **kwargs)
    answer = replace(answer, origin=replace(answer.origin, username=o.username))
    if replace(answer, origin=o) != previous:
        answer = bump_version(answer)
    return answer, negotiated


def negotiate_answer(our_offer: SessionDescription, their_answer: SessionDescription) -> NegotiatedMedia:
    """We offered (UAC, or a late offer in our 200 OK); work out the media from their answer."""
    if len(their_answer.media) != len(our_offer.media):
        raise OfferAnswerError(
            f"answer has {len(their_answer.media)} m= lines, offer had {len(our_offer.media)}")
    for index, (offered, answered) in enumerate(zip(our_offer.media, their_answer.media)):
        if not (_usable_audio(offered) and _usable_audio(answered)):
            continue
        offered_names = tuple({c.encoding.upper() for c in offered.codecs.values()} & set(SUPPORTED_CODECS))
        pick = _pick_codec(answered, offered_names)
        if pick is None:
            continue
        codec, pt = pick
        te_pt = _telephone_event_pt(answered) if _telephone_event_pt(offered) is not None else None
        ours = answered.direction(their_answer).reverse().intersect(offered.direction(our_offer))
        return NegotiatedMedia(
            remote_ip=_remote(their_answer, answered), remote_port=answered.port, codec=codec,
            payload_type=pt, telephone_event_pt=te_pt,
            ptime=send_ptime(answered.ptime, _maxptime(answered)), direction=ours,
            on_hold=answered.is_hold(their_answer), media_index=index,
            rtcp_port=rtcp_target(answered).port, rtcp_ip=rtcp_target(answered).ip,
            rtcp_mux=offers_mux(offered) and offers_mux(answered))
    raise NoCommonCodec("the answer accepted no audio stream with a codec we offered")


def bump_version(sd: SessionDescription) -> SessionDescription:
    """Same session, o= version + 1: use for every re-offer or changed re-answer."""
    return replace(sd, origin=replace(sd.origin, sess_version=sd.origin.sess_version + 1))


def hold_offer(sd: SessionDescription, hold: bool = True, *, inactive: bool = False) -> SessionDescription:
    """Re-offer of our previous SDP putting the audio on hold (sendonly, or inactive) or back to sendrecv."""
    direction = (Direction.INACTIVE if inactive else Direction.SENDONLY) if hold else Direction.SENDRECV
    media = tuple(m.with_direction(direction) if m.media == "audio" and not m.rejected else m
                  for m in sd.media)
    attrs = tuple(a for a in sd.attributes if a[0] not in {d.value for d in Direction})
    return bump_version(replace(sd, media=media, attributes=attrs))


# re-exported for callers that only import this module
__all__ += ["Direction", "RtpMap"]
