"""A raw UDP caller for RTCP interop: INVITE (plain, with a=rtcp on a port of its own, or with
a=rtcp-mux), 20 ms PCMU, receiver reports about the server's stream with chosen loss and
jitter values, BYE; it records every RTCP datagram the server sends it."""
from __future__ import annotations

import select
import socket
import struct
import time
import uuid
from dataclasses import dataclass, field

from ivr.rtp.packet import (ReceiverReport, ReportBlock, SourceDescription, build_compound,
                            parse_rtcp)

SSRC = 0x5EED1234


def _bind_pair() -> tuple[socket.socket, socket.socket, socket.socket]:
    """An RTP socket on an even port, its +1 neighbour, and an RTCP socket far from both."""
    for _ in range(200):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        port = rtp.getsockname()[1]
        if port % 2 == 0:
            plus_one = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                plus_one.bind(("127.0.0.1", port + 1))
            except OSError:
                plus_one.close()
            else:
                rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                rtcp.bind(("127.0.0.1", 0))
                return rtp, plus_one, rtcp
        rtp.close()
    raise RuntimeError("no even/odd port pair")


@dataclass
class Report:
    at: float
    socket: str  # "rtp", "plus_one" or "rtcp": where it arrived
    packets: list


@dataclass
class RtcpCall:
    sip_target: tuple[str, int]
    mode: str = "a=rtcp"  # "a=rtcp": our RTCP port is named in the SDP; "mux": a=rtcp-mux
    fraction_lost: int = 64       # what our RRs say about the server's stream
    cumulative_lost: int = 5
    jitter: int = 160             # timestamp units: 20 ms at 8 kHz
    answer: str = ""
    reports: list[Report] = field(default_factory=list)
    server_rtp: list[tuple[int, int, int]] = field(default_factory=list)  # (ssrc, seq, ts)
    sent_rr: list[ReportBlock] = field(default_factory=list)
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def run(self, seconds: float = 12.0, rr_every: float = 2.0) -> "RtcpCall":
        sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sip.bind(("127.0.0.1", 0))
        rtp, plus_one, rtcp = _bind_pair()
        sockets = {rtp: "rtp", plus_one: "plus_one", rtcp: "rtcp"}
        try:
            self._call(sip, rtp, plus_one, rtcp, sockets, seconds, rr_every)
        finally:
            for s in (sip, rtp, plus_one, rtcp):
                s.close()
        return self

    # -- SIP
    def _request(self, sip, method: str, cseq: int, body: str = "", to_tag: str = "") -> None:
        local = sip.getsockname()[1]
        host, port = self.sip_target
        msg = (f"{method} sip:echo@{host}:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
               f"From: <sip:rtcp@127.0.0.1>;tag=rtcpclient\r\nTo: <sip:echo@{host}>{to_tag}\r\n"
               f"Call-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\n"
               f"Contact: <sip:rtcp@127.0.0.1:{local}>\r\nMax-Forwards: 70\r\n"
               + ("Content-Type: application/sdp\r\n" if body else "")
               + f"Content-Length: {len(body.encode())}\r\n\r\n{body}")
        sip.sendto(msg.encode(), self.sip_target)

    def _call(self, sip, rtp, plus_one, rtcp, sockets, seconds, rr_every) -> None:
        port = rtp.getsockname()[1]
        extra = ("a=rtcp-mux\r\n" if self.mode == "mux"
                 else f"a=rtcp:{rtcp.getsockname()[1]} IN IP4 127.0.0.1\r\n")
        sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n{extra}")
        self._request(sip, "INVITE", 1, sdp)
        sip.settimeout(15)
        while True:
            data = sip.recv(65535).decode(errors="replace")
            status = int(data.split(" ", 2)[1])
            if status >= 200:
                break
        assert status == 200, data
        head, _, self.answer = data.partition("\r\n\r\n")
        to = next(line for line in head.split("\r\n") if line.lower().startswith("to:"))
        tag = to[to.index(";tag="):]
        m = next(line for line in self.answer.split("\r\n") if line.startswith("m=audio"))
        server = ("127.0.0.1", int(m.split()[1]))
        self._request(sip, "ACK", 1, to_tag=tag)
        start = time.monotonic()
        seq, ts, next_rtp, next_rr = 1, 0, start, start + rr_every
        rr_to = server if self.mode == "mux" else (server[0], server[1] + 1)
        rr_from = rtp if self.mode == "mux" else rtcp
        while time.monotonic() - start < seconds:
            now = time.monotonic()
            if now >= next_rtp:
                rtp.sendto(struct.pack("!BBHII", 0x80, 0, seq, ts, SSRC) + b"\xff" * 160, server)
                seq, ts, next_rtp = seq + 1, ts + 160, next_rtp + 0.02
            if now >= next_rr and self.server_rtp:
                ssrc, first = self.server_rtp[0][0], self.server_rtp[0][1]
                highest = first + len(self.server_rtp) - 1  # loopback: in order, no loss
                block = ReportBlock(ssrc, self.fraction_lost, self.cumulative_lost, highest,
                                    self.jitter, 0, 0)
                self.sent_rr.append(block)
                rr_from.sendto(build_compound([ReceiverReport(SSRC, (block,)),
                                               SourceDescription.cname(SSRC, "rtcp@client")]),
                               rr_to)
                next_rr += rr_every
            self._read(sockets, max(0.0, min(next_rtp, next_rr) - time.monotonic()), start)
        self._request(sip, "BYE", 2, to_tag=tag)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            self._read(sockets, 0.05, start)

    def _read(self, sockets, timeout: float, start: float) -> None:
        ready, _, _ = select.select(list(sockets), [], [], timeout)
        for s in ready:
            data, _addr = s.recvfrom(2048)
            if len(data) >= 2 and 192 <= data[1] <= 223:
                self.reports.append(Report(time.monotonic() - start, sockets[s], parse_rtcp(data)))
            elif sockets[s] == "rtp" and len(data) >= 12:
                _b0, _b1, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
                self.server_rtp.append((ssrc, seq, ts))
