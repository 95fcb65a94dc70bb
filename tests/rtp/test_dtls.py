"""DTLS-SRTP endpoint (ivr/rtp/dtls.py): two of ours handshake in memory, agree on keys
and an SRTP packet crosses; a wrong a=fingerprint is refused; retransmission timing."""
from __future__ import annotations

import datetime
import time

import pytest

from ivr.rtp.dtls import (
    DtlsCertificate, DtlsEndpoint, DtlsRole, DtlsState, FingerprintMismatch,
    parse_fingerprint,
)
from ivr.rtp.srtp import SrtpContext

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def certs():
    return DtlsCertificate.generate(NOW), DtlsCertificate.generate(NOW)


def pair(certs, *, client_expects=None, server_expects=None):
    a, b = certs
    client = DtlsEndpoint(a, DtlsRole.CLIENT,
                          parse_fingerprint(client_expects or b.sdp_fingerprint))
    server = DtlsEndpoint(b, DtlsRole.SERVER,
                          parse_fingerprint(server_expects or a.sdp_fingerprint))
    return client, server


def run(client, server, drop_first=0):
    """Shuttle datagrams until both stop talking; returns how many crossed."""
    to_server, to_client = client.start(), []
    crossed = 0
    for _ in range(20):
        if not to_server and not to_client:
            break
        for d in to_server:
            crossed += 1
            if drop_first:
                drop_first -= 1
                continue
            to_client += server.receive(d)
        to_server = []
        for d in to_client:
            crossed += 1
            to_server += client.receive(d)
        to_client = []
    return crossed


def test_handshake_agrees_on_keys_and_an_srtp_packet_crosses(certs):
    client, server = pair(certs)
    run(client, server)
    assert client.state is DtlsState.CONNECTED and server.state is DtlsState.CONNECTED
    assert client.keys.suite == "AES_CM_128_HMAC_SHA1_80"
    assert client.keys.local_key == server.keys.remote_key
    assert client.keys.remote_key == server.keys.local_key
    assert client.keys.local_key != client.keys.remote_key and len(client.keys.local_key) == 30
    ours, theirs = SrtpContext.from_keys(client.keys), SrtpContext.from_keys(server.keys)
    packet = b"\x80\x00\x00\x01" + bytes(8) + b"\xff" * 160
    protected = ours.protect(packet)
    assert protected != packet and theirs.unprotect(protected) == packet
    assert theirs.unprotect(theirs.protect(packet)) is None  # its own key is not ours
    assert "local_key" not in repr(client.keys) and client.keys.local_key.hex() not in repr(client.keys)


def test_every_datagram_is_whole_records_within_the_mtu(certs):
    client, server = pair(certs)
    sizes = []
    real = server.receive
    server.receive = lambda d: [sizes.append(len(x)) or x for x in real(d)]
    run(client, server)
    assert sizes and max(sizes) <= 1200
    assert server.state is DtlsState.CONNECTED


@pytest.mark.parametrize("side", ["client", "server"])
def test_a_certificate_that_is_not_the_sdp_fingerprint_is_refused(certs, side):
    impostor = DtlsCertificate.generate(NOW).sdp_fingerprint
    kwargs = {"client_expects": impostor} if side == "client" else {"server_expects": impostor}
    client, server = pair(certs, **kwargs)
    run(client, server)
    refuser = client if side == "client" else server
    assert refuser.state is DtlsState.FAILED
    assert isinstance(refuser.error, FingerprintMismatch)
    assert refuser.keys is None
    assert client.keys is None or server.keys is None
    assert not (client.state is DtlsState.CONNECTED and server.state is DtlsState.CONNECTED)


@pytest.mark.parametrize("garbage", [b"\x16\xfe\xfd" + bytes(10) + b"\x00\x05hello",
                                     b"\x17", b"\x16\xfe\xff" + bytes(200)])
def test_garbage_does_not_connect_or_raise(certs, garbage):
    client, server = pair(certs)
    server.receive(garbage)
    assert server.keys is None and server.state is not DtlsState.CONNECTED
    client.receive(garbage)
    assert client.keys is None and client.state is not DtlsState.CONNECTED


def test_a_lost_client_hello_is_retransmitted_when_its_timer_runs_out(certs):
    # OpenSSL keeps the DTLS deadline in real time (1 s for the first flight): this test waits.
    client, server = pair(certs)
    hello = client.start()  # lost on the way
    assert hello and 0 < client.timeout() <= 1.0
    assert client.handle_timeout() == []  # not due yet: nothing resent
    time.sleep(client.timeout() + 0.02)
    again = client.handle_timeout()
    assert again and again[0][0] == 22  # a handshake record: the ClientHello again
    to_client = [d for x in again for d in server.receive(x)]
    while to_client:
        to_server = [d for x in to_client for d in client.receive(x)]
        to_client = [d for x in to_server for d in server.receive(x)]
    assert client.state is DtlsState.CONNECTED and server.state is DtlsState.CONNECTED


@pytest.mark.parametrize("value", ["sha-256 AB:CD", "md5 " + ":".join(["AB"] * 16),
                                   "sha-256", "sha-256 " + ":".join(["ZZ"] * 32)])
def test_unusable_fingerprints_are_refused(value):
    with pytest.raises(ValueError):
        parse_fingerprint(value)


def test_fingerprint_is_case_insensitive(certs):
    fp = certs[0].sdp_fingerprint
    assert parse_fingerprint(fp.lower().replace("sha-256", "SHA-256")) == parse_fingerprint(fp)
