"""Batched socket I/O both ways: the tests of the modules in BOTH_WAYS run once with the
native ``sendmmsg``/``recvmmsg`` backend and once with the pure-Python one (``media_io``
is ``"native"`` or ``"pure"`` in their ids).  The backend is made the process default
(``ivr.rtp.mmsg.default()``) for the test, so every MediaClock and MediaReceiver the test
makes uses it.  A missing native extension fails the native half (``./scripts/setup``
builds it; ``python -m ivr.rtp._mmsg_build`` builds it in place): never a skip."""
from __future__ import annotations

import pytest

from ivr.rtp import mmsg

BOTH_WAYS = {
    "test_mmsg", "test_sendbatch", "test_receiver", "test_clock", "test_loopback",
    "test_fastpath", "test_fastpath_loopback", "test_session", "test_session_relay",
    "test_srtp_session", "test_rtcp_session", "test_ptime", "test_ptime_relay",
}


def backend(kind: str):
    if kind == "pure":
        return mmsg.PurePythonIO()
    io, reason = mmsg.load(force_pure=False)
    if reason is not None:
        pytest.fail(f"the native media I/O extension is not usable ({reason}); "
                    "run ./scripts/setup or python -m ivr.rtp._mmsg_build")
    return io


@pytest.fixture(autouse=True)
def media_io(request, monkeypatch):
    kind = getattr(request, "param", None)
    if kind is None:
        yield None
        return
    io = backend(kind)
    monkeypatch.setattr(mmsg, "_default", io)
    yield io


def pytest_generate_tests(metafunc):
    name = metafunc.module.__name__.rsplit(".", 1)[-1]
    if name in BOTH_WAYS and "media_io" in metafunc.fixturenames:
        metafunc.parametrize("media_io", ["native", "pure"], indirect=True)
