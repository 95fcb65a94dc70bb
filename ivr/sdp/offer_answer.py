"""SDP offer/answer (RFC 3264) for one G.711 audio stream plus RFC 4733 telephone-event.

Pure functions over :mod:`ivr.sdp.session` models.  Directions in
:class:`NegotiatedMedia` are always from *our* point of view (``sendonly`` means
we send and do not expect media back).

SRTP with SDES keys (RFC 3711, RFC 4568): ``media_encryption`` (``required``, ``optional``,
``off``; :class:`~ivr.sdp.crypto.MediaEncryption`) says which profiles a stream may use.
``required`` accepts only ``RTP/SAVP``/``RTP/SAVPF`` and offers only ``RTP/SAVP``;
``optional`` accepts either and offers plain unless ``offer_srtp``; ``off`` accepts and
offers plain only.  Keys travel in the SDP, so they are offered or accepted only when
``secure_signalling`` (the SIP hop is TLS) or ``allow_insecure_keys`` (a documented
override) says so.  An answer takes the first ``a=crypto`` line whose suite we run and
answers it with a fresh key of ours under the same tag (a re-answer keeps our key); a
refusal is 488 with a Warning (302 wrong profile, 306 no usable a=crypto, 399 keys over an
insecure hop).  ``NegotiatedMedia.srtp`` carries the suite and both keys.  An ``a=crypto``
in an ``RTP/AVP`` stream ("best effort" SRTP) is ignored: that stream is answered plain.
"""
from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, replace

from .crypto import (
    DEFAULT_SUITES, SECURE_PROTOS, CryptoAttribute, CryptoError, KeyParam, MediaEncryption,
    SrtpKeys, crypto_attributes, new_key, offer_lines,
)
from .rtcp_attrs import MUX_ATTRIBUTE, offers_mux, rtcp_target
from .session import (
    Connection, Direction, MediaDescription, Origin, RtpMap, SdpError, SessionDescription,
)

__all__ = [
    "OfferAnswerError", "NoCommonCodec", "NegotiatedMedia", "SUPPORTED_CODECS",
    "make_offer", "make_answer", "make_reanswer", "negotiate_answer", "bump_version", "hold_offer",
    "SEND_PTIMES", "send_ptime", "EncryptionRefused", "KeysNeedTls", "MediaEncryption",
    "SrtpKeys",
]

#: Codecs we can encode, with their static payload type.
SUPPORTED_CODECS: dict[str, int] = {"PCMU": 0, "PCMA": 8}
#: RTP profiles we can answer (AVPF is AVP plus optional feedback we may ignore).
_RTP_PROTOS = {"RTP/AVP", "RTP/AVPF"} | SECURE_PROTOS
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


class EncryptionRefused(OfferAnswerError):
    """The media encryption offered or answered is not what the policy or the transport
    allows (488; Warning 302 for the profile, 306 for a=crypto, 399 for keys over an
    insecure hop)."""

    warn_code = 302  # RFC 3261 20.43: Incompatible transport protocol


class KeysNeedTls(ValueError):
    """Our misuse: SRTP keys would be offered over a hop that is not TLS, without the override."""


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
    srtp: SrtpKeys | None = None  # SRTP suite and keys (None: plain RTP)


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


def _keys_allowed(secure_signalling: bool, allow_insecure_keys: bool) -> bool:
    return bool(secure_signalling or allow_insecure_keys)


def make_offer(local_ip: str, port: int, codecs=("PCMU", "PCMA"), telephone_event_pt: int | None = 101, *,
               session_id: int | str, version: int, ptime: int | None = DEFAULT_PTIME,
               direction: Direction = Direction.SENDRECV,
               media_encryption: MediaEncryption | str = MediaEncryption.OFF,
               offer_srtp: bool | None = None, secure_signalling: bool = False,
               allow_insecure_keys: bool = False, crypto_suites=DEFAULT_SUITES,
               crypto: tuple[CryptoAttribute, ...] | None = None) -> SessionDescription:
    """An initial (or late) offer: one audio stream with ``codecs`` in preference order.

    SRTP (``RTP/SAVP`` with an ``a=crypto`` line per suite of ``crypto_suites``, each with a
    fresh key, or the given ``crypto`` lines) when the policy is ``required``, or
    ``optional`` with ``offer_srtp``.  Keys need ``secure_signalling`` or
    ``allow_insecure_keys`` (else :class:`KeysNeedTls`); ``offer_srtp`` with the policy
    ``off``, or ``offer_srtp=False`` with ``required``, is a ValueError."""
    names = _normalise_codecs(codecs)
    if telephone_event_pt is not None and not 96 <= telephone_event_pt <= 127:
        raise ValueError("telephone-event needs a dynamic payload type (96-127)")
    policy = MediaEncryption.of(media_encryption)
    if policy is MediaEncryption.REQUIRED:
        if offer_srtp is False:
            raise ValueError("media_encryption is required: the offer must be RTP/SAVP")
        srtp = True
    elif policy is MediaEncryption.OFF:
        if offer_srtp:
            raise ValueError("media_encryption is off: cannot offer RTP/SAVP")
        srtp = False
    else:
        srtp = bool(offer_srtp)
    media = _audio_media(port, [(n, SUPPORTED_CODECS[n]) for n in names], telephone_event_pt, ptime,
                         direction, proto="RTP/SAVP" if srtp else "RTP/AVP")
    if srtp:
        if not _keys_allowed(secure_signalling, allow_insecure_keys):
            raise KeysNeedTls("SRTP keys are only offered over TLS (sips); the hop is not TLS "
                              "and the insecure-keys override is not set")
        lines = crypto if crypto is not None else offer_lines(crypto_suites)
        media = replace(media, attributes=media.attributes
                        + tuple(("crypto", line.value()) for line in lines))
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
    multicast = _multicast(address)
    if multicast is None:  # the parser let it through as a host name
        raise OfferAnswerError(f"c= address {address} is a host name, not an IP address",
                               warn_code=301)
    if multicast:
        raise OfferAnswerError(f"c= address {address} is not a unicast address")
    return address


@functools.lru_cache(maxsize=1024)
def _multicast(address: str) -> bool | None:
    """Whether an IP address is multicast; None when it is no IP address (pure, so kept:
    offers from one peer repeat their address)."""
    try:
        return ipaddress.ip_address(address).is_multicast
    except ValueError:
        return None


def _rejected(m: MediaDescription) -> MediaDescription:
    return MediaDescription(m.media, 0, m.proto, m.formats)


def _secure(m: MediaDescription) -> bool:
    return m.proto.upper() in SECURE_PROTOS


def _choose_crypto(m: MediaDescription, policy: MediaEncryption, keys_allowed: bool,
                   suites=None) -> CryptoAttribute | EncryptionRefused | None:
    """What we do with an offered audio stream's encryption: the a=crypto line to answer
    (SRTP), None (plain RTP), or why we refuse the stream."""
    if not _secure(m):
        if policy is MediaEncryption.REQUIRED:
            return EncryptionRefused(
                f"media encryption is required here: offer RTP/SAVP with a=crypto, not {m.proto}")
        return None
    if policy is MediaEncryption.OFF:
        return EncryptionRefused(f"media encryption is off here: {m.proto} is refused, offer RTP/AVP")
    if not keys_allowed:
        return EncryptionRefused("SRTP keys (a=crypto) are only accepted over TLS (sips)",
                                 warn_code=399)
    reasons = []
    for line in crypto_attributes(m.attributes):
        why = str(line) if isinstance(line, CryptoError) else line.usable()
        if why is None and suites is not None and line.suite not in suites:
            why = f"crypto suite {line.suite} is not enabled"
        if why is None:
            return line
        reasons.append(why)
    detail = "; ".join(reasons) if reasons else "it has none"
    return EncryptionRefused(f"no a=crypto line we can use ({detail})", warn_code=306)


def make_answer(offer: SessionDescription, local_ip: str, port: int, supported=("PCMU", "PCMA"), *,
                session_id: int | str, version: int, ptime: int | None = DEFAULT_PTIME,
                telephone_event: bool = True, direction: Direction = Direction.SENDRECV,
                media_encryption: MediaEncryption | str = MediaEncryption.OFF,
                secure_signalling: bool = False, allow_insecure_keys: bool = False,
                keep_keys: dict[str, bytes] | None = None, srtp_suites=None,
                ) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer ``offer``: accept the first audio stream sharing a codec, reject every other m= line.

    ``direction`` is what we are willing to do; the answer mirrors the offer within that
    (offer sendonly -> answer recvonly, inactive -> inactive).  ``media_encryption``,
    ``secure_signalling`` and ``allow_insecure_keys``: see the module docstring; a stream
    they refuse is rejected like one without a common codec, and when no stream is left
    the refusal is raised (:class:`EncryptionRefused`, 488).  ``keep_keys`` (suite -> our
    key and salt) answers with a key we used before instead of a fresh one.
    ``srtp_suites`` limits the suites we accept (``ivr.rtp.srtp.supported_suites()``: what
    the SRTP library can run); None accepts every suite of ``crypto.SUITES``.
    """
    allowed = _normalise_codecs(supported)
    policy = MediaEncryption.of(media_encryption)
    keys_allowed = _keys_allowed(secure_signalling, allow_insecure_keys)
    answer_media: list[MediaDescription] = []
    negotiated: NegotiatedMedia | None = None
    refused: EncryptionRefused | None = None
    for index, m in enumerate(offer.media):
        codecs = m.codecs if negotiated is None and _usable_audio(m) else None
        pick = _pick_codec(m, allowed, codecs) if codecs is not None else None
        crypto = _choose_crypto(m, policy, keys_allowed, srtp_suites) if pick is not None else None
        if isinstance(crypto, EncryptionRefused):
            refused = refused or crypto
            pick = None
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
        srtp = None
        if crypto is not None:
            our_key = (keep_keys or {}).get(crypto.suite) or new_key(crypto.suite)
            ours_line = CryptoAttribute(crypto.tag, crypto.suite, (KeyParam(our_key),))
            media = replace(media, attributes=media.attributes + (("crypto", ours_line.value()),))
            srtp = SrtpKeys(crypto.suite, crypto.tag, our_key, crypto.key_salt)
        answer_media.append(media)
        rtcp = rtcp_target(m)
        connection = m.effective_connection(offer)
        negotiated = NegotiatedMedia(
            remote_ip=_remote(offer, m), remote_port=m.port, codec=codec, payload_type=pt,
            telephone_event_pt=te_pt, ptime=send_ptime(m.ptime, _maxptime(m)), direction=ours,
            # m.is_hold(offer), with the direction found above
            on_hold=(connection is not None and connection.is_null)
            or offered in (Direction.SENDONLY, Direction.INACTIVE),
            media_index=index, rtcp_port=rtcp.port, rtcp_ip=rtcp.ip, rtcp_mux=offers_mux(m),
            srtp=srtp)
    if negotiated is None:
        if refused is not None:
            raise refused
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
    kwargs.setdefault("keep_keys", _our_keys(previous))
    answer, negotiated = make_answer(offer, local_ip, port, supported,
                                     session_id=o.sess_id, version=o.sess_version, **kwargs)
    answer = replace(answer, origin=replace(answer.origin, username=o.username))
    if replace(answer, origin=o) != previous:
        answer = bump_version(answer)
    return answer, negotiated


def _our_keys(sd: SessionDescription) -> dict[str, bytes]:
    """suite -> key of the a=crypto lines in our earlier SDP (a re-answer keeps them)."""
    keys: dict[str, bytes] = {}
    for m in sd.media:
        for line in crypto_attributes(m.attributes):
            if isinstance(line, CryptoAttribute) and line.usable() is None:
                keys.setdefault(line.suite, line.key_salt)
    return keys


def _answered_keys(offered: MediaDescription, answered: MediaDescription) -> SrtpKeys:
    """The keys of an SRTP stream we offered, from their answer: exactly one usable
    a=crypto whose tag and suite are one of our lines (RFC 4568 7.1.3)."""
    if not _secure(answered):
        raise EncryptionRefused(f"we offered {offered.proto} and the answer is {answered.proto}")
    lines = crypto_attributes(answered.attributes)
    if len(lines) != 1:
        raise EncryptionRefused(f"the answer has {len(lines)} a=crypto lines, not one",
                                warn_code=306)
    line = lines[0]
    if isinstance(line, CryptoError):
        raise EncryptionRefused(str(line), warn_code=306) from line
    ours = {c.tag: c for c in crypto_attributes(offered.attributes) if isinstance(c, CryptoAttribute)}
    mine = ours.get(line.tag)
    if mine is None or mine.suite != line.suite:
        raise EncryptionRefused(f"the answer's a=crypto tag {line.tag} {line.suite} is not one "
                                f"we offered", warn_code=306)
    why = line.usable()
    if why is not None:
        raise EncryptionRefused(f"the answer's a=crypto is unusable: {why}", warn_code=306)
    return SrtpKeys(line.suite, line.tag, mine.key_salt, line.key_salt)


def negotiate_answer(our_offer: SessionDescription, their_answer: SessionDescription) -> NegotiatedMedia:
    """We offered (UAC, or a late offer in our 200 OK); work out the media from their answer.

    An SRTP stream we offered must be answered SRTP with one of our tags (else
    :class:`EncryptionRefused`: tear the call down); the keys land in ``srtp``."""
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
        srtp = _answered_keys(offered, answered) if _secure(offered) else None
        if srtp is None and _secure(answered):
            raise EncryptionRefused(f"we offered {offered.proto} and the answer is {answered.proto}")
        te_pt = _telephone_event_pt(answered) if _telephone_event_pt(offered) is not None else None
        ours = answered.direction(their_answer).reverse().intersect(offered.direction(our_offer))
        return NegotiatedMedia(
            remote_ip=_remote(their_answer, answered), remote_port=answered.port, codec=codec,
            payload_type=pt, telephone_event_pt=te_pt,
            ptime=send_ptime(answered.ptime, _maxptime(answered)), direction=ours,
            on_hold=answered.is_hold(their_answer), media_index=index,
            rtcp_port=rtcp_target(answered).port, rtcp_ip=rtcp_target(answered).ip,
            rtcp_mux=offers_mux(offered) and offers_mux(answered), srtp=srtp)
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
