"""A SIP WebSocket client for tests (wsproto over a Twisted TCP or TLS connection)."""
from __future__ import annotations

from twisted.internet import defer, protocol, reactor
from wsproto import WSConnection
from wsproto.connection import ConnectionType
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, RejectConnection,
                            RejectData, Request, TextMessage)

from ivr.sip.message import parse_datagram


class WsClient(protocol.Protocol):
    """Opens ``/sip`` with ``subprotocols`` and ``origin``; ``accepted`` fires with the
    AcceptConnection or the RejectConnection (``status``); ``messages`` collects the
    SIP messages received, ``texts`` the raw ones."""

    def __init__(self, host: str, subprotocols=("sip",), origin: str | None = None,
                 path: str = "/sip") -> None:
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.host, self.path = host, path
        self.subprotocols, self.origin = list(subprotocols), origin
        self.accepted: defer.Deferred = defer.Deferred()
        self.closed: defer.Deferred = defer.Deferred()
        self.close_code = None
        self.texts: list[bytes] = []
        self.messages: list = []
        self.reject_body = b""

    def connectionMade(self):
        extra = [("Origin", self.origin)] if self.origin is not None else []
        self.transport.write(self.ws.send(Request(host=self.host, target=self.path,
                                                  subprotocols=self.subprotocols,
                                                  extra_headers=extra)))

    def dataReceived(self, data):
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, (AcceptConnection, RejectConnection)):
                if not self.accepted.called:
                    self.accepted.callback(event)
            elif isinstance(event, RejectData):
                self.reject_body += event.data
            elif isinstance(event, (TextMessage, BytesMessage)):
                raw = event.data.encode() if isinstance(event, TextMessage) else event.data
                self.texts.append(raw)
                if raw.strip(b"\r\n"):
                    self.messages.append(parse_datagram(raw))
            elif isinstance(event, CloseConnection):
                self.close_code = event.code
                try:
                    self.transport.write(self.ws.send(event.response()))
                except Exception:
                    pass

    def send(self, data: bytes | str, binary: bool = False) -> None:
        if isinstance(data, bytes) and not binary:
            data = data.decode()
        event = BytesMessage(data=data) if binary else TextMessage(data=data)
        self.transport.write(self.ws.send(event))

    def connectionLost(self, reason=protocol.connectionDone):
        if not self.accepted.called:
            self.accepted.errback(reason)
        self.closed.callback(None)


def open_ws(port: int, host: str = "127.0.0.1", **kwargs) -> WsClient:
    client = WsClient(f"{host}:{port}", **kwargs)
    protocol.ClientCreator(reactor, lambda: client).connectTCP(host, port)
    return client
