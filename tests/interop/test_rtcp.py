"""RTCP against the real ``ivr serve`` (issue #21): during a 12 s echo call a raw UDP caller
receives sender reports about the server's stream where its SDP said (a=rtcp on a port of
its own, or the RTP port with a=rtcp-mux), a BYE at the end, and the loss and jitter its
receiver reports gave land in the call's CDR."""
from __future__ import annotations

import sqlite3
import threading
import time

from ivr.rtp.packet import Bye, ReceiverReport, SenderReport
from tests.interop.rtcp_client import SSRC, RtcpCall


def cdr(server, leg_id: str, timeout: float = 5.0) -> dict | None:
    deadline = time.monotonic() + timeout
    while True:
        conn = sqlite3.connect(server.data / "ivr.sqlite3")
        conn.row_factory = sqlite3.Row
        try:
            row = conn.execute("SELECT * FROM cdrs WHERE leg_id = ?", (leg_id,)).fetchone()
        finally:
            conn.close()
        if row is not None or time.monotonic() > deadline:
            return dict(row) if row else None
        time.sleep(0.1)


def check_call(call: RtcpCall, where: str) -> None:
    assert call.server_rtp, "the server sent no RTP"
    server_ssrc = call.server_rtp[0][0]
    assert {r.socket for r in call.reports} == {where}, [(r.at, r.socket) for r in call.reports]
    during = [r for r in call.reports if not any(isinstance(p, Bye) for p in r.packets)]
    srs = [r.packets[0] for r in during if isinstance(r.packets[0], SenderReport)]
    # 12 s: the first report after 1.25..3.75 s, then every 2.5..7.5 s: at least two
    assert len(srs) >= 2, [(r.at, r.packets) for r in call.reports]
    assert all(sr.ssrc == server_ssrc and sr.packet_count > 0 for sr in srs)
    assert 1.0 <= during[0].at <= 4.5, during[0].at
    # the server's report block about our stream: no loss on loopback, our SSRC
    blocks = [b for sr in srs for b in sr.reports]
    assert blocks and all(b.ssrc == SSRC and b.cumulative_lost == 0 for b in blocks)
    last = call.reports[-1].packets
    assert isinstance(last[0], (SenderReport, ReceiverReport)) and isinstance(last[-1], Bye)
    assert last[-1].ssrcs == (server_ssrc,)


def check_cdr(server, call: RtcpCall) -> None:
    row = cdr(server, call.call_id)
    assert row is not None, "no CDR"
    block = call.sent_rr[-1]
    first = call.server_rtp[0][1]
    expected = block.highest_seq - first + 1
    assert row["rtcp_remote_lost"] == 5
    assert row["rtcp_remote_loss_pct"] == round(100.0 * 5 / expected, 2)
    assert row["rtcp_remote_jitter_ms"] == 20.0
    assert row["rtcp_received"] >= 4  # our RRs every 2 s
    assert row["rtcp_sent"] == len(call.reports) - 1 >= 2  # every report we got but the BYE


def test_echo_call_gets_sender_reports_and_its_receiver_reports_reach_the_cdr(server):
    target = ("127.0.0.1", server.sip_port)
    calls = [RtcpCall(target, mode="a=rtcp"), RtcpCall(target, mode="mux")]
    threads = [threading.Thread(target=c.run, kwargs={"seconds": 12.0}) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    separate, mux = calls
    assert "a=rtcp-mux" not in separate.answer and "a=rtcp-mux" in mux.answer
    check_call(separate, "rtcp")  # to the a=rtcp port, not RTP + 1
    check_call(mux, "rtp")
    server.wait_for_log("remote-bye", timeout=10)
    check_cdr(server, separate)
    check_cdr(server, mux)
