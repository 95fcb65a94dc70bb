"""ICE-lite agent (ivr/rtp/ice.py): RFC 5769 test vectors through aioice's STUN codec, our
answers to valid and invalid checks, nomination, consent freshness, RFC 7983 demux."""
from __future__ import annotations

import pytest
from aioice import stun

from ivr.rtp.ice import (
    IceCredentials, IceLiteAgent, Nominated, PacketKind, SendStun, packet_kind,
)

# RFC 5769 2.1 (request) and 2.2 (IPv4 response); password VOkJxbRl1RmTxUk/WvJxBt
RFC5769_REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74"
    "002400046e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020"
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf")
RFC5769_RESPONSE = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220"
    "002000080001a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96")
PWD = "VOkJxbRl1RmTxUk/WvJxBt"
PEER = ("192.0.2.1", 32853)


def agent(now=0.0, remote="h6vY"):
    return IceLiteAgent(IceCredentials("evtj", PWD), remote, now=now)


def test_rfc5769_vectors_parse_and_check_through_aioice():
    request = stun.parse_message(RFC5769_REQUEST)
    assert request.attributes["USERNAME"] == "evtj:h6vY"
    assert request.attributes["PRIORITY"] == 0x6E0001FF
    assert request.check_message_integrity(PWD.encode())
    assert not request.check_message_integrity(b"wrong")
    response = stun.parse_message(RFC5769_RESPONSE)
    assert response.attributes["XOR-MAPPED-ADDRESS"] == PEER
    assert response.check_message_integrity(PWD.encode())
    damaged = bytearray(RFC5769_REQUEST)
    damaged[-1] ^= 1  # the FINGERPRINT no longer matches
    with pytest.raises(ValueError):
        stun.parse_message(bytes(damaged))


def test_valid_check_is_answered_with_mapped_address_integrity_and_fingerprint():
    a = agent()
    actions = a.receive(RFC5769_REQUEST, PEER, now=1.0)
    assert len(actions) == 1 and isinstance(actions[0], SendStun)
    assert actions[0].addr == PEER
    response = stun.parse_message(actions[0].data)  # checks FINGERPRINT
    assert "FINGERPRINT" in response.attributes
    assert response.message_class == stun.Class.RESPONSE
    assert response.transaction_id == bytes.fromhex("b7e7a701bc34d686fa87dfae")
    assert response.attributes["XOR-MAPPED-ADDRESS"] == PEER
    assert response.check_message_integrity(PWD.encode())
    assert a.checked == PEER and a.nominated is None  # no USE-CANDIDATE in the vector


def _request(username, pwd, *, use_candidate=False, integrity=True):
    m = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    m.attributes["USERNAME"] = username
    m.attributes["PRIORITY"] = 1
    m.attributes["ICE-CONTROLLING"] = 7
    if use_candidate:
        m.attributes["USE-CANDIDATE"] = None
    if integrity:
        m.add_message_integrity(pwd.encode())
    else:
        m.add_fingerprint()
    return bytes(m)


def _error_code(action):
    response = stun.parse_message(action.data)
    assert response.message_class == stun.Class.ERROR
    assert "MESSAGE-INTEGRITY" not in response.attributes
    return response.error_code


@pytest.mark.parametrize("username,pwd,code", [
    ("evtj:h6vY", "not the password at all!!", 401),
    ("other:h6vY", PWD, 401),
    ("evtj:someone", PWD, 401),
    ("evtj", PWD, 401),
])
def test_bad_credentials_get_401_and_no_nomination(username, pwd, code):
    a = agent()
    actions = a.receive(_request(username, pwd, use_candidate=True), PEER, now=1.0)
    assert [_error_code(x) for x in actions] == [code]
    assert a.nominated is None and a.checked is None
    assert a.counters["stun_unauthorized"] == 1


def test_no_integrity_is_400_and_garbage_is_dropped():
    a = agent()
    assert [_error_code(x) for x in a.receive(_request("evtj:h6vY", PWD, integrity=False),
                                               PEER, now=1.0)] == [400]
    assert a.receive(b"\x00\x01\x00", PEER, now=1.0) == []
    assert a.receive(RFC5769_RESPONSE, PEER, now=1.0) == []  # a response is not a check
    assert a.counters["stun_dropped"] == 2 and a.counters["stun_requests"] == 0


def test_use_candidate_nominates_and_a_later_one_moves_it():
    a = agent()
    actions = a.receive(_request("evtj:h6vY", PWD, use_candidate=True), PEER, now=1.0)
    assert actions[1:] == [Nominated(PEER)] and a.nominated == PEER
    assert len(a.receive(_request("evtj:h6vY", PWD, use_candidate=True), PEER, now=2.0)) == 1
    other = ("192.0.2.9", 4000)
    assert a.receive(_request("evtj:h6vY", PWD, use_candidate=True), other, now=3.0)[1:] \
        == [Nominated(other)]


def test_consent_expires_30_s_after_the_last_valid_check():
    a = agent(now=100.0)
    assert not a.consent_expired(129.9) and a.consent_expired(130.0)
    a.receive(_request("evtj:h6vY", PWD), PEER, now=125.0)
    assert not a.consent_expired(154.9) and a.consent_expired(155.0)
    a.receive(_request("evtj:h6vY", "bad password, not ours"), PEER, now=150.0)  # no consent
    assert a.consent_expired(155.0)


def test_credentials_are_fresh_and_long_enough():
    c1, c2 = IceCredentials.new(), IceCredentials.new()
    assert c1 != c2 and len(c1.ufrag) >= 4 and len(c1.pwd) >= 22
    assert c1.pwd not in repr(c1)


@pytest.mark.parametrize("first,kind", [(0, PacketKind.STUN), (3, PacketKind.STUN),
                                        (20, PacketKind.DTLS), (63, PacketKind.DTLS),
                                        (128, PacketKind.RTP), (191, PacketKind.RTP),
                                        (4, PacketKind.OTHER), (64, PacketKind.OTHER),
                                        (192, PacketKind.OTHER)])
def test_rfc7983_demux(first, kind):
    assert packet_kind(bytes([first, 0])) is kind
    assert packet_kind(b"") is PacketKind.OTHER
