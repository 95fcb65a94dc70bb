"""SDP: RFC 8866 parse/serialise, RFC 3264 offer/answer for G.711 + telephone-event, and
SDES SRTP keys (RFC 4568)."""
from .crypto import CryptoAttribute, CryptoError, MediaEncryption, SrtpKeys, parse_crypto
from .offer_answer import (
    SUPPORTED_CODECS, EncryptionRefused, KeysNeedTls, NegotiatedMedia, NoCommonCodec,
    OfferAnswerError, bump_version, hold_offer, make_answer, make_offer, make_reanswer, negotiate_answer,
)
from .session import (
    STATIC_PAYLOAD_TYPES, Bandwidth, Connection, Direction, MediaDescription, Origin, RtpMap,
    SdpError, SessionDescription, Timing, parse_sdp, serialize_sdp,
)

__all__ = [
    "CryptoAttribute", "CryptoError", "MediaEncryption", "SrtpKeys", "parse_crypto",
    "EncryptionRefused", "KeysNeedTls", "SUPPORTED_CODECS", "NegotiatedMedia", "NoCommonCodec", "OfferAnswerError", "bump_version",
    "hold_offer", "make_answer", "make_offer", "make_reanswer", "negotiate_answer",
    "STATIC_PAYLOAD_TYPES", "Bandwidth", "Connection", "Direction", "MediaDescription", "Origin",
    "RtpMap", "SdpError", "SessionDescription", "Timing", "parse_sdp", "serialize_sdp",
]
