"""Batched datagram I/O for the media plane: ``sendmmsg``/``recvmmsg`` when the native
extension is built, ``sendto``/``recvfrom`` loops otherwise, behind one interface.

Two backends with the same methods:

* :class:`NativeIO`, over ``ivr.rtp._mmsg`` (a cffi extension compiled from
  ``_mmsg_build.py`` at install): one call into C reads every ready socket
  (``recvmmsg``, up to ``n`` datagrams each) or sends a whole batch (``sendmmsg``, one per
  run of datagrams from the same socket).
* :class:`PurePythonIO`: the same with one ``sendto``/``recvfrom`` per datagram.

:func:`default` picks one once per process, the native one unless the extension is missing
or fails to load or ``IVR_MEDIA_IO=pure`` is set, and logs the choice once::

    media socket I/O: sendmmsg/recvmmsg (native)
    media socket I/O: sendto/recvfrom (pure Python: <reason>)

The contract both keep (tests/rtp/test_mmsg.py runs every case on both):

* ``send_many(socks, datas, addrs)`` tries every datagram once and returns the indices of
  those that could not be sent (a full buffer, a closed socket, a bad address): the native
  one sends what ``sendmmsg`` did not take with ``sendto``, so nothing is lost uncounted.
* ``recv_many(socks, fds, n)`` reads up to ``n`` datagrams from each socket (non-blocking) and
  returns ``(datagrams, errors)``: ``(index, data, addr)`` in order per socket, ``addr`` as
  ``recvfrom`` gives it (``(host, port)``, four fields for IPv6), a datagram longer than
  ``bufsize`` truncated as ``recvfrom(bufsize)`` truncates it; ``errors``: sockets whose read
  failed other than with ``EAGAIN`` (an ICMP error from an earlier send, a closed socket).
* ``sendmmsg(sock, packets)`` / ``recvmmsg(sock, n)``: the same for one socket.
"""
from __future__ import annotations

import importlib
import os
import socket
import struct

__all__ = ["NativeIO", "PurePythonIO", "default", "load", "MAX_DATAGRAM", "ENV"]

MAX_DATAGRAM = 2048  # RTP/RTCP from phones and trunks: far below any MTU-sized packet
ENV = "IVR_MEDIA_IO"  # "pure": never the native extension
_CACHE_LIMIT = 65536  # addresses remembered (packed and unpacked); cleared when full
_AF = struct.Struct("=H")
_PORT = struct.Struct("!H")
_V6_TAIL = struct.Struct("=I")


class PurePythonIO:
    name = "pure"
    description = "sendto/recvfrom"
    srtp = False  # protects/unprotects in its batches (NativeIO with SRTP entry points)

    def send_many(self, socks, datas, addrs) -> list[int]:
        failed = []
        for i, sock in enumerate(socks):
            try:
                sock.sendto(datas[i], addrs[i])
            except Exception:  # full buffer, unreachable, closed, a bad address
                failed.append(i)
        return failed

    def recv_many(self, socks, fds, n: int, bufsize: int = MAX_DATAGRAM):
        out, errors = [], 0
        for i, sock in enumerate(socks):
            for _ in range(n):
                try:
                    data, addr = sock.recvfrom(bufsize)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # ICMP port unreachable from an earlier send, and the like
                    errors += 1
                    break
                out.append((i, data, addr))
        return out, errors

    def sendmmsg(self, sock, packets) -> int:
        """Send ``[(data, addr), ...]`` from ``sock``; returns how many were sent."""
        failed = self.send_many([sock] * len(packets), [p[0] for p in packets],
                                [p[1] for p in packets])
        return len(packets) - len(failed)

    def recvmmsg(self, sock, n: int, bufsize: int = MAX_DATAGRAM) -> list:
        """Up to ``n`` ``(data, addr)`` from ``sock``; [] when nothing waits; OSError when
        the read failed before anything was read."""
        got, errors = self.recv_many([sock], [sock.fileno()], n, bufsize)
        if errors and not got:
            raise OSError(f"reading {n} datagrams failed")
        return [(data, addr) for _i, data, addr in got]


class NativeIO(PurePythonIO):
    name = "native"
    description = "sendmmsg/recvmmsg"

    def __init__(self, module, slots: int = 1024, bufsize: int = MAX_DATAGRAM) -> None:
        self._ffi, self._lib = module.ffi, module.lib
        ffi = self._ffi
        self.stride = self._lib.IVR_ADDR_STRIDE
        self.slots, self.bufsize = slots, bufsize
        self._buf = ffi.new("char[]", slots * bufsize)
        self._bufview = ffi.buffer(self._buf)
        self._addrs = ffi.new("char[]", slots * self.stride)
        self._addrview = ffi.buffer(self._addrs)
        self._index = ffi.new("int[]", slots)
        self._lens = ffi.new("int[]", slots)
        self._addrlens = ffi.new("int[]", slots)
        self._done = ffi.new("int *")
        self._errors = ffi.new("int *")
        self._packed: dict = {}  # (host, port) -> sockaddr bytes
        self._unpacked: dict = {}  # sockaddr bytes -> (host, port)
        self._status = ffi.new("int[]", slots)
        self._work = None  # send_many_srtp's buffer, grown as needed
        self.srtp = self._enable_srtp()

    def _enable_srtp(self) -> bool:
        """Hand the extension pylibsrtp's own libsrtp entry points, once (an extension built
        before SRTP was added, or no pylibsrtp: batches stay plain, sessions protect each
        packet in Python as before)."""
        if not hasattr(self._lib, "ivr_set_srtp"):
            return False
        try:
            from .srtp import native_entry_points
            self._lib.ivr_set_srtp(*native_entry_points())
        except Exception:
            return False
        return True

    # ------------------------------------------------------------------ send
    def send_many(self, socks, datas, addrs) -> list[int]:
        n = len(socks)
        if not n:
            return []
        packed = self._packed
        fds, names = [], []
        for i in range(n):
            fd = socks[i].fileno()  # -1 once closed: never a descriptor reused meanwhile
            addr = addrs[i]
            name = packed.get(addr)
            if name is None:
                name = self._pack(addr)
                if name is None:
                    fd = -1  # not an address we can pack: sendto decides (and raises)
                    name = b""
            fds.append(fd)
            names.append(name)
        ffi = self._ffi
        unsent = ffi.new("int[]", n)
        k = self._lib.ivr_send_many(n, fds, b"".join(datas), [len(d) for d in datas],
                                    b"".join(names), [len(a) for a in names], unsent)
        if not k:
            return []
        failed = []
        for i in ffi.unpack(unsent, k):  # what sendmmsg did not take goes by sendto
            try:
                socks[i].sendto(datas[i], addrs[i])
            except Exception:
                failed.append(i)
        return failed

    def send_many_srtp(self, socks, datas, addrs, ctxs) -> tuple[list[int], list]:
        """send_many, with datagram ``i`` protected first with the libsrtp session
        ``ctxs[i]`` (an address, :attr:`SrtpContext.native_handles`; 0: sent as it is), in C
        in the send buffer.  Returns ``(failed, refused)``: the indices not sent, and
        ``(index, status)`` of the packets libsrtp refused (never sent, never retried)."""
        n = len(socks)
        if not n:
            return [], []
        packed = self._packed
        fds, names = [], []
        for i in range(n):
            fd = socks[i].fileno()
            addr = addrs[i]
            name = packed.get(addr)
            if name is None:
                name = self._pack(addr)
                if name is None:
                    fd = -1
                    name = b""
            fds.append(fd)
            names.append(name)
        ffi, lib = self._ffi, self._lib
        data = b"".join(datas)
        need = len(data) + n * (lib.IVR_SRTP_ROOM + 8)
        work = self._work
        if work is None or len(work[0]) < need or len(work[1]) < n:
            size, count = max(need, 65536), max(n, 1024)
            work = self._work = (ffi.new("char[]", 2 * size), ffi.new("int[]", 2 * count),
                                 ffi.new("int[]", 2 * count), ffi.new("int[]", 2 * count),
                                 ffi.new("int[]", 2 * count))
        buf, offs, lens, status, unsent = work
        k = lib.ivr_send_many_srtp(n, fds, data, [len(d) for d in datas], b"".join(names),
                                   [len(a) for a in names], ctxs, buf, offs, lens, status,
                                   unsent)
        refused = []
        if any(ffi.unpack(status, n)):
            refused = [(i, st) for i, st in enumerate(ffi.unpack(status, n)) if st]
        if not k:
            return [], refused
        failed = []
        view = ffi.buffer(buf)
        for i in ffi.unpack(unsent, k):  # what sendmmsg did not take goes by sendto
            try:
                socks[i].sendto(view[offs[i]:offs[i] + lens[i]], addrs[i])
            except Exception:
                failed.append(i)
        return failed, refused

    def _pack(self, addr) -> bytes | None:
        try:
            host, port = addr[0], addr[1]
            if ":" in host:
                flow, scope = (addr[2], addr[3]) if len(addr) == 4 else (0, 0)
                name = (_AF.pack(socket.AF_INET6) + _PORT.pack(port) + struct.pack("!I", flow)
                        + socket.inet_pton(socket.AF_INET6, host) + _V6_TAIL.pack(scope))
            else:
                name = (_AF.pack(socket.AF_INET) + _PORT.pack(port)
                        + socket.inet_pton(socket.AF_INET, host) + bytes(8))
        except (OSError, ValueError, TypeError, IndexError, struct.error):
            return None
        if len(self._packed) >= _CACHE_LIMIT:
            self._packed.clear()
        self._packed[addr] = name
        return name

    # ------------------------------------------------------------------ receive
    def recv_many(self, socks, fds, n: int, bufsize: int = MAX_DATAGRAM):
        if bufsize > self.bufsize:
            return PurePythonIO.recv_many(self, socks, fds, n, bufsize)
        lib = self._lib
        out, errors, start, total = [], 0, 0, len(fds)
        size = self.bufsize
        while start < total:
            rest = fds[start:] if start else fds
            got = lib.ivr_recv_many(len(rest), rest, n, self.slots, size, self._buf,
                                    self._addrs, self._index, self._lens, self._addrlens,
                                    self._done, self._errors)
            errors += self._errors[0]
            if got:
                self._collect(out, got, start, bufsize, None)
            done = self._done[0]
            if done == 0:  # cannot happen with n <= slots; never loop forever
                break
            start += done
        return out, errors

    def recv_many_srtp(self, socks, fds, ctxs, n: int, bufsize: int = MAX_DATAGRAM):
        """recv_many, with each datagram from socket ``i`` whose ``ctxs[i]`` is a libsrtp
        session (0: none) and whose first byte is 128..191 unprotected in C right after
        ``recvmmsg`` (RTCP muxed on the port with ``srtp_unprotect_rtcp``; STUN and DTLS left
        as they are).  Returns ``(datagrams, errors)`` with ``(index, data, addr, status)``:
        status 0 untouched, 1 plain RTP, 2 plain RTCP, negative: refused (-libsrtp's status;
        the data is what arrived)."""
        lib, ffi = self._lib, self._ffi
        out, errors, start, total = [], 0, 0, len(fds)
        size = self.bufsize
        bufsize = min(bufsize, size)
        while start < total:
            rest, rest_ctxs = (fds[start:], ctxs[start:]) if start else (fds, ctxs)
            got = lib.ivr_recv_many_srtp(len(rest), rest, rest_ctxs, n, self.slots, size,
                                         self._buf, self._addrs, self._index, self._lens,
                                         self._addrlens, self._status, self._done,
                                         self._errors)
            errors += self._errors[0]
            if got:
                self._collect(out, got, start, bufsize, ffi.unpack(self._status, got))
            done = self._done[0]
            if done == 0:
                break
            start += done
        return out, errors

    def _collect(self, out: list, got: int, start: int, bufsize: int, status) -> None:
        """Append the ``got`` datagrams the last native read left in the slots to ``out`` as
        ``(index, data, addr)``, or with each one's ``status`` appended when given."""
        ffi, bv, av = self._ffi, self._bufview, self._addrview
        stride, size, unpacked = self.stride, self.bufsize, self._unpacked
        index = ffi.unpack(self._index, got)
        lens = ffi.unpack(self._lens, got)
        alens = ffi.unpack(self._addrlens, got)
        for s in range(got):
            o = s * stride
            raw = av[o:o + alens[s]]
            addr = unpacked.get(raw)
            if addr is None:
                addr = self._unpack(raw)
            o = s * size
            data = bv[o:o + min(lens[s], bufsize)]
            out.append((start + index[s], data, addr) if status is None
                       else (start + index[s], data, addr, status[s]))

    def _unpack(self, raw: bytes):
        family = _AF.unpack_from(raw)[0] if len(raw) >= 2 else -1
        port = _PORT.unpack_from(raw, 2)[0] if len(raw) >= 4 else 0
        if family == socket.AF_INET and len(raw) >= 8:
            addr = (socket.inet_ntop(socket.AF_INET, raw[4:8]), port)
        elif family == socket.AF_INET6 and len(raw) >= 28:
            addr = (socket.inet_ntop(socket.AF_INET6, raw[8:24]), port,
                    struct.unpack_from("!I", raw, 4)[0], _V6_TAIL.unpack_from(raw, 24)[0])
        else:
            addr = None  # not from an IP socket: what recvfrom would give is moot for RTP
        if len(self._unpacked) >= _CACHE_LIMIT:
            self._unpacked.clear()
        self._unpacked[raw] = addr
        return addr


_default: PurePythonIO | None = None


def load(force_pure: bool | None = None) -> tuple[PurePythonIO, str | None]:
    """The backend to use and, for the pure one, why (None for the native one)."""
    if force_pure is None:
        force_pure = os.environ.get(ENV, "").strip().lower() == "pure"
    if force_pure:
        return PurePythonIO(), f"{ENV}=pure"
    try:
        _mmsg = importlib.import_module(__name__.rsplit(".", 1)[0] + "._mmsg")
    except Exception as e:  # missing (not built), or built for another Python
        return PurePythonIO(), f"native extension not loaded: {type(e).__name__}: {e}"
    try:
        return NativeIO(_mmsg), None
    except Exception as e:  # an incompatible build
        return PurePythonIO(), f"native extension unusable: {type(e).__name__}: {e}"


def default() -> PurePythonIO:
    """The process's backend, chosen (and logged) on the first call."""
    global _default
    if _default is None:
        io, reason = load()
        from twisted.logger import Logger

        how = "native" if reason is None else f"pure Python: {reason}"
        Logger(namespace="ivr.rtp.mmsg").info("media socket I/O: {what} ({how})",
                                              what=io.description, how=how)
        _default = io
    return _default
