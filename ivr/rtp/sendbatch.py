"""The media clock's outgoing batch: a firing's RTP packets leave together, in one call.

While the batch is open (:meth:`SendBatch.open` .. :meth:`SendBatch.close`, the media clock
around each firing and the receiver around each read round) a session's ``_transmit`` adds
its packet here instead of calling ``sendto``; :meth:`flush` hands them all to the batched
I/O backend (:mod:`ivr.rtp.mmsg`: one ``sendmmsg`` per run of packets from one socket, every
socket in one call into C, or ``sendto`` each with the pure backend).  A packet that could not
be sent (a full buffer, a socket closed meanwhile) counts in its session's ``send_errors``,
exactly as a failed ``sendto`` did: none is dropped without a count.  Each session keeps its
own socket and port; its packet and octet counters are counted when the packet is added, as
before when it was sent.

Outside an open batch (a packet relayed on arrival in a reactor turn, RTCP, DTLS, close)
sessions send at once, as before.
"""
from __future__ import annotations

__all__ = ["SendBatch"]


class SendBatch:
    def __init__(self, io) -> None:
        self.io = io
        self.active = False
        self._socks: list = []
        self._datas: list = []
        self._addrs: list = []
        self._counters: list = []  # each packet's owner's counters dict (send_errors)
        self.flushes = 0  # calls into the backend
        self.packets = 0  # packets handed to it
        self.failed = 0  # of them, not sent (counted in their sessions' send_errors)

    def open(self) -> bool:
        """Start collecting; returns whether it was open already (then the outer opener
        flushes and closes it)."""
        was, self.active = self.active, True
        return was

    def add(self, sock, data: bytes, addr, counters: dict) -> None:
        self._socks.append(sock)
        self._datas.append(data)
        self._addrs.append(addr)
        self._counters.append(counters)

    def flush(self) -> None:
        socks = self._socks
        if not socks:
            return
        datas, addrs, counters = self._datas, self._addrs, self._counters
        self._socks, self._datas, self._addrs, self._counters = [], [], [], []
        self.flushes += 1
        self.packets += len(socks)
        try:
            failed = self.io.send_many(socks, datas, addrs)
        except Exception:  # the backend's own failure: send each as before, never lose one
            failed = [i for i in range(len(socks)) if not _sendto(socks[i], datas[i], addrs[i])]
        for i in failed:
            counters[i]["send_errors"] += 1
        self.failed += len(failed)

    def close(self) -> None:
        """Flush and stop collecting."""
        try:
            self.flush()
        finally:
            self.active = False

    @property
    def pending(self) -> int:
        return len(self._socks)


def _sendto(sock, data: bytes, addr) -> bool:
    try:
        sock.sendto(data, addr)
        return True
    except Exception:
        return False
