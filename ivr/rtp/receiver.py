"""Batched RTP receive: the media clock reads every RTP/RTCP socket itself, once per firing.

The reactor does not watch the server's RTP sockets.  They are registered here, in an epoll
set of their own, and the media clock calls :meth:`MediaReceiver.poll` at the end of each
firing (after the firing's packets went out).  Why:

* **The clock fires on time.**  The reactor sleeps until the clock's timer (or a SIP
  message) instead of waking for every arriving packet, so at a few hundred calls (20 000
  packets/s in) the timer does not queue behind a batch of reads; receiving happens right
  after sending, in the same firing (bench/README.md has the figures).
* **Less work per packet.**  A reactor read goes through ``callWithLogger``, Twisted's
  ``Port.doRead`` loop and an ``EAGAIN`` exception per wake-up; here one ``epoll.poll(0)``
  finds every ready socket, and one call into C reads them all (``recvmmsg`` on each, up to
  ``max_rounds`` datagrams per socket: :mod:`ivr.rtp.mmsg`; ``recvfrom`` loops with the pure
  Python backend).

A poll reads at most ``max_rounds`` datagrams from each socket (a socket with a burst queued
cannot starve the others, and the firing's time stays bounded); every datagram is read
before the first handler runs, then they are handed out in order per socket.  What is left
is read at the next firing, 20/phases ms later.  A handler that removes a socket (or closes
it and a new one takes its descriptor) drops that socket's datagrams not yet handed out.
Packets the handlers send (relayed on arrival) go out together after the round when the
media clock gave the receiver its batch (``use_batch``).

Arrival time: a packet is stamped when it is read, so it is late by up to one firing interval
(5 ms with the server's four phases).  For a steady sender that lateness is nearly constant
from packet to packet (both ends run a 20 ms cadence), so the RFC 3550 jitter estimate, which
measures its *variation*, stays close to the truth; a sender whose phase slides across a
firing boundary adds one step of up to 5 ms, which the estimator's 1/16 gain smooths.
Media timeouts, DTMF end timeouts and RTCP need 100 ms resolution, far coarser.

Prompt sockets (``watch``): a session that relays its packets on arrival (a bridge, the echo
line: :mod:`ivr.rtp.fastpath`) must not wait for the next firing either.  Its socket moves to
a second epoll set whose own descriptor the reactor watches, so a datagram is read (and
relayed) in the reactor turn it wakes; a busy second set is still read in rounds, every ready
socket at once.  ``unwatch`` moves it back.  Without a reactor that can watch a descriptor
(``task.Clock`` in tests) a socket stays on the clock's polls.

SRTP (``set_srtp``, with the native backend: ``io.srtp``): a socket whose session is
encrypted is read with its libsrtp inbound session beside it, and each datagram whose first
byte is 128..191 (RTP or RTCP, RFC 7983) is unprotected in C right after ``recvmmsg``
(:meth:`~ivr.rtp.mmsg.NativeIO.recv_many_srtp`); the plain packet goes straight to the
session's plain RTP (or RTCP) handler, and one libsrtp refuses (wrong key, forged, replayed,
too long) is dropped and counted in the session's :class:`~ivr.rtp.srtp.SrtpContext` as its
own ``unprotect`` counts it.  Anything else (STUN, DTLS) goes to the socket's handler as it
arrived, where the WebRTC demultiplexer (or SRTP in Python) sees it as before.  A round in
which no ready socket is encrypted reads exactly as without SRTP.
"""
from __future__ import annotations

import select
from typing import Callable

from . import mmsg
from .mmsg import MAX_DATAGRAM

__all__ = ["MediaReceiver", "MAX_DATAGRAM"]

Handler = Callable[[bytes, tuple], None]


class MediaReceiver:
    def __init__(self, max_rounds: int = 8, io=None) -> None:
        """``io``: the batched socket I/O backend (:mod:`ivr.rtp.mmsg`); the process's
        default when None."""
        self.max_rounds = max_rounds
        self.io = io if io is not None else mmsg.default()
        self._batch = None  # the media clock's SendBatch, open while a round's handlers run
        self._epoll = select.epoll()
        self._handlers: dict[int, tuple[object, Handler]] = {}  # fd -> (socket, handler)
        self._prompt: _PromptSet | None = None  # sockets read as soon as they are readable
        self._prompt_fds: set[int] = set()
        # fd -> (inbound srtp_t address, SrtpContext, plain RTP handler, plain RTCP handler,
        # socket): sockets unprotected in C (set_srtp)
        self._srtp: dict[int, tuple] = {}
        self.packets = 0  # datagrams read
        self.errors = 0  # handler exceptions and read errors (never raised to the clock)

    @property
    def sockets(self) -> int:
        return len(self._handlers)

    def add(self, sock, handler: Handler) -> None:
        """Read ``sock`` (non-blocking) at every poll; ``handler(data, addr)`` per datagram."""
        sock.setblocking(False)
        fd = sock.fileno()
        self._handlers[fd] = (sock, handler)
        self._srtp.pop(fd, None)  # a descriptor reused: never the closed socket's context
        self._epoll.register(fd, select.EPOLLIN)

    def set_srtp(self, sock, context, on_rtp: Handler, on_rtcp: Handler) -> bool:
        """Unprotect ``sock``'s SRTP/SRTCP with ``context`` (an SrtpContext) in the batched
        read, handing the plain packets to ``on_rtp``/``on_rtcp``; None: no more (the
        socket's handler gets every datagram as it arrived).  True when it is done natively;
        False (nothing changes) with a backend that cannot or a context without native
        handles."""
        fd = sock.fileno()
        self._srtp.pop(fd, None)
        handles = context.native_handles if context is not None else None
        if handles is None or not self.io.srtp or fd not in self._handlers:
            return False
        self._srtp[fd] = (handles[1], context, on_rtp, on_rtcp, sock)
        return True

    def remove(self, sock) -> None:
        fd = sock.fileno()
        self._srtp.pop(fd, None)
        if self._handlers.pop(fd, None) is not None:
            epoll = self._epoll
            if fd in self._prompt_fds:
                self._prompt_fds.discard(fd)
                epoll = self._prompt.epoll
            try:
                epoll.unregister(fd)
            except (OSError, ValueError):  # already closed
                pass

    def watch(self, sock, reactor) -> bool:
        """Read ``sock`` (added before) as soon as a datagram arrives, in the reactor's turn,
        instead of at the clock's polls.  False (and nothing changes) when ``reactor`` cannot
        watch a descriptor or the socket is not ours."""
        fd = sock.fileno()
        if fd not in self._handlers or fd in self._prompt_fds:
            return fd in self._prompt_fds
        if self._prompt is None:
            if not hasattr(reactor, "addReader"):
                return False
            self._prompt = _PromptSet(self, reactor)
        self._epoll.unregister(fd)
        self._prompt.epoll.register(fd, select.EPOLLIN)
        self._prompt_fds.add(fd)
        return True

    def unwatch(self, sock) -> None:
        """Back to the clock's polls."""
        fd = sock.fileno()
        if fd not in self._prompt_fds:
            return
        self._prompt_fds.discard(fd)
        self._prompt.epoll.unregister(fd)
        self._epoll.register(fd, select.EPOLLIN)

    @property
    def watched(self) -> int:
        return len(self._prompt_fds)

    def use_batch(self, batch) -> None:
        """Collect what handlers send during a read (``batch.open``) and send it after."""
        self._batch = batch

    def poll(self) -> int:
        """Read what has arrived on every socket; returns the number of datagrams read."""
        if not self._handlers:
            return 0
        return self._read(self._epoll.poll)

    def _read(self, poll) -> int:
        events = poll(0)
        if not events:
            return 0
        handlers = self._handlers
        entries, socks, fds = [], [], []
        for fd, _mask in events:
            entry = handlers.get(fd)
            if entry is not None:
                entries.append(entry)
                socks.append(entry[0])
                fds.append(fd)
        secure = self._secure_round(socks, fds) if self._srtp else None
        if secure is not None:
            got, errors = self.io.recv_many_srtp(socks, fds, [e[0] if e else 0 for e in secure],
                                                 self.max_rounds, MAX_DATAGRAM)
        else:
            got, errors = self.io.recv_many(socks, fds, self.max_rounds, MAX_DATAGRAM)
        self.errors += errors  # ICMP port unreachable from an earlier send, and the like
        batch = self._batch
        nested = True if batch is None else batch.open()
        read = 0
        try:
            if secure is not None:
                read = self._hand_out_srtp(got, entries, fds, secure)
            else:
                for i, data, addr in got:
                    entry = entries[i]
                    if handlers.get(fds[i]) is not entry:  # removed by a handler before
                        continue
                    read += 1
                    try:
                        entry[1](data, addr)
                    except Exception:  # a handler's failure is its own; keep reading the others
                        self._failed()
        finally:
            if not nested:
                batch.close()
        self.packets += read
        return read

    def _secure_round(self, socks, fds) -> list | None:
        """Each ready socket's SRTP entry (None: plain), or None when none is encrypted."""
        srtp = self._srtp
        secure = [srtp.get(fd) for fd in fds]
        found = False
        for j, e in enumerate(secure):
            if e is not None:
                if e[4] is socks[j]:
                    found = True
                else:
                    secure[j] = None
        return secure if found else None

    def _hand_out_srtp(self, got, entries, fds, secure) -> int:
        handlers, read = self._handlers, 0
        for i, data, addr, status in got:
            entry = entries[i]
            if handlers.get(fds[i]) is not entry:  # removed by a handler before
                continue
            read += 1
            try:
                if status == 0:  # not SRTP (STUN, DTLS), or a plain socket
                    entry[1](data, addr)
                elif status == 1:
                    secure[i][2](data, addr)
                elif status == 2:
                    secure[i][3](data, addr)
                else:  # refused by libsrtp: dropped and counted as unprotect counts it
                    secure[i][1].count_drop(-status)
            except Exception:
                self._failed()
        return read

    def _failed(self) -> None:
        """A handler's failure is its own; the others are still read."""
        self.errors += 1
        from twisted.python import log
        log.err(None, "MediaReceiver: datagram handler failed")

    def close(self) -> None:
        self._handlers.clear()
        self._srtp.clear()
        self._epoll.close()
        if self._prompt is not None:
            self._prompt.close()
            self._prompt = None
        self._prompt_fds.clear()


class _PromptSet:
    """The second epoll set, its descriptor watched by the reactor (an IReadDescriptor)."""

    def __init__(self, receiver: MediaReceiver, reactor) -> None:
        self.receiver = receiver
        self.reactor = reactor
        self.epoll = select.epoll()
        reactor.addReader(self)

    def fileno(self) -> int:
        return self.epoll.fileno()

    def doRead(self):  # noqa: N802 (Twisted's name)
        # Every socket ready now, up to max_rounds datagrams each, in one call.  The
        # reactor's poll is level-triggered, so whatever is left wakes it again at once.
        self.receiver._read(self.epoll.poll)

    def connectionLost(self, reason) -> None:  # noqa: N802
        pass

    def logPrefix(self) -> str:  # noqa: N802
        return "MediaReceiver"

    def close(self) -> None:
        self.reactor.removeReader(self)
        self.epoll.close()
