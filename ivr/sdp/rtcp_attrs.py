"""Where the peer wants RTCP: ``a=rtcp`` (RFC 3605) and ``a=rtcp-mux`` (RFC 5761), pure.

``a=rtcp:PORT [IN IP4|IP6 ADDRESS]`` names the peer's RTCP port (and address) when it is not
the RTP port + 1 on the c= address, e.g. a phone behind NAT that learnt its mapped ports
with STUN.  ``a=rtcp-mux`` offers RTP and RTCP on the one RTP port; we accept it in every
answer (and then send and receive RTCP on our RTP port).  A malformed ``a=rtcp`` is ignored
(the RFC 3550 default applies), never an error: it only tunes where reports go.
"""
from __future__ import annotations

import ipaddress

from .session import MediaDescription

__all__ = ["RtcpTarget", "rtcp_target", "offers_mux", "MUX_ATTRIBUTE"]

MUX_ATTRIBUTE = "rtcp-mux"


class RtcpTarget(tuple):
    """(ip or None, port or None): None means 'the RFC 3550 default' for that part."""

    __slots__ = ()

    def __new__(cls, ip: str | None = None, port: int | None = None):
        return super().__new__(cls, (ip, port))

    @property
    def ip(self) -> str | None:
        return self[0]

    @property
    def port(self) -> int | None:
        return self[1]


def rtcp_target(m: MediaDescription) -> RtcpTarget:
    """The peer's ``a=rtcp`` port and address (each None when absent or unusable)."""
    value = m.attribute("rtcp")
    if not value:
        return RtcpTarget()
    parts = value.split()
    if not parts[0].isdigit() or not 0 < int(parts[0]) < 65536:
        return RtcpTarget()
    port = int(parts[0])
    ip = None
    if len(parts) == 4 and parts[1].upper() == "IN" and parts[2].upper() in ("IP4", "IP6"):
        try:
            address = ipaddress.ip_address(parts[3])
        except ValueError:  # a host name: we resolve none, the c= address stays
            address = None
        if address is not None and not address.is_multicast and not address.is_unspecified:
            ip = str(address)
    return RtcpTarget(ip, port)


def offers_mux(m: MediaDescription) -> bool:
    return m.has_attribute(MUX_ATTRIBUTE)
