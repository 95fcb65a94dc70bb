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

SRTP (``add_srtp``, when the backend can: ``io.srtp``, the native one): an encrypted session
adds its *plain* RTP packet and its :class:`~ivr.rtp.srtp.SrtpContext`; the flush hands the
contexts' libsrtp sessions to the backend with the packets, which protects each in place in
its send buffer just before ``sendmmsg`` (``send_many_srtp``; libsrtp's own code, through
pylibsrtp's copy of the library).  A packet libsrtp refuses is not sent and counts in its
context's ``protect_errors``, as when the session protected it itself (its sequence number
is spent; unlike then, it was already counted in the session's ``packets_sent``).  Plain
packets in the same batch are untouched, and a batch with no SRTP packet is sent exactly as
before (``add`` does not change).
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
        self._secure: list = []  # (index, SrtpContext) of the packets to protect at flush
        self.srtp = bool(getattr(io, "srtp", False))  # add_srtp can be used
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

    def add_srtp(self, sock, data: bytes, addr, counters: dict, context) -> None:
        """``data`` is a plain RTP packet that leaves protected with ``context`` (only when
        ``self.srtp``)."""
        self._secure.append((len(self._socks), context))
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
        if self._secure:
            failed = self._flush_srtp(socks, datas, addrs)
        else:
            try:
                failed = self.io.send_many(socks, datas, addrs)
            except Exception:  # the backend's own failure: send each as before, never lose one
                failed = [i for i in range(len(socks))
                          if not _sendto(socks[i], datas[i], addrs[i])]
        for i in failed:
            counters[i]["send_errors"] += 1
        self.failed += len(failed)

    def _flush_srtp(self, socks, datas, addrs) -> list[int]:
        secure, self._secure = self._secure, []
        ctxs = [0] * len(socks)
        for i, context in secure:
            ctxs[i] = context.tx_address
        try:
            failed, refused = self.io.send_many_srtp(socks, datas, addrs, ctxs)
        except Exception:  # the backend's own failure: protect and send each in Python
            contexts = dict(secure)
            failed, refused = [], []
            for i in range(len(socks)):
                data = datas[i]
                if i in contexts:
                    data = contexts[i].protect(data)  # a refusal is counted by the context
                    if data is None:
                        continue
                if not _sendto(socks[i], data, addrs[i]):
                    failed.append(i)
        if refused:
            contexts = dict(secure)
            for i, _status in refused:
                contexts[i].count_protect_error()
        return failed

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
