"""Raw HTTP bytes through twisted.web's real parser (a Site over a StringTransport).

treq normalises what it sends; a hostile client does not.  ``Wire(resource, clock)``
feeds exactly the bytes given to a fresh ``HTTPChannel`` and parses what came back.
Use HTTP/1.0 requests: the response then ends with the connection (no chunking).
"""
from __future__ import annotations

import json

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.web.server import Site


class WireResponse:
    def __init__(self, raw: bytes):
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.status_line = lines[0]
        self.code = int(lines[0].split(b" ", 2)[1])
        self.headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            self.headers[name.strip().lower()] = value.strip()

    def header(self, name: str) -> bytes | None:
        return self.headers.get(name.lower().encode())

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<WireResponse {self.raw[:300]!r}>"


class Wire:
    def __init__(self, resource, clock, request_factory=None):
        self.clock = clock
        self.site = Site(resource, requestFactory=request_factory, reactor=clock)
        self.site.noisy = False
        self.last_transport = None

    def send(self, raw: bytes) -> WireResponse:
        proto = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
                                    peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        proto.makeConnection(transport)
        proto.dataReceived(raw)
        self.last_transport = transport
        out = transport.value()
        assert out, f"no response to {raw[:200]!r}"
        proto.connectionLost(None)
        return WireResponse(out)

    def request(self, method: bytes, target: bytes, body: bytes | None = None,
                headers: dict[bytes, bytes] | None = None) -> WireResponse:
        lines = [method + b" " + target + b" HTTP/1.0", b"Host: ivr.test"]
        for name, value in (headers or {}).items():
            lines.append(name + b": " + value)
        if body is not None:
            lines.append(b"Content-Length: %d" % len(body))
        return self.send(b"\r\n".join(lines) + b"\r\n\r\n" + (body or b""))
