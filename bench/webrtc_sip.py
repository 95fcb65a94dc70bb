"""B8's load generator, the signalling half: one SIP-over-WebSocket connection per call
(RFC 7118, as a browser tab opens one), the offers it sends and the answer it reads.

``offer_sdp`` builds what Chrome sends for an audio-only call (``UDP/TLS/RTP/SAVPF``,
``a=ice-ufrag``/``a=ice-pwd``, ``a=fingerprint``, ``a=setup:actpass``, ``a=rtcp-mux``,
BUNDLE, one host candidate) or, for the reference calls, a plain ``RTP/AVP`` offer from
the same client.  ``read_answer`` takes out what the client needs: where to send, the
server's ICE credentials, its fingerprint and its ``a=setup``.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from twisted.internet import protocol
from wsproto import WSConnection
from wsproto.connection import ConnectionType
from wsproto.events import (AcceptConnection, CloseConnection, RejectConnection, Request,
                            TextMessage)

from ivr.sip.message import Request as SipRequest
from ivr.sip.message import Response, make_response, parse_datagram, serialize


def offer_sdp(mode: str, port: int, *, ufrag: str = "", pwd: str = "",
              fingerprint: str = "") -> str:
    lines = ["v=0", f"o=- {secrets.randbelow(10**12)} 2 IN IP4 127.0.0.1", "s=-", "t=0 0"]
    if mode == "webrtc":
        lines += ["a=group:BUNDLE 0", "a=msid-semantic: WMS",
                  f"m=audio {port} UDP/TLS/RTP/SAVPF 111 0 8 101", "c=IN IP4 127.0.0.1",
                  "a=rtcp:9 IN IP4 0.0.0.0",
                  f"a=candidate:1 1 udp 2122260223 127.0.0.1 {port} typ host generation 0",
                  f"a=ice-ufrag:{ufrag}", f"a=ice-pwd:{pwd}", "a=ice-options:trickle",
                  f"a=fingerprint:{fingerprint}", "a=setup:actpass", "a=mid:0",
                  "a=sendrecv", "a=rtcp-mux", "a=rtpmap:111 opus/48000/2",
                  "a=fmtp:111 minptime=10;useinbandfec=1", "a=rtpmap:0 PCMU/8000",
                  "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000",
                  f"a=ssrc:{secrets.randbits(31)} cname:bench"]
    else:
        lines += ["c=IN IP4 127.0.0.1", f"m=audio {port} RTP/AVP 0 101",
                  "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=sendrecv"]
    return "\r\n".join(lines) + "\r\n"


@dataclass
class Answer:
    ip: str
    port: int
    payload_type: int | None = None
    ufrag: str | None = None
    pwd: str | None = None
    fingerprint: str | None = None
    setup: str | None = None


def read_answer(body: bytes) -> Answer:
    """What the client needs from the server's SDP answer (raises ValueError if unusable)."""
    ip, port, pt, attrs = None, None, None, {}
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("c=IN IP4 "):
            ip = line.split()[2]
        elif line.startswith("m=audio "):
            parts = line.split()
            port, pt = int(parts[1]), int(parts[3])
        elif line.startswith("a=") and ":" in line:
            name, _, value = line[2:].partition(":")
            attrs.setdefault(name, value.strip())
    if not ip or not port:
        raise ValueError(f"answer without c= or m=audio: {body[:200]!r}")
    return Answer(ip, port, pt, attrs.get("ice-ufrag"), attrs.get("ice-pwd"),
                  attrs.get("fingerprint"), attrs.get("setup"))


class SipWs(protocol.Protocol):
    """One call's WebSocket: INVITE when it opens, ACK the 200, BYE on request.
    ``owner`` gets ``on_ws_open()``, ``on_response(Response)``, ``on_bye()`` (the server hung
    up) and ``on_ws_closed()``."""

    def __init__(self, owner, host: str, target: str) -> None:
        self.owner, self.host, self.target = owner, host, target
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.alias = f"{secrets.token_hex(5)}.invalid"
        self.call_id = f"{secrets.token_hex(8)}@{self.alias}"
        self.from_tag = secrets.token_hex(4)
        self.to_tag: str | None = None
        self.remote_target = f"sip:{target}@{host.split(':')[0]}"
        self.cseq = 0
        self.open = False

    # ------------------------------------------------------------------ WebSocket
    def connectionMade(self):
        self.transport.write(self.ws.send(Request(host=self.host, target="/sip",
                                                  subprotocols=["sip"])))

    def dataReceived(self, data):
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                self.open = True
                self.owner.on_ws_open()
            elif isinstance(event, RejectConnection):
                self.owner.fail(f"WebSocket refused: {event.status_code}")
            elif isinstance(event, TextMessage):
                if event.data.strip():
                    self._sip(event.data.encode())
            elif isinstance(event, CloseConnection):
                self.open = False
                try:
                    self.transport.write(self.ws.send(event.response()))
                except Exception:
                    pass
                self.transport.loseConnection()

    def connectionLost(self, reason=protocol.connectionDone):
        self.open = False
        self.owner.on_ws_closed()

    def close(self) -> None:
        if self.open:
            self.open = False
            try:
                self.transport.write(self.ws.send(CloseConnection(code=1000)))
            except Exception:
                pass
        self.transport.loseConnection()

    # ------------------------------------------------------------------ SIP
    def _send(self, text: str) -> None:
        if self.open:
            self.transport.write(self.ws.send(TextMessage(data=text)))

    def _request(self, method: str, cseq: int, body: str = "") -> str:
        to = f"<sip:{self.target}@{self.host.split(':')[0]}>" + (
            f";tag={self.to_tag}" if self.to_tag else "")
        uri = self.remote_target if method != "INVITE" else to[1:].split(">")[0]
        content = "Content-Type: application/sdp\r\n" if body else ""
        return (f"{method} {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/WS {self.alias};branch=z9hG4bK{secrets.token_hex(8)}\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:visitor@{self.alias}>;tag={self.from_tag}\r\nTo: {to}\r\n"
                f"Call-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\n"
                f"Contact: <sip:visitor@{self.alias};transport=ws>\r\n"
                f"User-Agent: ivr-bench-b8\r\n{content}"
                f"Content-Length: {len(body.encode())}\r\n\r\n{body}")

    def invite(self, sdp: str) -> None:
        self.cseq += 1
        self._send(self._request("INVITE", self.cseq, sdp))

    def ack(self, response: Response) -> None:
        self.to_tag = response.to.tag
        contacts = response.contacts
        if contacts:
            self.remote_target = str(contacts[0].uri)
        self._send(self._request("ACK", response.cseq[0]))

    def bye(self) -> None:
        self.cseq += 1
        self._send(self._request("BYE", self.cseq))

    def _sip(self, raw: bytes) -> None:
        try:
            message = parse_datagram(raw)
        except ValueError as e:
            self.owner.fail(f"unparsable SIP from the server: {e}")
            return
        if isinstance(message, Response):
            self.owner.on_response(message)
            return
        assert isinstance(message, SipRequest)
        if message.method == "ACK":
            return
        status = 200 if message.method in ("BYE", "OPTIONS", "UPDATE") else 501
        self._send(serialize(make_response(message, status)).decode())
        if message.method == "BYE":
            self.owner.on_bye()
