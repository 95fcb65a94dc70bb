"""The server's call core in memory (STYLE rule 9): a real UserAgent, DialplanService,
CallTable, CallControl and Call legs with real RTP sockets on 127.0.0.1, all on one
``task.Clock``, reached by our own UAC over the in-memory network of
``tests/sip/test_ua_pair.py``.  TTS is a fake (a fixed 0.2 s of audio; the text "boom"
raises, to stand for a verb that fails).
"""
from __future__ import annotations

import random
import socket
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from twisted.internet import defer, task

from ivr.api.metrics import Metrics
from ivr.call.call import MediaContext
from ivr.call.control import CallControl
from ivr.dialplan.service import DialplanService
from ivr.call.table import CallTable
from ivr.config.extensions import ExtensionsConfig
from ivr.rtp.clock import SERVER_PHASES, MediaClock
from ivr.rtp.ports import PortAllocator
from ivr.rtp.receiver import MediaReceiver
from ivr.sip.timers import TimerConfig
from ivr.sip.ua import UserAgent

from tests.sip.test_ua_pair import HOST, FakeTransport, Listener, Network

SERVER_PORT, PHONE_PORT = 5070, 5071


def offer(port: int = 4000, formats: str = "0 101", extra: str = "") -> bytes:
    rtpmap = "a=rtpmap:101 telephone-event/8000\r\n" if "101" in formats.split() else ""
    return (f"v=0\r\no=- 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP {formats}\r\n{rtpmap}{extra}a=sendrecv\r\n").encode()


class FakeTts:
    AUDIO = np.zeros(1600, dtype=np.int16)  # 0.2 s

    def cached(self, text, voice=None, language=None, rate=None):
        if text == "boom":
            raise RuntimeError("the TTS engine broke")
        return self.AUDIO

    def render_or_fallback(self, text, voice=None, language=None, rate=None):
        return defer.succeed(self.cached(text))

    def prerender(self, items, include_fallback=True):
        return defer.succeed(0)


class MemoryCdrs:
    """CdrStore.record in memory: every record kept, in order."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def record(self, cdr: dict, overwrite: bool = True):
        self.records.append(cdr)
        return defer.succeed(cdr["leg_id"])


def free_port_range(pairs: int) -> tuple[int, int]:
    """An even-aligned run of ``2 * pairs`` UDP ports on 127.0.0.1 that were free just now."""
    for _ in range(200):
        low = random.randrange(30000, 60000, 2)
        socks = []
        try:
            for port in range(low, low + 2 * pairs):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((HOST, port))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return low, low + 2 * pairs - 1
    raise RuntimeError("no free port range")


class CallCore:
    """The server's call path in memory; ``phone`` is our UAC on the same network."""

    def __init__(self, plans: Path, plan_text: str, *, rtp_pairs: int = 4,
                 media_timeout: float = 5.0) -> None:
        self.clock = task.Clock()
        self.network = Network(self.clock)
        plans.mkdir(parents=True, exist_ok=True)
        (plans / "plan.yaml").write_text(plan_text)
        self.receiver = MediaReceiver()
        self.media_clock = MediaClock(self.clock, phases=SERVER_PHASES, receiver=self.receiver)
        low, high = free_port_range(rtp_pairs)
        self.ports = PortAllocator(low, high, reactor=self.clock, receiver=self.receiver)
        self.media = MediaContext(reactor=self.clock, media_clock=self.media_clock,
                                  ports=self.ports, advertise=HOST, bind_host=HOST,
                                  media_timeout=media_timeout,
                                  recordings_dir=str(plans.parent), data_dir=str(plans.parent))
        self.media.tts = FakeTts()
        self.cdrs = MemoryCdrs()
        self.metrics = Metrics()
        self.calls = CallTable(self.cdrs, self.metrics)
        self.dialplan = DialplanService(self.clock, plans, plans.parent / "prompts", self.media,
                                        calls=self.calls)
        self.dialplan.start(watch=False)
        self.ua = UserAgent(self.clock, FakeTransport(self.network, SERVER_PORT), self.dialplan,
                            HOST, SERVER_PORT, TimerConfig())
        self.network.uas[(HOST, SERVER_PORT)] = self.ua
        self.control = CallControl(media=self.media, ua=self.ua, calls=self.calls,
                                   directory=ExtensionsConfig(), flows=self.dialplan)
        self.dialplan.telephony = self.control
        self.phone = UserAgent(self.clock, FakeTransport(self.network, PHONE_PORT),
                               SimpleNamespace(incoming_call=lambda s: s.reject(486)),
                               HOST, PHONE_PORT, TimerConfig())
        self.network.uas[(HOST, PHONE_PORT)] = self.phone

    def call(self, user: str, sdp: bytes | None = None):
        """Our phone INVITEs ``sip:user@server`` with ``sdp`` as an application/sdp body
        (None: no body, a late offer); returns (session, listener)."""
        listener = Listener()
        session = self.phone.invite(f"sip:{user}@{HOST}:{SERVER_PORT}", listener, sdp)
        return session, listener

    def run(self, seconds: float, step: float = 0.1) -> None:
        for _ in range(max(1, round(seconds / step))):
            self.clock.advance(step)

    def close(self) -> None:
        for call in list(self.calls.values()):
            call.hangup("test-over")
        self.run(1.0)
