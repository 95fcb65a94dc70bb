"""SIP over UDP (RFC 3261 18.1.1): the datagram side of :mod:`.transport`.

Datagrams are read whole up to 65,535 bytes (Twisted's default read of 8,192 bytes cut
larger INVITEs short), the socket's receive buffer is grown for a burst of them, and a
datagram to an IP literal goes straight to ``sendto``.
"""
from __future__ import annotations

import errno
import functools
import socket

from twisted.internet import abstract, error, protocol
from twisted.logger import Logger

log = Logger(namespace="ivr.sip.transport")  # the transport's log, as before the split

MAX_UDP_DATAGRAM = 65535  # RFC 3261 18.1.1: the largest message UDP can carry
UDP_RECEIVE_BUFFER = 1 << 20  # room for 16 maximum-size datagrams (or ~400 typical ones)


@functools.lru_cache(maxsize=1024)
def _ip_family(host: str) -> int | None:
    """AF_INET / AF_INET6 for an IP literal (by Twisted's own tests), None for anything else."""
    if abstract.isIPAddress(host):
        return socket.AF_INET
    if abstract.isIPv6Address(host):
        return socket.AF_INET6
    return None


def send_datagram(port, data: bytes, addr: tuple[str, int]) -> None:
    """``port.write(data, addr)``, without its three address checks per datagram
    when ``addr`` is an IP literal of the socket's family (remembered per host).
    Anything else (a host name, the wrong family) goes through ``Port.write``, which
    raises as it always did; send errors are mapped as ``Port.write`` maps them."""
    sock = getattr(port, "socket", None)
    if sock is None or _ip_family(addr[0]) != port.addressFamily:
        port.write(data, addr)
        return
    while True:
        try:
            sock.sendto(data, addr)
            return
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            if exc.errno == errno.EMSGSIZE:
                raise error.MessageLengthError("message too long") from None
            if exc.errno == errno.ECONNREFUSED:
                return  # Port.write ignores it on an unconnected socket too
            raise


def grow_receive_buffer(port) -> None:
    """Let the UDP socket queue a burst of large datagrams (the kernel caps the size at
    net.core.rmem_max; a smaller buffer is only slower to fill, not wrong)."""
    sock = getattr(port, "socket", None)
    if sock is None:
        return
    try:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < UDP_RECEIVE_BUFFER:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
    except OSError as exc:
        log.info("could not grow the SIP/UDP receive buffer: {e}", e=exc)


class UdpProtocol(protocol.DatagramProtocol):
    """Hands every datagram to its owner's ``handle_datagram(data, addr)``."""

    noisy = False

    def __init__(self, owner) -> None:
        self.owner = owner

    def datagramReceived(self, data, addr):
        self.owner.handle_datagram(data, addr)
