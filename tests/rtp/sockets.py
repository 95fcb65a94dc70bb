"""Real loopback UDP sockets for the batched-I/O tests (``test_mmsg``, ``test_sendbatch``,
``test_srtp_batch``): a bound non-blocking socket, and everything waiting on one."""
from __future__ import annotations

import socket


def udp(host: str = "127.0.0.1") -> socket.socket:
    """A non-blocking UDP socket on a free port of ``host`` (IPv4 or IPv6)."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.setblocking(False)
    return s


def drain(sock: socket.socket) -> list[tuple[bytes, tuple]]:
    """Every datagram waiting on ``sock`` now, as ``(data, source)``."""
    out = []
    while True:
        try:
            out.append(sock.recvfrom(65536))
        except BlockingIOError:
            return out


def drain_data(sock: socket.socket) -> list[bytes]:
    """Every datagram waiting on ``sock`` now, the bytes only."""
    return [data for data, _ in drain(sock)]
