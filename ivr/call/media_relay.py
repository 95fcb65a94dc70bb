"""Bridged media handed to rtpengine (``media_relay: {engine: rtpengine}``).

When a :class:`~ivr.call.bridge.Bridge` starts between two legs that need nothing from the
server's media, :meth:`RtpengineRelay.anchor` asks rtpengine (over its ng protocol,
:mod:`ivr.rtp.rtpengine_ng`) for a port on each side and re-INVITEs each leg with an offer
pointing at rtpengine, so audio flows phone <-> rtpengine <-> phone and the server's own
RTP sessions go idle (``inactive``: no sending, no media timeout).  Until the ng answers and
both re-INVITEs are accepted the in-process relay keeps running; any failure on the way
(rtpengine does not answer, answers an error, a leg refuses the re-INVITE) keeps it, logged
once, and never fails the call.

The legs qualify when both are plain RTP (no SRTP, not WebRTC), answered and talking
(``sendrecv``), in the same codec, packet time and telephone-event payload type (RFC 4733
digits pass through rtpengine untouched, so there is no transcoding), and nothing on the
server listens to their samples (recording, in-band DTMF detection, speech).

The sequence, with rtpengine call-id ``ivr-<random>`` and tags ``a``/``b``:

1. ``offer`` with leg A's media (what A negotiated with us) -> rtpengine's port for B;
2. ``answer`` with leg B's media -> rtpengine's port for A;
3. re-INVITE A and B at once, each with our usual offer (same origin, next version) whose
   connection and port are rtpengine's; the legs' RTP sessions go ``inactive``.

Back to the server's media: when the bridge ends (the legs hang up as before) the session is
``delete``d; when a leg is transferred (:meth:`~ivr.call.bridge.Bridge.replace`) or a leg
re-INVITEs us (hold, a new address) the session is deleted and the leg that stays gets a
re-INVITE with our own offer again, and the bridge relays in-process.  After a transfer,
once the staying leg has accepted that re-INVITE, the bridge's new pair is anchored again
as above (a new rtpengine call-id) when it qualifies; after a leg's own re-INVITE (hold)
it stays in-process.
"""
from __future__ import annotations

import enum
import secrets
from dataclasses import replace

from twisted.internet import defer
from twisted.logger import Logger

from ..rtp.rtpengine_ng import NgError, NgTimeout
from ..sdp import Direction, make_offer, parse_sdp, serialize_sdp
from ..sdp.session import Connection, SdpError

log = Logger(namespace="ivr.call.media_relay")

#: ng flags of every offer and answer: rtpengine's own origin and session-level address,
#: no ICE towards plain SIP phones, plain RTP.
NG_FLAGS = {"replace": ["origin", "session-connection"], "ICE": "remove",
            "transport-protocol": "RTP/AVP"}


class AnchorState(enum.Enum):
    ASKING = "asking"          # offer/answer on their way to rtpengine
    REINVITING = "reinviting"  # both legs re-INVITEd towards rtpengine
    ANCHORED = "anchored"      # media flows through rtpengine
    DONE = "done"              # deleted (or never made): the server relays


def why_not(a, b) -> str | None:
    """None when the two legs' media can go through rtpengine, else why not."""
    for leg in (a, b):
        media = getattr(leg, "media", None)
        n = getattr(media, "negotiated", None)
        if getattr(leg, "ended", True) or not getattr(leg, "answered", False):
            return "a leg is not up"
        if media is None or n is None:
            return "a leg has no media"
        if not hasattr(getattr(leg, "session", None), "reinvite"):
            return "a leg cannot be re-INVITEd"
        if getattr(media, "webrtc", None) is not None or media.media_encryption != "none":
            return "a leg is encrypted"
        if n.direction is not Direction.SENDRECV or n.on_hold:
            return "a leg is on hold"
        if n.telephone_event_pt is None:
            return "a leg needs in-band DTMF detection"
        rtp = getattr(media, "rtp", None)
        if rtp is not None and rtp.has_audio_listeners:
            return "the server listens to a leg (recording, speech, in-band DTMF)"
    na, nb = a.media.negotiated, b.media.negotiated
    if (na.codec, na.ptime, na.telephone_event_pt) != (nb.codec, nb.ptime, nb.telephone_event_pt):
        return "the legs differ in codec, packet time or telephone-event"
    return None


def leg_media_sdp(negotiated) -> bytes:
    """The far end's media as it was negotiated with us, as an SDP for rtpengine."""
    sd = make_offer(negotiated.remote_ip, negotiated.remote_port, codecs=(negotiated.codec,),
                    telephone_event_pt=negotiated.telephone_event_pt, session_id=1, version=1,
                    ptime=negotiated.ptime)
    return serialize_sdp(sd)


def relay_address(sdp: str | bytes) -> tuple[str, int]:
    """Where rtpengine wants the audio: its first audio stream's address and port."""
    sd = parse_sdp(sdp)
    for m in sd.media:
        if m.media == "audio" and m.port:
            address = m.remote_address(sd)
            if address:
                return address, m.port
    raise SdpError("rtpengine's SDP has no audio stream")


def offer_towards(leg, address: tuple[str, int]):
    """Our next offer to ``leg`` (same origin, next version), its audio at ``address``."""
    n, ours = leg.media.negotiated, leg.media.local_sdp
    sd = make_offer(address[0], address[1], codecs=(n.codec,),
                    telephone_event_pt=n.telephone_event_pt,
                    session_id=ours.origin.sess_id, version=ours.origin.sess_version + 1,
                    ptime=n.ptime)
    addrtype = "IP6" if ":" in address[0] else "IP4"
    return replace(sd, origin=replace(ours.origin, sess_version=ours.origin.sess_version + 1),
                   connection=Connection("IN", addrtype, address[0]))


class Anchor:
    """One bridge's media at rtpengine (the bridge holds it as ``bridge.anchor``)."""

    def __init__(self, relay: "RtpengineRelay", bridge, call_id: str) -> None:
        self.relay, self.bridge, self.call_id = relay, bridge, call_id
        self.legs = (bridge.a, bridge.b)
        self.state = AnchorState.ASKING
        self.addresses: dict = {}  # leg -> rtpengine's (ip, port) for it
        self.accepted: set = set()  # legs whose re-INVITE towards rtpengine got a 2xx
        self.previous: dict = {}  # leg -> NegotiatedMedia before the re-INVITE
        self.created = False  # rtpengine has the call (a delete is owed)
        self.reanchor = False  # released by a transfer: anchor the new pair once back

    @property
    def active(self) -> bool:
        return self.state in (AnchorState.REINVITING, AnchorState.ANCHORED)


class RtpengineRelay:
    """Anchors bridges at one rtpengine through ``ng`` (an :class:`~ivr.rtp.rtpengine_ng.NgClient`)."""

    engine = "rtpengine"

    def __init__(self, ng) -> None:
        self.ng = ng
        self.anchored = 0  # bridges whose media went through rtpengine
        self.fallbacks = 0  # bridges that stayed in-process because rtpengine failed
        self._warned: set = set()

    # -- the bridge's side -------------------------------------------------------------
    def anchor(self, bridge) -> defer.Deferred:
        """Try to move ``bridge``'s media to rtpengine; fires True once both legs send
        there, False when the bridge stays in-process (never fails)."""
        reason = why_not(bridge.a, bridge.b)
        if reason is not None:
            log.debug("bridge stays in-process: {why}", why=reason)
            return defer.succeed(False)
        anchor = Anchor(self, bridge, f"ivr-{secrets.token_hex(8)}")
        bridge.anchor = anchor
        done = self._ask(anchor)
        done.addErrback(self._failed, anchor)
        return done

    def release(self, bridge, keep=()) -> None:
        """The bridge ends (``keep`` empty: its legs are hung up) or changes (the legs in
        ``keep`` stay up and get the server's media back by re-INVITE)."""
        anchor = getattr(bridge, "anchor", None)
        if anchor is None or anchor.state is AnchorState.DONE:
            return
        bridge.anchor = None
        anchor.reanchor = bool(keep)
        self._undo(anchor, revert=[leg for leg in keep if not leg.ended])

    def leg_reoffered(self, media) -> None:
        """The leg of ``media`` re-INVITEs us while its media is at rtpengine: the bridge
        comes back to the server (the caller then answers the offer with our own media)."""
        anchor = media.relayed_by
        if anchor is None:
            return
        leg = next((each for each in anchor.legs if each.media is media), None)
        if leg is None:
            media.relayed_by = None
            return
        bridge = anchor.bridge
        if getattr(bridge, "anchor", None) is anchor:
            bridge.anchor = None
        others = [other for other in anchor.legs if other is not leg and not other.ended]
        self._undo(anchor, revert=others, quiet=[leg])
        if not bridge.finished:
            bridge.media_back()

    # -- the sequence ------------------------------------------------------------------
    @defer.inlineCallbacks
    def _ask(self, anchor: Anchor):
        a, b = anchor.legs
        reply = yield self.ng.offer(anchor.call_id, "a", leg_media_sdp(a.media.negotiated),
                                    **NG_FLAGS)
        anchor.created = True
        anchor.addresses[b] = relay_address(reply["sdp"])
        if self._stale(anchor):
            return False
        reply = yield self.ng.answer(anchor.call_id, "a", "b",
                                     leg_media_sdp(b.media.negotiated), **NG_FLAGS)
        anchor.addresses[a] = relay_address(reply["sdp"])
        if self._stale(anchor):
            return False
        result = defer.Deferred()
        anchor.result = result
        anchor.state = AnchorState.REINVITING
        anchor.bridge.media_elsewhere()
        for leg in anchor.legs:
            self._reinvite(anchor, leg)
        done = yield result
        return done

    def _stale(self, anchor: Anchor) -> bool:
        """The bridge ended or changed while rtpengine was asked: delete, stay in-process."""
        bridge = anchor.bridge
        if (getattr(bridge, "anchor", None) is anchor and not bridge.finished
                and (bridge.a, bridge.b) == anchor.legs and why_not(*anchor.legs) is None):
            return False
        if getattr(bridge, "anchor", None) is anchor:
            bridge.anchor = None
        self._undo(anchor, revert=[])
        return True

    def _reinvite(self, anchor: Anchor, leg) -> None:
        media = leg.media
        anchor.previous[leg] = (media.negotiated, media.local_sdp)
        offer = offer_towards(leg, anchor.addresses[leg])
        media.relayed_by = anchor
        media.local_sdp = offer
        if media.rtp is not None:
            media.rtp.set_direction("inactive")  # idle: nothing sent, no media timeout
        sent = leg.session.reinvite(serialize_sdp(offer),
                                    on_done=lambda response: self._reinvited(anchor, leg, response))
        if not sent:  # an INVITE is in progress on that dialog
            self._reinvited(anchor, leg, False)

    def _reinvited(self, anchor: Anchor, leg, response) -> None:
        ok = response is not None and response is not False and 200 <= response.status < 300
        if anchor.state is not AnchorState.REINVITING:
            # undone while this re-INVITE was on its way: the leg, if it stays in the
            # bridge, comes back to the server's media now
            bridge = anchor.bridge
            if (leg.media.relayed_by is anchor and not leg.ended and not bridge.finished
                    and leg in (bridge.a, bridge.b)):
                if ok:
                    self._back_to_server(leg, anchor)
                else:
                    self._restore(leg, anchor)
            return
        if ok:
            anchor.accepted.add(leg)
            if len(anchor.accepted) == 2:
                anchor.state = AnchorState.ANCHORED
                self.anchored += 1
                for each in anchor.legs:
                    ip, port = anchor.addresses[each]
                    each.log_event("media_relay", engine=self.engine, to=f"{ip}:{port}")
                anchor.result.callback(True)
            return
        why = ("busy with another INVITE" if response is False
               else "no answer" if response is None else f"{response.status}")
        leg.log_event("media_relay_refused", engine=self.engine, why=why)
        bridge = anchor.bridge
        if getattr(bridge, "anchor", None) is anchor:
            bridge.anchor = None
        self._restore(leg, anchor)
        others = [each for each in anchor.legs if each is not leg and not each.ended]
        self._undo(anchor, revert=others)
        if not bridge.finished and not leg.ended:
            bridge.media_back()
        if not anchor.result.called:
            anchor.result.callback(False)

    def _restore(self, leg, anchor: Anchor) -> None:
        """``leg`` refused (or never got) the re-INVITE: its media is ours as before."""
        leg.media.relayed_by = None
        negotiated, _ = anchor.previous.get(leg, (None, None))
        if negotiated is not None and not leg.ended:
            leg.media.apply(negotiated)

    def _undo(self, anchor: Anchor, revert, quiet=()) -> None:
        """Delete at rtpengine; the legs in ``revert`` get our media back by re-INVITE,
        those in ``quiet`` are only let go of (their own offer is being answered)."""
        was = anchor.state
        anchor.state = AnchorState.DONE
        if anchor.created:
            anchor.created = False
            self.ng.delete(anchor.call_id, **{"delete-delay": 0}).addErrback(
                self._delete_failed, anchor.call_id)
        for leg in quiet:
            leg.media.relayed_by = None
        if was in (AnchorState.REINVITING, AnchorState.ANCHORED):
            for leg in revert:  # one still waiting for its answer comes back in _reinvited
                if leg.media.relayed_by is anchor and leg in anchor.accepted:
                    self._back_to_server(leg, anchor)
        result = getattr(anchor, "result", None)
        if result is not None and not result.called:
            result.callback(False)

    def _back_to_server(self, leg, anchor: Anchor) -> None:
        media = leg.media
        media.relayed_by = None
        offer = media.reoffered(None)  # our own port again; the 2xx's answer is applied
        on_done = (lambda response: self._back(anchor.bridge, leg, response)) \
            if anchor.reanchor else None
        if not leg.session.reinvite(offer, on_done=on_done):
            log.warn("call {cid}: could not re-INVITE back from rtpengine (INVITE in "
                     "progress)", cid=leg.call_id)
        leg.log_event("media_relay_ended", engine=self.engine)

    def _back(self, bridge, leg, response) -> None:
        """After a transfer the staying ``leg`` has our media again (its re-INVITE's 2xx
        was applied): anchor the bridge's new pair, unless it ended, changed or is
        anchoring already."""
        if (response is None or not 200 <= response.status < 300 or bridge.finished
                or getattr(bridge, "anchor", None) is not None or leg.ended
                or leg not in (bridge.a, bridge.b)):
            return
        self.anchor(bridge)

    # -- failures ----------------------------------------------------------------------
    def _failed(self, failure, anchor: Anchor):
        bridge = anchor.bridge
        if getattr(bridge, "anchor", None) is anchor:
            bridge.anchor = None
        if anchor.state is AnchorState.ASKING:
            anchor.state = AnchorState.DONE
            if anchor.created:  # the answer failed after the offer made the call
                anchor.created = False
                self.ng.delete(anchor.call_id, **{"delete-delay": 0}).addErrback(lambda f: None)
        self.fallbacks += 1
        key = failure.type
        text = str(failure.value) if failure.check(NgTimeout, NgError, SdpError) else \
            failure.getTraceback()
        if key not in self._warned:
            self._warned.add(key)
            log.warn("rtpengine not used, the bridge relays in-process: {why} "
                     "(logged once; later ones at debug)", why=text)
        else:
            log.debug("rtpengine not used: {why}", why=text)
        return False

    def _delete_failed(self, failure, call_id: str) -> None:
        log.debug("rtpengine delete {cid}: {why}", cid=call_id, why=failure.value)
