"""ivr.rtp.mmsg: both backends (native sendmmsg/recvmmsg, pure sendto/recvfrom) keep one
contract on real 127.0.0.1 / ::1 sockets (each test runs both ways: conftest.py), and the
loader falls back to the pure one, with its reason logged once."""
from __future__ import annotations

import sys

import pytest
from twisted.logger import formatEvent
from twisted.python import log

from ivr.rtp import mmsg
from tests.rtp.sockets import drain, udp
def test_media_io_is_the_backend_under_test(media_io):
    assert mmsg.default() is media_io
    assert media_io.name in ("native", "pure")


def test_send_many_from_several_sockets_each_to_its_own_address(media_io):
    a, b, sink1, sink2 = udp(), udp(), udp(), udp()
    socks = [a, a, a, b, a]
    datas = [b"a1", b"a2", b"a3", b"b1", b"a4"]
    addrs = [sink1.getsockname(), sink2.getsockname(), sink1.getsockname(),
             sink1.getsockname(), sink2.getsockname()]
    assert media_io.send_many(socks, datas, addrs) == []
    assert drain(sink1) == [(b"a1", a.getsockname()), (b"a3", a.getsockname()),
                            (b"b1", b.getsockname())]
    assert drain(sink2) == [(b"a2", a.getsockname()), (b"a4", a.getsockname())]
    assert media_io.sendmmsg(b, [(b"x", sink1.getsockname()), (b"y" * 1200, sink1.getsockname())]) == 2
    assert drain(sink1) == [(b"x", b.getsockname()), (b"y" * 1200, b.getsockname())]


def test_a_datagram_the_kernel_refuses_is_reported_and_the_rest_of_the_run_still_leaves(media_io):
    # sendmmsg stops at the bad one (port 0: EINVAL); what follows it goes by sendto
    a, sink = udp(), udp()
    to = sink.getsockname()
    failed = media_io.send_many([a] * 4, [b"1", b"2", b"3", b"4"],
                                [to, to, ("127.0.0.1", 0), to])
    assert failed == [2]
    assert [d for d, _ in drain(sink)] == [b"1", b"2", b"4"]


def test_a_closed_socket_or_an_unusable_address_fails_only_its_own_datagram(media_io):
    a, closed, sink = udp(), udp(), udp()
    closed.close()
    to = sink.getsockname()
    failed = media_io.send_many([a, closed, a, a], [b"1", b"2", b"3", b"4"],
                                [to, to, ("no such host name.invalid", 5), to])
    assert failed == [1, 2]
    assert [d for d, _ in drain(sink)] == [b"1", b"4"]
    got, errors = media_io.recv_many([closed], [closed.fileno()], 4)
    assert got == [] and errors == 1


def test_recv_many_reads_up_to_n_per_socket_in_order_with_ipv4_sources(media_io):
    a, b, sender = udp(), udp(), udp()
    for i in range(5):
        sender.sendto(bytes([i]), a.getsockname())
    sender.sendto(b"b", b.getsockname())
    got, errors = media_io.recv_many([a, b], [a.fileno(), b.fileno()], 3)
    src = sender.getsockname()
    assert errors == 0
    assert got == [(0, b"\x00", src), (0, b"\x01", src), (0, b"\x02", src), (1, b"b", src)]
    host, port = got[0][2]
    assert type(host) is str and type(port) is int
    got, _ = media_io.recv_many([a, b], [a.fileno(), b.fileno()], 3)
    assert got == [(0, b"\x03", src), (0, b"\x04", src)]
    assert media_io.recv_many([a, b], [a.fileno(), b.fileno()], 3) == ([], 0)
    assert media_io.recvmmsg(a, 8) == []


def test_an_oversize_datagram_is_truncated_like_recvfrom_and_the_next_is_whole(media_io):
    a, sender = udp(), udp()
    big = bytes(range(256)) * 12  # 3072 bytes
    sender.sendto(big, a.getsockname())
    sender.sendto(b"next", a.getsockname())
    got = media_io.recvmmsg(a, 8)
    assert [d for d, _ in got] == [big[:mmsg.MAX_DATAGRAM], b"next"]
    sender.sendto(big, a.getsockname())
    assert [d for d, _ in media_io.recvmmsg(a, 8, bufsize=100)] == [big[:100]]


def test_an_icmp_error_from_an_earlier_send_is_counted_and_reading_goes_on(media_io):
    a, gone = udp(), udp()
    gone_addr = gone.getsockname()
    gone.close()
    a.connect(gone_addr)  # Linux reports ICMP errors to connected UDP sockets
    a.send(b"x")
    got, errors = media_io.recv_many([a], [a.fileno()], 4)
    assert got == [] and errors == 1
    with pytest.raises(BlockingIOError):
        a.recvfrom(10)  # the error was consumed by that read


def test_ipv6_sources_have_four_fields_as_recvfrom_gives_them(media_io):
    a, sender = udp("::1"), udp("::1")
    assert media_io.send_many([sender], [b"six"], [a.getsockname()[:2]]) == []
    got = media_io.recvmmsg(a, 4)
    assert got == [(b"six", sender.getsockname())]
    assert len(got[0][1]) == 4


def test_many_sockets_more_than_the_native_slots_are_all_read(media_io):
    socks = [udp() for _ in range(12)]
    sender = udp()
    for s in socks:
        for i in range(3):
            sender.sendto(bytes([i]), s.getsockname())
    io = media_io
    if io.name == "native":
        io = mmsg.NativeIO(sys.modules["ivr.rtp._mmsg"], slots=8)  # 8 slots, 36 datagrams
    got, errors = io.recv_many(socks, [s.fileno() for s in socks], 4)
    assert errors == 0 and len(got) == 36
    assert [i for i, _d, _a in got] == [i for i in range(12) for _ in range(3)]
    for s in socks + [sender]:
        s.close()


# ---------------------------------------------------------------- native: EAGAIN (simulated)

class _Lib:
    """The extension's lib, but ``sendmmsg`` takes nothing from the run starting at
    ``refuse_from`` (as a full socket buffer, EAGAIN, would)."""

    IVR_ADDR_STRIDE = 32

    def __init__(self, real, refuse_from):
        self.real, self.refuse_from = real, refuse_from
        self.calls = 0

    def ivr_send_many(self, n, fds, buf, lens, addrs, addrlens, unsent):
        self.calls += 1
        k = self.refuse_from
        fds = [-1 if i >= k else fd for i, fd in enumerate(fds)]  # C never sends fd < 0
        return self.real.ivr_send_many(n, fds, buf, lens, addrs, addrlens, unsent)


class _Module:
    def __init__(self, real, refuse_from):
        self.ffi = real.ffi
        self.lib = _Lib(real.lib, refuse_from)


def test_native_what_sendmmsg_did_not_take_goes_by_sendto_never_lost(media_io):
    if media_io.name == "pure":  # the pure backend has no sendmmsg to refuse
        assert media_io.send_many([], [], []) == []
        return
    real = sys.modules["ivr.rtp._mmsg"]
    io = mmsg.NativeIO(_Module(real, refuse_from=2))
    a, sink = udp(), udp()
    to = sink.getsockname()
    assert io.send_many([a] * 5, [b"1", b"2", b"3", b"4", b"5"], [to] * 5) == []
    assert [d for d, _ in drain(sink)] == [b"1", b"2", b"3", b"4", b"5"]
    assert io._lib.calls == 1
    a.close()  # and when sendto fails too, the datagram is reported, not dropped
    assert io.send_many([a, a], [b"6", b"7"], [to, to]) == [0, 1]


# ---------------------------------------------------------------- the loader

def _messages():
    got = []

    def observer(event):
        got.append(formatEvent(event))

    return got, observer


def test_loader_falls_back_to_pure_python_when_the_extension_is_missing(monkeypatch):
    monkeypatch.delenv(mmsg.ENV, raising=False)
    monkeypatch.setitem(sys.modules, "ivr.rtp._mmsg", None)  # import fails: not built
    io, reason = mmsg.load()
    assert isinstance(io, mmsg.PurePythonIO) and io.name == "pure"
    assert "native extension not loaded" in reason and "ModuleNotFoundError" in reason
    got, observer = _messages()
    monkeypatch.setattr(mmsg, "_default", None)
    log.addObserver(observer)
    try:
        first = mmsg.default()
        assert mmsg.default() is first  # chosen once
    finally:
        log.removeObserver(observer)
    chosen = [m for m in got if m.startswith("media socket I/O")]
    assert chosen == [f"media socket I/O: sendto/recvfrom (pure Python: {reason})"]


def test_an_unusable_extension_falls_back_too(monkeypatch):
    monkeypatch.delenv(mmsg.ENV, raising=False)

    class Broken:
        ffi = lib = None

    monkeypatch.setitem(sys.modules, "ivr.rtp._mmsg", Broken)
    io, reason = mmsg.load()
    assert io.name == "pure" and reason.startswith("native extension unusable")


def test_the_environment_forces_pure_python_and_the_native_choice_is_logged(monkeypatch):
    monkeypatch.setenv(mmsg.ENV, "pure")
    io, reason = mmsg.load()
    assert io.name == "pure" and reason == "IVR_MEDIA_IO=pure"
    monkeypatch.delenv(mmsg.ENV)
    got, observer = _messages()
    monkeypatch.setattr(mmsg, "_default", None)
    log.addObserver(observer)
    try:
        io = mmsg.default()
    finally:
        log.removeObserver(observer)
    assert io.name == "native"  # built by ./scripts/setup (a missing build fails here)
    assert [m for m in got if m.startswith("media socket I/O")] == [
        "media socket I/O: sendmmsg/recvmmsg (native)"]
