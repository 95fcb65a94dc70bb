"""A WebRTC offer without ``a=rtcp-mux`` is refused with 488 (issue #16, found with
baresip's ``ice`` module): we answer with one port and one ICE candidate (component 1),
so RTCP on its own port is something we cannot give.  Answering anyway (without
``a=rtcp-mux``) told a full ICE agent to look for a component-2 candidate that was never
there: baresip with ``rtcp_mux no`` then gave up on ICE and the call had no audio."""
from __future__ import annotations

import pytest

from ivr.sdp.offer_answer import OfferAnswerError

from tests.sdp.test_webrtc import _edit, answer


def test_an_offer_without_rtcp_mux_gets_488_naming_it():
    with pytest.raises(OfferAnswerError) as caught:
        answer(_edit("a=rtcp-mux\r\n", ""))
    assert caught.value.status == 488
    assert "rtcp-mux" in str(caught.value)


def test_the_same_offer_with_rtcp_mux_is_answered():
    sd, n = answer()
    assert n.negotiated.rtcp_mux and sd.media[0].has_attribute("rtcp-mux")
