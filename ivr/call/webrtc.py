"""WebRTC media for a call leg: answer a browser's (or baresip's ``dtls_srtp``) offer and
make its RTP session a WebRTC stream.  Joins ``ivr.sdp.webrtc`` (the answer) and
``ivr.rtp`` (ICE-lite, DTLS-SRTP, the session), which cannot import each other.

What the call layer (``ivr/call/media_leg.py``) must do
------------------------------------------------------
1. Once per server, at start: ``certificate = DtlsCertificate.generate(now)`` (``now`` a
   timezone-aware datetime read by the entry point) and give it to every media leg.
2. When an INVITE's offer arrives: ``if is_webrtc_offer(offer):`` take the ports as for any
   leg (``RtpSession(...)``), then instead of ``make_answer`` call::

       answer, webrtc = webrtc_answer(offer, session, local_ip, certificate,
                                      session_id=..., version=..., supported=codecs)

   It raises ``OfferAnswerError`` (488 with ``warn_code``) exactly like ``make_answer``:
   release the session's ports as for any refusal.  ``media_encryption: off`` does not
   apply: WebRTC media is always DTLS-SRTP.  Do not call ``set_srtp`` or ``set_remote``
   for this leg: ``webrtc_answer`` did both (the session sends nothing until ICE nominates
   and DTLS keys SRTP).  ``set_direction(webrtc.negotiated.direction.value)`` as usual.
3. Send ``answer`` in the 200 OK.  ``rtp.on_timeout`` already ends the call when consent
   expires (RFC 7675) as when RTP stops.
4. A re-INVITE on a WebRTC leg (``MediaLeg._reoffered_webrtc``) gets our answer again,
   with the new direction, when the offer's ``a=ice-ufrag`` and ``a=fingerprint`` are
   unchanged (hold, resume, a session refresh); an ICE restart or a new certificate is 488
   and the media stays as it was.
5. Report: ``rtp.stats()["media_encryption"]`` is ``"dtls-srtp"`` once keyed; the CDR's leg
   kind for anonymous browser callers (issue item 4) is the call layer's.
"""
from __future__ import annotations

from ..rtp.dtls import DtlsCertificate, DtlsEndpoint, DtlsRole, parse_fingerprint
from ..rtp.ice import IceCredentials, IceLiteAgent
from ..sdp.session import SessionDescription
from ..sdp.webrtc import WebrtcMedia, is_webrtc_offer, make_webrtc_answer

__all__ = ["webrtc_answer", "is_webrtc_offer", "DtlsCertificate"]


def webrtc_answer(offer: SessionDescription, session, local_ip: str,
                  certificate: DtlsCertificate, *, session_id: int | str, version: int,
                  supported=("PCMU", "PCMA"), **answer_options,
                  ) -> tuple[SessionDescription, WebrtcMedia]:
    """Answer ``offer`` for ``session`` (an RtpSession whose port the answer names) and
    make the session a WebRTC stream.  See the module docstring."""
    creds = IceCredentials.new()
    answer, webrtc = make_webrtc_answer(
        offer, local_ip, session.local_port, session_id=session_id, version=version,
        ice_ufrag=creds.ufrag, ice_pwd=creds.pwd, fingerprint=certificate.sdp_fingerprint,
        supported=supported, **answer_options)
    role = DtlsRole.SERVER if webrtc.setup == "passive" else DtlsRole.CLIENT
    ice = IceLiteAgent(creds, webrtc.remote_ufrag, now=session.reactor.seconds())
    dtls = DtlsEndpoint(certificate, role, parse_fingerprint(" ".join(webrtc.remote_fingerprint)))
    session.set_webrtc(ice, dtls)
    n = webrtc.negotiated
    session.set_remote(n.remote_ip, n.remote_port, n.payload_type, n.codec,
                       telephone_event_pt=n.telephone_event_pt, rtcp_mux=True, ptime=n.ptime)
    return answer, webrtc
