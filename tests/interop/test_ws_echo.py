"""A SIP WebSocket client (wsproto over a plain socket) calls the bundled echo line of a
real ``ivr serve`` over ws://.../sip: the INVITE is answered over the same connection
with an SDP answer and our Contact says ;transport=ws; ACK and BYE end the call."""
from __future__ import annotations

import secrets
import socket
import time

import pytest
from wsproto import WSConnection
from wsproto.connection import ConnectionType
from wsproto.events import AcceptConnection, Request, TextMessage

from ivr.sip.message import Response, parse_datagram

pytestmark = pytest.mark.interop

ALIAS = f"{secrets.token_hex(5)}.invalid"


class SyncWs:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host=f"127.0.0.1:{port}", target="/sip",
                                               subprotocols=["sip"])))
        self.pending: list = []
        event = self._next()
        assert isinstance(event, AcceptConnection) and event.subprotocol == "sip", event

    def _next(self):
        while not self.pending:
            data = self.sock.recv(65536)
            assert data, "connection closed"
            self.ws.receive_data(data)
            self.pending.extend(self.ws.events())
        return self.pending.pop(0)

    def send(self, text: str) -> None:
        self.sock.sendall(self.ws.send(TextMessage(data=text)))

    def response(self, method: str, final: bool = True) -> Response:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            event = self._next()
            if isinstance(event, TextMessage) and event.data.strip():
                message = parse_datagram(event.data.encode())
                if isinstance(message, Response) and message.cseq[1] == method \
                        and (message.status >= 200 or not final):
                    return message
        raise AssertionError(f"no response to {method}")


OFFER = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
         "a=sendrecv\r\n")


def request(method: str, uri: str, cseq: int, call_id: str, to_tag: str = "",
            body: str = "") -> str:
    to = "<sip:echo@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    content = "Content-Type: application/sdp\r\n" if body else ""
    return (f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/WS {ALIAS};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:visitor@{ALIAS}>;tag=v1\r\nTo: {to}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"Contact: <sip:visitor@{ALIAS};transport=ws>\r\n{content}"
            f"Content-Length: {len(body)}\r\n\r\n{body}")


def test_ws_client_calls_the_echo_line(server):
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    client = SyncWs(server.http_port)
    call_id = f"{secrets.token_hex(8)}@{ALIAS}"
    client.send(request("INVITE", "sip:echo@127.0.0.1", 1, call_id,
                        body=OFFER.format(port=rtp.getsockname()[1])))
    ok = client.response("INVITE")
    rtp.close()
    assert ok.status == 200, ok
    assert b"m=audio " in ok.body and b"RTP/AVP 0" in ok.body
    assert ok.headers.get("Contact").endswith(f":{server.http_port};transport=ws>")
    assert "received=127.0.0.1" in ok.headers.get("Via")
    tag = ok.to.tag
    client.send(request("ACK", "sip:echo@127.0.0.1", 1, call_id, to_tag=tag))
    server.wait_for_log("call ")
    client.send(request("BYE", "sip:echo@127.0.0.1", 2, call_id, to_tag=tag))
    assert client.response("BYE").status == 200
