"""POST /v1/calls end to end: the API calls a real phone (baresip reached through a trunk),
sends it DTMF after answer and runs the bundled ``otp`` flow, which reads the code twice."""
from __future__ import annotations

import re
import sqlite3
import time
from datetime import datetime

import numpy as np

from tests.interop.peers import Baresip, read_wav, rms
from tests.interop.test_click_to_call import API_KEY, api
from tests.interop.test_extensions import CONFIG

CUSTOMER = "+12125551234"


def customer_phone(tmp_path, name: str = "customer") -> Baresip:
    phone = Baresip(tmp_path, name)
    (phone.dir / "accounts").write_text(f"<sip:{CUSTOMER}@127.0.0.1>;regint=0;answermode=auto\n")
    return phone.start()


def trunk_config(tmp_path, phone: Baresip):
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    trunk = f"trunks:\n  carrier:\n    address: \"127.0.0.1:{phone.sip_port}\"\n"
    (config / "extensions.yaml").write_text(CONFIG + trunk)
    return config


def test_voice_otp_reads_the_code_twice_after_sending_digits(server_factory, tmp_path):
    customer = customer_phone(tmp_path)
    server = server_factory(extra=["--config", str(trunk_config(tmp_path, customer))],
                            env={"IVR_API_KEY": API_KEY})
    try:
        status, call = api(server, "POST", "/v1/calls",
                           {"to": "(212) 555-1234", "flow": "otp", "send_digits": "12#",
                            "variables": {"code": "482913"}, "caller_id": "+18005550100",
                            "transactional": True})
        assert status == 201, call
        assert call["direction"] == "outbound" and call["flow"] == "otp", call
        assert call["remote"].startswith(f"sip:{CUSTOMER}@") or call["remote"] == CUSTOMER, call
        established = customer.wait_for_event("CALL_ESTABLISHED", timeout=10)
        answered_at = time.monotonic()
        server.wait_for_log("verb='say_digits'", timeout=10)
        status, leg = api(server, "GET", f"/v1/calls/{call['id']}")
        assert status == 200 and leg["id"] == call["id"], leg
        assert leg["state"] == "answered" and leg["answered_at"] is not None, leg
        assert leg["direction"] == "outbound" and leg["variables"].get("code") == "482913", leg
        status, listing = api(server, "GET", "/v1/calls")
        assert call["id"] in [c["id"] for c in listing["calls"]], listing
        # the server hangs up after reading the code twice
        customer.wait_for_event("CALL_CLOSED", timeout=30)
        talk = time.monotonic() - answered_at
        log = server.wait_for_log(f"call {call['id']} ended:", timeout=10)
    finally:
        customer.stop()
    assert established.get("direction") in (None, "incoming"), established
    # the digits came first, as RFC 4733 events, in order
    dtmf = [e.get("param") for e in customer.events if e.get("type") == "CALL_DTMF_START"]
    assert dtmf == ["1", "2", "#"], (dtmf, customer.events)
    # the flow's steps, each say_digits with the code the API passed
    mine = [l for l in log.splitlines() if f"call {call['id']} " in l]
    verbs = re.findall(r"step flow='otp' verb='(\w+)'", "\n".join(mine))
    assert verbs == ["pause", "say", "say_digits", "pause", "say", "say_digits", "say",
                     "hangup"], verbs
    assert "flow_end" in "\n".join(mine) and "Traceback" not in log
    assert re.findall(r"say_digits verb='say_digits' line=\d+ value='(\d+)'", log) == \
        ["482913", "482913"], log[-3000:]
    # each reading of six digits takes seconds (the audio really played, it was not skipped)
    steps = [(datetime.fromisoformat(l[:23]), re.search(r"verb='(\w+)'", l).group(1))
             for l in mine if " step flow='otp' " in l]
    for (when, verb), (after, _) in zip(steps, steps[1:]):
        if verb == "say_digits":
            assert 1.5 <= (after - when).total_seconds() <= 8, steps
    # what the phone heard: speech for most of the call (two readings of six digits)
    heard, rate = read_wav(customer.received_wav())
    assert rate == 8000
    frame = rate // 10
    levels = np.array([rms(heard[i:i + frame]) for i in range(0, len(heard) - frame, frame)])
    loud = int(np.sum(levels > 500))
    assert 6 <= talk <= 25, talk
    assert loud >= 40, f"{loud} loud 100 ms frames in {len(levels) / 10:.1f} s: {np.round(levels)}"
    assert float(np.max(levels)) > 2000
    # the CDR of the leg
    time.sleep(0.5)
    rows = sqlite3.connect(server.data / "ivr.sqlite3").execute(
        "SELECT direction, to_number, outcome, flow FROM cdrs WHERE leg_id = ?",
        (call["id"],)).fetchall()
    assert rows == [("outbound", CUSTOMER, "answered", "otp")], rows
