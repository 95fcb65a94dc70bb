"""SDP: RFC 8866 parse/serialise and RFC 3264 offer/answer for G.711 + telephone-event."""
from .offer_answer import (
    SUPPORTED_CODECS, NegotiatedMedia, NoCommonCodec, OfferAnswerError, bump_version, hold_offer,
    make_answer, make_offer, make_reanswer, negotiate_answer,
)
from .session import (
    STATIC_PAYLOAD_TYPES, Bandwidth, Connection, Direction, MediaDescription, Origin, RtpMap,
    SdpError, SessionDescription, Timing, parse_sdp, serialize_sdp,
)

__all__ = [
    "SUPPORTED_CODECS", "NegotiatedMedia", "NoCommonCodec", "OfferAnswerError", "bump_version",
    "hold_offer", "make_answer", "make_offer", "make_reanswer", "negotiate_answer",
    "STATIC_PAYLOAD_TYPES", "Bandwidth", "Connection", "Direction", "MediaDescription", "Origin",
    "RtpMap", "SdpError", "SessionDescription", "Timing", "parse_sdp", "serialize_sdp",
]
