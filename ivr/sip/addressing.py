"""Where a SIP message came from and where its answer goes: :class:`Source` and
:class:`Destination`, the ``received``/``rport`` stamp on a request's top Via (RFC 3261
18.2.1, RFC 3581 4) and the address a response is sent to (18.2.2), over a datagram or
once a connection is gone.

Pure: the transport (:mod:`.transport`, which re-exports these) does the sending.
"""
from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field

from .message import Request, Response


@dataclass(frozen=True)
class Source:
    """Where a message came from (or where a response goes)."""

    transport: str  # "UDP", "TCP", "TLS", "WS" or "WSS"
    host: str
    port: int
    connection: object = field(default=None, compare=False, hash=False, repr=False)

    @property
    def reliable(self) -> bool:
        return self.transport != "UDP"


@dataclass(frozen=True)
class Destination:
    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        return self.transport != "UDP"


@functools.lru_cache(maxsize=1024)
def _same_host(a: str, b: str) -> bool:
    """Whether two host texts are the same IP address (pure, so its answers are kept:
    a phone's sent-by and its source address repeat on every request)."""
    try:
        return ipaddress.ip_address(a.strip("[]")) == ipaddress.ip_address(b.strip("[]"))
    except ValueError:
        return False


def stamp_via(request: Request, source: Source) -> None:
    """Add ``received`` / fill ``rport`` on the top Via (RFC 3261 18.2.1, RFC 3581 4)."""
    raw = request.headers.get("Via")
    if raw is None:
        return
    via = request.top_via
    changed = via
    rport = via.param("rport")
    if rport is not None and rport == "":
        changed = changed.with_param("rport", str(source.port))
        changed = changed.with_param("received", source.host)
    elif not _same_host(via.host, source.host):
        changed = changed.with_param("received", source.host)
    if changed is not via:
        request.headers.pop_first("Via")
        request.headers.prepend("Via", str(changed))


def reconnect_destination(response: Response, default_port: int = 5060) -> tuple[str, int]:
    """Where a response goes over a reliable transport once the request's connection is
    gone (18.2.2): ``received`` (else the sent-by host) and the sent-by port, which is the
    peer's listening port (not the ephemeral port the closed connection came from)."""
    via = response.top_via
    host = (via.param("received") or via.host_no_brackets).strip("[]")
    return host, via.port or default_port


def response_destination(response: Response, default_port: int = 5060) -> tuple[str, int]:
    """Where an unreliable response goes, from its top Via (18.2.2 and RFC 3581 4)."""
    via = response.top_via
    host = via.param("maddr") or via.param("received") or via.host_no_brackets
    host = host.strip("[]")
    rport = via.param("rport")
    if rport:
        return host, int(rport)
    return host, via.port or default_port
