"""Calls that end before their plan really starts, against the real ``ivr serve``.

Issue #13: every INVITE that makes a call must leave the call table exactly once, with a
CDR, whatever ends it.  1000 INVITEs of five kinds that end at once -- a body that is not
SDP (400), an offer with no common codec (488), a ``reject`` step (486), a ``dial`` that
fails at once, and no free RTP port (503) -- from a plain UDP socket; afterwards ``/health``
counts 0 calls, there are 1000 CDRs, the server's memory is back where it was, and SIGTERM
exits at once instead of waiting out the drain timeout.
"""
from __future__ import annotations

import json
import signal
import socket
import sqlite3
import time
import urllib.request
import uuid
from collections import Counter

from .conftest import free_port, start_server

PLAN = """
routes:
  - {name: talk, flow: talk}
  - {name: busy, flow: busy}
  - {name: nowhere, flow: nowhere}
flows:
  talk:
    - answer
    - say: "hello"
    - hangup
  busy:
    - reject: busy
  nowhere:
    - dial: {to: "9999"}
"""

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 4000 RTP/AVP {fmt}\r\n{extra}a=sendrecv\r\n")
BODIES = {
    "not_sdp": ("talk", "this is not a session description\r\n"),
    "no_codec": ("talk", SDP.format(fmt="18", extra="a=rtpmap:18 G729/8000\r\n")),
    "reject": ("busy", SDP.format(fmt="0", extra="")),
    "dial_fails": ("nowhere", SDP.format(fmt="0", extra="")),
    "no_port": ("talk", SDP.format(fmt="0", extra="")),
}
EXPECTED = {"not_sdp": {400}, "no_codec": {488}, "reject": {486}, "no_port": {503}}


def invite(server_port: int, my_port: int, user: str, body: str, call_id: str) -> bytes:
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
    head = (f"INVITE sip:{user}@127.0.0.1:{server_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{my_port};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:attacker@127.0.0.1:{my_port}>;tag={uuid.uuid4().hex[:8]}\r\n"
            f"To: <sip:{user}@127.0.0.1:{server_port}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:attacker@127.0.0.1:{my_port}>\r\n"
            "Content-Type: application/sdp\r\n"
            f"Content-Length: {len(body.encode())}\r\n\r\n")
    return head.encode() + body.encode()


def ack_for(response: bytes, server_port: int) -> bytes:
    """The ACK for a non-2xx final response (17.1.1.3: same branch, the response's To)."""
    head = response.split(b"\r\n\r\n", 1)[0].decode()
    lines = {}
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        lines.setdefault(name.strip().lower(), value.strip())
    user = lines["to"].split("sip:", 1)[1].split("@", 1)[0]
    return (f"ACK sip:{user}@127.0.0.1:{server_port} SIP/2.0\r\n"
            f"Via: {lines['via']}\r\nMax-Forwards: 70\r\nFrom: {lines['from']}\r\n"
            f"To: {lines['to']}\r\nCall-ID: {lines['call-id']}\r\n"
            f"CSeq: {lines['cseq'].split()[0]} ACK\r\nContent-Length: 0\r\n\r\n").encode()


def blast(server_port: int, kinds: list[str], batch: int = 50) -> dict[str, int]:
    """Send one INVITE per kind in ``kinds``; returns Call-ID -> final status."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    my_port = sock.getsockname()[1]
    sock.settimeout(0.2)
    finals: dict[str, int] = {}
    for start in range(0, len(kinds), batch):
        pending: dict[str, bytes] = {}
        for kind in kinds[start:start + batch]:
            call_id = f"{kind}-{uuid.uuid4().hex}@attacker"
            user, body = BODIES[kind]
            pending[call_id] = invite(server_port, my_port, user, body, call_id)
            sock.sendto(pending[call_id], ("127.0.0.1", server_port))
        deadline = time.monotonic() + 15
        while pending and time.monotonic() < deadline:
            try:
                data, _ = sock.recvfrom(65535)
            except socket.timeout:
                for packet in pending.values():  # a lost datagram: send again (Timer A's job)
                    sock.sendto(packet, ("127.0.0.1", server_port))
                continue
            status = int(data.split(b" ", 2)[1])
            call_id = next(line.split(b":", 1)[1].strip().decode()
                           for line in data.split(b"\r\n") if line.lower().startswith(b"call-id:"))
            if status >= 200 and call_id in pending:
                del pending[call_id]
                finals[call_id] = status
                sock.sendto(ack_for(data, server_port), ("127.0.0.1", server_port))
        assert not pending, f"{len(pending)} INVITEs got no final answer"
    sock.close()
    return finals


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def health(server) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/health", timeout=5) as r:
        return json.loads(r.read())


def cdr_rows(server) -> list[tuple]:
    conn = sqlite3.connect(server.data / "ivr.sqlite3")
    try:
        return conn.execute("SELECT leg_id, sip_status, end_reason FROM cdrs").fetchall()
    finally:
        conn.close()


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def test_a_thousand_calls_that_end_at_once_leave_nothing_behind(tmp_path):
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "plan.yaml").write_text(PLAN)
    # The server's only RTP port pair (low, low + 1) is held by us: every call that needs
    # media gets 503.
    rtp_low = free_port() & ~1
    holders = []
    for port in (rtp_low, rtp_low + 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", port))
        holders.append(s)
    server = start_server(tmp_path, dialplans=plans,
                          extra=["--rtp-ports", f"{rtp_low}-{rtp_low + 2}",
                                 "--drain-timeout", "60"])
    try:
        kinds = list(BODIES)
        # Warm-up: first-use allocations, the SQLite writer, and the header parsers' memos,
        # which keep up to 4096 texts each (ivr/sip/uri.py) and are full after ~4000 calls.
        warm = blast(server.sip_port, kinds * 1000)
        assert wait_for(lambda: health(server)["calls"] == 0)
        assert wait_for(lambda: len(cdr_rows(server)) == len(warm))
        time.sleep(1.0)
        before = rss_kb(server.proc.pid)

        finals = blast(server.sip_port, kinds * 200)
        assert len(finals) == 1000
        by_kind = Counter((cid.split("-", 1)[0], status) for cid, status in finals.items())
        for (kind, status), n in by_kind.items():
            if kind in EXPECTED:
                assert status in EXPECTED[kind], (kind, status)
            else:
                assert 400 <= status < 700 and status != 500, (kind, status)

        assert wait_for(lambda: health(server)["calls"] == 0), health(server)
        rows = wait_for(lambda: (lambda r: r if len(r) == len(warm) + 1000 else None)(cdr_rows(server)))
        assert rows is not None and len(rows) == len(warm) + 1000, len(cdr_rows(server))
        by_id = {leg_id: (status, reason) for leg_id, status, reason in rows}
        assert len(by_id) == len(rows)
        for call_id, status in finals.items():
            assert by_id[call_id][0] == status, (call_id, by_id[call_id], status)
        time.sleep(1.0)
        after = rss_kb(server.proc.pid)
        assert after - before < 5 * 1024, f"RSS grew {after - before} KB over 1000 calls"
        assert "Traceback" not in server.log()

        # An oversized API body is refused from its Content-Length, before it is sent.
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=5) as c:
            c.sendall(b"POST /v1/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100000000\r\n\r\n")
            assert c.recv(4096).split(b"\r\n", 1)[0] == b"HTTP/1.1 413 Payload Too Large"

        started = time.monotonic()
        assert server.stop(signal.SIGTERM, timeout=10) == 0
        assert time.monotonic() - started < 3.0, "SIGTERM waited for calls that had ended"
    finally:
        server.stop(signal.SIGKILL)
        for s in holders:
            s.close()
