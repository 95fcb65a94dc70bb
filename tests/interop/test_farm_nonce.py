"""A farm shares its digest nonce secret (#18): a REGISTER challenged by one node is answered
on the other (PostgreSQL's farm_secrets, created once by the first node), so Kamailio may send
a phone's authenticated retry to any node, and a node dying between the challenge and the
retry costs nothing.  Real nodes from scripts/farm.py, raw SIP over UDP."""
from __future__ import annotations

import secrets
import socket

from ivr.sip.auth import build_authorization, choose_challenge, parse_challenge
from ivr.sip.message import parse_datagram
from tests.interop.conftest import require
from tests.interop.test_farm import farm
from tests.store.conftest import _need_postgres


def register(sock, node, call_id: str, cseq: int, authorization: str | None = None):
    host, port = node["address"], node["sip_port"]
    me = "%s:%d" % sock.getsockname()
    lines = [f"REGISTER sip:{host}:{port} SIP/2.0",
             f"Via: SIP/2.0/UDP {me};rport;branch=z9hG4bK{secrets.token_hex(6)}",
             "Max-Forwards: 70", f"From: <sip:2001@{host}:{port}>;tag={secrets.token_hex(4)}",
             f"To: <sip:2001@{host}:{port}>", f"Call-ID: {call_id}", f"CSeq: {cseq} REGISTER",
             f"Contact: <sip:2001@{me}>", "Expires: 120", "User-Agent: farm-nonce-test"]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    sock.sendto(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode(), (host, port))
    while True:
        response = parse_datagram(sock.recv(65535))
        if response.status >= 200:
            return response


def test_a_challenge_from_one_node_is_answered_on_the_other(tmp_path):
    _need_postgres()
    require("kamailio")
    run = tmp_path / "farm"
    state = farm.up(run, 2, node_args=["--speech-engine", "off"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    try:
        node1, node2 = state["nodes"]
        call_id = secrets.token_hex(8)
        challenge = register(sock, node1, call_id, 1)
        assert challenge.status == 401, challenge.start_line()
        chosen = choose_challenge([parse_challenge(v) for v in
                                   challenge.headers.get_raw("WWW-Authenticate")])
        uri = f"sip:{node2['address']}:{node2['sip_port']}"
        answer = build_authorization(chosen, "REGISTER", uri, "2001", password="demo2001",
                                     cnonce=secrets.token_hex(8), nc=1)
        ok = register(sock, node2, call_id, 2, answer)
        assert ok.status == 200, ok.start_line()
        # the nonce is good on node1 too (nc counts per node: 2 is new there as well)
        answer = build_authorization(chosen, "REGISTER", f"sip:{node1['address']}:"
                                     f"{node1['sip_port']}", "2001", password="demo2001",
                                     cnonce=secrets.token_hex(8), nc=2)
        assert register(sock, node1, call_id, 3, answer).status == 200
    finally:
        sock.close()
        farm.down(run)
