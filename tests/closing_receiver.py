"""A real HTTP receiver on 127.0.0.1 that closes every connection after one response.

It answers ``HTTP/1.1 200`` with a Content-Length and *no* ``Connection: close`` header, then
closes the socket: what many small receivers (and keep-alive servers whose idle timer just
ran out) do.  A client that pooled the connection only learns it is dead when it tries to
use it again.  Used by the webhook tests of both status webhooks and the ``webhook`` verb.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet import protocol


@dataclass
class Received:
    at: float                      # reactor.seconds() when the whole request was in
    method: str
    path: str
    headers: dict[str, str]        # lower-cased names
    body: bytes


class _OneShotHttp(protocol.Protocol):
    def connectionMade(self):
        self.factory.connections += 1
        self.buffer = b""
        self.answered = False

    def dataReceived(self, data):
        if self.answered:
            return
        self.buffer += data
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(rest) < length:
            return
        self.answered = True
        self.factory.requests.append(
            Received(self.factory.reactor.seconds(), method, path, headers, rest[:length]))
        if not self.factory.answer:
            self.transport.loseConnection()     # read it, then hang up without a word
            return
        body = self.factory.reply
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.transport.loseConnection()


@dataclass(eq=False)
class ClosingReceiver(protocol.ServerFactory):
    reactor: object
    reply: bytes = b"{}"
    answer: bool = True
    requests: list[Received] = field(default_factory=list)
    connections: int = 0
    protocol = _OneShotHttp

    def listen(self):
        """Listen on 127.0.0.1, a free port; returns the IListeningPort."""
        self.port = self.reactor.listenTCP(0, self, interface="127.0.0.1")
        return self.port

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port.getHost().port}{path}"
