"""B8's load generator: N WebRTC (or plain RTP) calls to the echo line, in one process.

``python -m bench.webrtc_load HOST:HTTP_PORT TARGET --calls N --seconds T --mode webrtc|plain``
(b8_webrtc.py runs it on core 1).  Each call, as a browser does it:

1. opens ``ws://HOST:PORT/sip`` and sends an INVITE with a WebRTC offer (webrtc_sip.py);
2. on the 200 sends the ACK, then ICE connectivity checks as the controlling agent with
   USE-CANDIDATE (STUN Binding requests with USERNAME, PRIORITY, ICE-CONTROLLING,
   MESSAGE-INTEGRITY and FINGERPRINT, aioice's codec) every 50 ms until one is answered
   with a response whose integrity checks; then a consent check every 5 s (RFC 7675);
3. runs the DTLS client handshake (ivr/rtp/dtls.py in the client role: pyOpenSSL, the
   server's certificate pinned to its a=fingerprint), keys an SrtpContext (libsrtp) from it;
4. sends 20 ms PCMU in SRTP for T seconds: every payload is unique (a counter and the call
   number, coded in G.711 values that survive a decode and re-encode) so each echoed packet
   is decrypted, checked byte for byte and timed against its send time;
5. BYE, and the 200.

``--mode plain`` is the reference: the same client and signalling with an ``RTP/AVP``
offer, no ICE, no DTLS, plain RTP.  One media clock (a 20 ms LoopingCall) sends every
call's packet.  Progress goes to stdout as JSON lines: ``{"event": "all_up"}`` once every
call is up (echo received) or failed, ``{"event": "media_end"}`` when sending stops, then
``{"event": "result", ...}`` with every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import secrets
import struct
import sys
import time

from aioice import stun
from twisted.internet import protocol, reactor, task

from ivr.rtp.dtls import DtlsCertificate, DtlsEndpoint, DtlsRole, DtlsState, parse_fingerprint
from ivr.rtp.srtp import SrtpContext

from .webrtc_sip import SipWs, offer_sdp, read_answer

PERIOD = 0.020
SETUP_TIMEOUT = 20.0
CONSENT_EVERY = 5.0
#: G.711 mu-law codes that decode and re-encode to themselves (no +0/-0 pair)
SAFE = bytes(b for b in range(256) if b not in (0x7F, 0xFF))
_HDR = struct.Struct("!BBHII")


def _prefix(n: int, call: int) -> bytes:
    """The counter (8 nibbles) and the call number (4 nibbles) as safe codes 0x20-0x2F."""
    return bytes(0x20 | ((n >> s) & 15) for s in range(28, -4, -4)) + bytes(
        0x20 | ((call >> s) & 15) for s in (12, 8, 4, 0))


def _counter(payload: bytes) -> int | None:
    if len(payload) < 8 or any(b & 0xF0 != 0x20 for b in payload[:8]):
        return None
    n = 0
    for b in payload[:8]:
        n = (n << 4) | (b & 15)
    return n


class Call(protocol.DatagramProtocol):
    def __init__(self, load: "Load", index: int) -> None:
        self.load, self.index, self.mode = load, index, load.mode
        self.webrtc = self.mode == "webrtc"
        rnd = random.Random(index)
        self.tail = bytes(rnd.choice(SAFE) for _ in range(160 - 12))
        self.ssrc = rnd.getrandbits(32)
        self.state = "new"
        self.error: str | None = None
        self.t: dict[str, float] = {}
        self.sent_at: list[float] = []
        self.echoed: set[int] = set()
        self.rtt: list[float] = []
        self.mismatches = self.silence = self.duplicates = self.undecryptable = 0
        self.dest = None
        self.srtp = None
        self.dtls = None
        self.sip = None
        self.ufrag = secrets.token_hex(4)
        self.pwd = secrets.token_hex(12)
        self.tiebreaker = secrets.randbits(63)
        self.ice_tid: set[bytes] = set()
        self.consent_answered = 0
        self.timers: list = []  # DelayedCalls
        self.loops: list = []   # LoopingCalls
        self.closed = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.port = reactor.listenUDP(0, self, interface="127.0.0.1")
        self.t["start"] = time.monotonic()
        self.sip = SipWs(self, self.load.host, self.load.target)
        host, port = self.load.host.rsplit(":", 1)
        protocol.ClientCreator(reactor, lambda: self.sip).connectTCP(
            host, int(port)).addErrback(lambda f: self.fail(f"connect: {f.value}"))
        self.timers.append(reactor.callLater(SETUP_TIMEOUT, self._setup_timeout))

    def _setup_timeout(self) -> None:
        if self.state not in ("media", "ended"):
            self.fail(f"not up within {SETUP_TIMEOUT:.0f} s (state {self.state})")

    def fail(self, error: str) -> None:
        if self.error is None:
            self.error = error
        if self.state != "ended":
            self.end(bye=self.state in ("ice", "dtls", "media", "draining"))

    def end(self, bye: bool = True) -> None:
        if self.state == "ended":
            return
        self.state = "ended"
        for timer in self.timers:
            if timer.active():
                timer.cancel()
        for loop in self.loops:
            if loop.running:
                loop.stop()
        if bye and self.sip is not None and self.sip.open:
            self.t["bye"] = time.monotonic()
            self.sip.bye()
            self.timers = [reactor.callLater(5, self._closed)]
        else:
            self._closed()
        self.load.call_up(self)

    def _closed(self) -> None:
        if self.closed:
            return
        self.closed = True
        for timer in self.timers:
            if timer.active():
                timer.cancel()
        if self.sip is not None:
            self.sip.close()
        if getattr(self, "port", None) is not None:
            self.port.stopListening()
            self.port = None
        self.load.call_done(self)

    # ------------------------------------------------------------------ signalling
    def on_ws_open(self) -> None:
        local = self.port.getHost().port
        sdp = offer_sdp(self.mode, local, ufrag=self.ufrag, pwd=self.pwd,
                        fingerprint=self.load.certificate.sdp_fingerprint)
        self.state = "inviting"
        self.t["invite"] = time.monotonic()
        self.sip.invite(sdp)

    def on_response(self, response) -> None:
        method = response.cseq[1]
        if method == "BYE":
            if response.status >= 200:
                self.bye_status = response.status
                self._closed()
            return
        if method != "INVITE" or response.status < 200 or self.state != "inviting":
            return
        if response.status >= 300:
            self.fail(f"INVITE answered {response.status} {response.reason}")
            return
        self.t["200"] = time.monotonic()
        self.sip.ack(response)
        try:
            answer = read_answer(response.body)
        except ValueError as e:
            self.fail(str(e))
            return
        self.dest = (answer.ip, answer.port)
        self.payload_type = answer.payload_type
        if not self.webrtc:
            self._media()
            return
        if not (answer.ufrag and answer.pwd and answer.fingerprint):
            self.fail("the answer has no ICE credentials or fingerprint")
            return
        self.answer = answer
        self.remote_key = answer.pwd.encode()
        self.state = "ice"
        role = DtlsRole.SERVER if answer.setup == "active" else DtlsRole.CLIENT
        self.dtls = DtlsEndpoint(self.load.certificate, role, parse_fingerprint(answer.fingerprint))
        self.checks = task.LoopingCall(self._check, True)
        self.loops.append(self.checks)
        self.checks.start(0.05)

    def on_bye(self) -> None:
        self.error = self.error or f"the server hung up (state {self.state})"
        self.state_before_bye = self.state
        self.sip_bye_received = True
        self.end(bye=False)

    def on_ws_closed(self) -> None:
        if self.state not in ("ended",):
            self.fail("WebSocket closed")

    # ------------------------------------------------------------------ ICE
    def _check(self, nominate: bool) -> None:
        if self.state == "ice" or not nominate:
            msg = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
            msg.attributes["USERNAME"] = f"{self.answer.ufrag}:{self.ufrag}"
            msg.attributes["PRIORITY"] = 1853824767
            msg.attributes["ICE-CONTROLLING"] = self.tiebreaker
            if nominate:
                msg.attributes["USE-CANDIDATE"] = None
            msg.add_message_integrity(self.remote_key)
            self.ice_tid.add(msg.transaction_id)
            self.transport.write(bytes(msg), self.dest)

    def _stun(self, data: bytes) -> None:
        try:
            msg = stun.parse_message(data)
        except Exception:
            return
        if msg.transaction_id not in self.ice_tid or msg.message_class != stun.Class.RESPONSE:
            return
        if not msg.check_message_integrity(self.remote_key):
            self.fail("STUN response failed MESSAGE-INTEGRITY")
            return
        self.ice_tid.discard(msg.transaction_id)
        if self.state != "ice":
            self.consent_answered += 1
            return
        self.t["ice"] = time.monotonic()
        self.checks.stop()
        consent = task.LoopingCall(self._check, False)
        consent.start(CONSENT_EVERY, now=False)
        self.loops.append(consent)
        self.state = "dtls"
        self._dtls_out(self.dtls.start())

    # ------------------------------------------------------------------ DTLS
    def _dtls_out(self, datagrams) -> None:
        for d in datagrams:
            self.transport.write(d, self.dest)
        if self.dtls.state is DtlsState.CONNECTED and self.srtp is None:
            self.t["dtls"] = time.monotonic()
            self.srtp = SrtpContext.from_keys(self.dtls.keys)
            self._media()
        elif self.dtls.state is DtlsState.FAILED:
            self.fail(f"DTLS: {self.dtls.error}")
        elif self.dtls.state is DtlsState.HANDSHAKING:
            wait = self.dtls.timeout()
            if wait is not None:
                self.timers.append(reactor.callLater(max(wait, 0.01), self._dtls_timer))

    def _dtls_timer(self) -> None:
        if self.state == "dtls":
            self._dtls_out(self.dtls.handle_timeout())

    # ------------------------------------------------------------------ media
    def _media(self) -> None:
        self.state = "media"
        self.t["media"] = time.monotonic()
        self.load.media_calls.append(self)

    def send_next(self, now: float) -> None:
        n = len(self.sent_at)
        packet = _HDR.pack(0x80, self.payload_type or 0, n & 0xFFFF, (n * 160) & 0xFFFFFFFF,
                           self.ssrc) + _prefix(n, self.index) + self.tail
        if self.srtp is not None:
            packet = self.srtp.protect(packet)
        self.sent_at.append(now)
        self.transport.write(packet, self.dest)

    def datagramReceived(self, data, addr):
        if not data:
            return
        b = data[0]
        if b < 4:
            self._stun(data)
        elif 20 <= b < 64:
            if self.dtls is not None:
                self._dtls_out(self.dtls.receive(data))
        elif 128 <= b < 192 and len(data) > 1 and not 64 <= (data[1] & 0x7F) < 96:
            self._rtp(data)

    def _rtp(self, data: bytes) -> None:
        now = time.monotonic()
        if self.webrtc:
            if self.srtp is None:
                self.undecryptable += 1
                return
            data = self.srtp.unprotect(data)
            if data is None:
                self.undecryptable += 1
                return
        cc, ext = data[0] & 15, data[0] & 0x10
        off = 12 + 4 * cc
        if ext and len(data) >= off + 4:
            off += 4 + 4 * struct.unpack_from("!H", data, off + 2)[0]
        payload = data[off:]
        n = _counter(payload)
        if n is None or n >= len(self.sent_at) or payload != _prefix(n, self.index) + self.tail:
            if payload and payload.count(payload[0]) == len(payload):
                self.silence += 1
            else:
                self.mismatches += 1
            return
        if n in self.echoed:
            self.duplicates += 1
            return
        self.echoed.add(n)
        self.rtt.append(now - self.sent_at[n])
        self.load.last_echo = now
        if "echo" not in self.t:
            self.t["echo"] = now
            self.load.call_up(self)

    def window_counts(self, start: float, end: float) -> tuple[int, int]:
        """Packets sent in [start, end) (every call was up then) and how many came back."""
        sent = [n for n, at in enumerate(self.sent_at) if start <= at < end]
        return len(sent), sum(1 for n in sent if n in self.echoed)

    def figures(self, window: tuple[float, float]) -> dict:
        t = self.t
        window_sent, window_echoed = self.window_counts(*window)
        ms = lambda a, b: round((t[b] - t[a]) * 1000, 3) if a in t and b in t else None  # noqa: E731
        return {"index": self.index, "ok": self.ok(), "error": self.error,
                "invite_to_200_ms": ms("invite", "200"), "invite_to_ice_ms": ms("invite", "ice"),
                "invite_to_dtls_ms": ms("invite", "dtls"), "invite_to_echo_ms": ms("invite", "echo"),
                "sent": len(self.sent_at), "echoed": len(self.echoed),
                "window_sent": window_sent, "window_echoed": window_echoed,
                "mismatches": self.mismatches, "silence": self.silence,
                "duplicates": self.duplicates, "undecryptable": self.undecryptable,
                "consent_checks_answered": self.consent_answered,
                "bye_status": getattr(self, "bye_status", None)}

    def ok(self) -> bool:
        return (self.error is None and "echo" in self.t and getattr(self, "bye_status", 0) == 200
                and self.mismatches == 0)


class Load:
    def __init__(self, args) -> None:
        self.host, self.target, self.mode = args.server, args.target, args.mode
        self.args = args
        self.certificate = DtlsCertificate.generate(
            __import__("datetime").datetime.now(__import__("datetime").timezone.utc))
        self.calls = [Call(self, i) for i in range(args.calls)]
        self.media_calls: list[Call] = []
        self.up: set[int] = set()
        self.done: set[int] = set()
        self.all_up_at = None
        self.late_ticks = 0

    def emit(self, event: str, **fields) -> None:
        sys.stdout.write(json.dumps({"event": event, "t": time.monotonic(), **fields}) + "\n")
        sys.stdout.flush()

    def run(self) -> None:
        for i, call in enumerate(self.calls):
            reactor.callLater(i / self.args.rate, call.start)
        self.clock = task.LoopingCall.withCount(self._tick)
        self.clock.start(PERIOD)

    def _tick(self, count: int) -> None:
        if count > 1:
            self.late_ticks += 1
        now = time.monotonic()
        burst = min(count, 10)  # a late tick sends what it owes: 50 packets/s per call
        for call in self.media_calls:
            if call.state == "media":
                for _ in range(burst):
                    call.send_next(now)

    def call_up(self, call: Call) -> None:
        self.up.add(call.index)
        if self.all_up_at is None and len(self.up) == len(self.calls):
            self.all_up_at = time.monotonic()
            self.emit("all_up", up=sum(1 for c in self.calls if "echo" in c.t))
            self.cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            reactor.callLater(self.args.seconds, self._stop_media)

    def _stop_media(self) -> None:
        self.media_end_at = time.monotonic()
        self.emit("media_end")
        ru = resource.getrusage(resource.RUSAGE_SELF)
        wall = self.media_end_at - self.all_up_at
        self.own_cpu_percent = round(100 * ((ru.ru_utime + ru.ru_stime) - (
            self.cpu0.ru_utime + self.cpu0.ru_stime)) / wall, 1)
        for call in self.calls:  # stop sending, let the last echoes come back, then BYE
            if call.state == "media":
                call.state = "draining"
        self.last_echo = time.monotonic()
        self.drain = task.LoopingCall(self._drained)
        self.drain.start(0.1, now=False)

    def _drained(self) -> None:
        """BYE once no echo has come back for 0.5 s (a busy server may be behind), at most 5 s."""
        now = time.monotonic()
        if now - self.last_echo >= 0.5 or now - self.media_end_at >= 5:
            self.drain.stop()
            self._hangup()

    def _hangup(self) -> None:
        for call in self.calls:
            if call.state == "draining":
                call.end(bye=True)
        if len(self.done) == len(self.calls):
            self._finish()

    def call_done(self, call: Call) -> None:
        self.done.add(call.index)
        if len(self.done) == len(self.calls) and hasattr(self, "media_end_at"):
            reactor.callLater(0, self._finish)

    def _finish(self) -> None:
        if getattr(self, "finished", False):
            return
        self.finished = True
        window = (self.all_up_at, self.media_end_at)
        self.emit("result", mode=self.mode, calls=[c.figures(window) for c in self.calls],
                  window_s=round(self.media_end_at - self.all_up_at, 3),
                  generator_cpu_percent=self.own_cpu_percent, generator_late_ticks=self.late_ticks)
        reactor.callLater(0, reactor.stop)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", help="HOST:HTTP_PORT of ivr serve (ws://.../sip)")
    parser.add_argument("target", help="the number to call (the echo line)")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=20.0, help="new calls per second")
    parser.add_argument("--mode", choices=("webrtc", "plain"), default="webrtc")
    args = parser.parse_args(argv)
    load = Load(args)
    reactor.callWhenRunning(load.run)
    deadline = reactor.callLater(args.calls / args.rate + SETUP_TIMEOUT + args.seconds + 30,
                                 lambda: (load.emit("timeout"), reactor.stop()))
    reactor.run()
    if deadline.active():
        deadline.cancel()
    return 0 if getattr(load, "finished", False) else 1


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.exit(main())
