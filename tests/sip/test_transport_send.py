"""SipTransport's direct UDP send: the same datagrams and the same errors as Port.write."""
from __future__ import annotations

import socket

from twisted.internet import abstract, error, reactor
from twisted.trial import unittest

from ivr.sip.message import Request, make_response, parse_datagram, serialize
from ivr.sip.transport import Destination, SipTransport, Source, _ip_family
from ivr.sip.ua import new_branch

HOST = "127.0.0.1"


def _request(branch: str, extra: bytes = b"") -> Request:
    return parse_datagram(
        f"OPTIONS sip:ivr@{HOST} SIP/2.0\r\nVia: SIP/2.0/UDP {HOST}:5999;branch={branch}\r\n"
        f"From: <sip:a@{HOST}>;tag=f\r\nTo: <sip:ivr@{HOST}>\r\nCall-ID: {branch}\r\n"
        f"CSeq: 1 OPTIONS\r\nContent-Length: {len(extra)}\r\n\r\n".encode() + extra)


class SendTests(unittest.TestCase):
    timeout = 10

    def setUp(self):
        self.transport = SipTransport(reactor, HOST, 0, lambda m, s: None)
        self.transport.start()
        self.addCleanup(self.transport.stop)
        self.peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.peer.bind((HOST, 0))
        self.peer.settimeout(2.0)
        self.addCleanup(self.peer.close)
        self.peer_port = self.peer.getsockname()[1]

    def test_requests_and_responses_arrive_byte_for_byte(self):
        request = _request(new_branch())
        for _ in range(2):  # the second time the host's family comes from the memo
            self.transport.send_request(request, Destination("UDP", HOST, self.peer_port))
            data, addr = self.peer.recvfrom(65535)
            self.assertEqual(data, serialize(request))
            self.assertEqual(addr, (HOST, self.transport.port))
        response = make_response(request, 200)
        response.headers.set("Via", f"SIP/2.0/UDP {HOST}:{self.peer_port};branch=z9hG4bKx")
        self.transport.send_response(response, Source("UDP", HOST, 1))
        data, _ = self.peer.recvfrom(65535)
        self.assertEqual(data, serialize(response))

    def test_a_host_name_or_the_wrong_family_is_refused_as_before(self):
        request = _request(new_branch())
        for host in ("localhost", "example.com", "::1", "[::1]"):
            with self.assertRaises(error.InvalidAddressError):
                self.transport.send_request(request, Destination("UDP", host, 5060))

    def test_an_oversized_datagram_raises_message_length_error(self):
        request = _request(new_branch(), b"x" * 70000)
        with self.assertRaises(error.MessageLengthError):
            self.transport.send_request(request, Destination("UDP", HOST, self.peer_port))


def test_ip_family_follows_twisteds_address_checks():
    for host in ("127.0.0.1", "0.0.0.0", "255.255.255.255", "1.2.3", "1.2.3.4.5", "256.1.1.1",
                 "::1", "2001:db8::1", "[::1]", "fe80::1%eth0", "localhost", "", "<broadcast>"):
        expected = (socket.AF_INET if abstract.isIPAddress(host) else
                    socket.AF_INET6 if abstract.isIPv6Address(host) else None)
        assert _ip_family(host) == expected, host
