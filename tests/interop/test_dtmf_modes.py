"""DTMF the three ways a phone sends it, and the late offer, against SIPp (issues "SIP
engine" and "Media engine"):

* late offer: INVITE without SDP, our offer in the 200, SIPp's answer in the ACK; an RFC 4733
  digit that SIPp sends to the address in our offer proves the ACK's answer was applied;
* SIP INFO (``application/dtmf-relay`` and ``application/dtmf``);
* in-band tones in PCMU from a pcap this test writes (no telephone-event offered);
* a phone that sends RFC 4733 *and* the tone in the audio: the digit counts once.
"""
from __future__ import annotations

import re
from pathlib import Path
from string import Template

from tests.interop.conftest import ROOT
from tests.interop.pcap import (FRAME, dtmf_audio, pcmu_packets, renumber, rfc4733_packets,
                                write_pcap)
from tests.interop.peers import SCENARIOS, sipp, sipp_messages

DIALPLANS = ROOT / "tests" / "interop" / "dialplans" / "dtmf"

PCMU_ONLY = ("0", "a=rtpmap:0 PCMU/8000")
PCMU_AND_EVENTS = ("0 101", "a=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\n"
                             "a=fmtp:101 0-15")


def dtmf_events(log: str) -> list[tuple[str, str, str]]:
    """(call id, digit, mode) of every ``dtmf`` line in the server log."""
    return re.findall(r"call (\S+) dtmf digit='([^']*)' mode='([^']*)'", log)


def pcap_scenario(tmp_path: Path, pcap: Path, formats: tuple[str, str], wait_ms: int) -> Path:
    text = Template((SCENARIOS / "uac_play_pcap.xml.tmpl").read_text()).substitute(
        PCAP=str(pcap), FORMATS=formats[0], RTPMAPS=formats[1].replace("\n", "\n      "),
        WAIT_MS=str(wait_ms))
    path = tmp_path / f"{pcap.stem}.xml"
    path.write_text(text)
    return path


def test_late_offer_answer_in_ack_is_applied(server_factory, tmp_path):
    server = server_factory(dialplans=DIALPLANS)
    r = sipp(tmp_path, server.sip, scenario=SCENARIOS / "uac_late_offer.xml", service="key1",
             timeout=30)
    assert r.returncode == 0, str(r)
    sent_invite = [lines for _, d, lines in sipp_messages(r.messages)
                   if d == "sent" and lines[0].startswith("INVITE")][0]
    assert "Content-Length: 0" in sent_invite and not any(l.startswith("v=0") for l in sent_invite)
    ok = [lines for _, d, lines in sipp_messages(r.messages)
          if d == "received" and lines[0].startswith("SIP/2.0 200") and
          any(l.startswith("CSeq: 1 INVITE") for l in lines)][0]
    body = "\n".join(ok)
    offer = re.search(r"m=audio (\d+) RTP/AVP ([0-9 ]+)", body)
    assert offer, body
    assert int(offer.group(1)) > 0 and {"0", "101"} <= set(offer.group(2).split()), body
    assert "a=rtpmap:0 PCMU/8000" in body and "a=rtpmap:101 telephone-event/8000" in body
    log = server.wait_for_log("ended: remote-bye (remote)", timeout=10)
    assert "verb='answer'" in log
    # SIPp sent the digit to our offer's port with PT 101: only an applied answer (remote
    # address and telephone-event PT from the ACK) turns it into a digit
    assert [(d, m) for _, d, m in dtmf_events(log)] == [("1", "rfc4733")], log[-3000:]
    assert "collected 1" in log
    assert "bad_ack_sdp" not in log and "Traceback" not in log


def test_sip_info_digits_get_200_and_are_reported(server_factory, tmp_path):
    server = server_factory(dialplans=DIALPLANS)
    r = sipp(tmp_path, server.sip, scenario=SCENARIOS / "uac_info_dtmf.xml", service="key2",
             timeout=30)
    assert r.returncode == 0, str(r)
    infos = [lines for _, d, lines in sipp_messages(r.messages)
             if d == "received" and any(re.match(r"CSeq: *[234] INFO", l) for l in lines)]
    assert [lines[0].split()[1] for lines in infos] == ["200", "200", "415"], str(r)
    accept = [l for l in infos[2] if l.lower().startswith("accept:")]
    assert accept and "application/dtmf-relay" in accept[0], infos[2]  # RFC 3261 21.4.16
    sent = [lines for _, d, lines in sipp_messages(r.messages)
            if d == "sent" and lines[0].startswith("INFO")]
    assert "Signal=5" in sent[0] and "Duration=160" in sent[0], sent[0]
    log = server.wait_for_log("ended: remote-bye (remote)", timeout=10)
    assert [(d, m) for _, d, m in dtmf_events(log)] == [("5", "info"), ("7", "info")], log[-3000:]
    assert "collected 57" in log


def test_inband_tones_in_pcmu_are_detected(server_factory, tmp_path):
    server = server_factory(dialplans=DIALPLANS)
    samples = dtmf_audio([(None, 300), ("3", 100), (None, 100), ("8", 100), (None, 100),
                          ("*", 100), (None, 400)])
    packets = pcmu_packets(samples)
    assert len(packets) == len(samples) // FRAME == 60
    pcap = write_pcap(tmp_path / "inband_38star.pcap", packets)
    scenario = pcap_scenario(tmp_path, pcap, PCMU_ONLY, wait_ms=2000)
    r = sipp(tmp_path, server.sip, scenario=scenario, service="key3", timeout=30)
    assert r.returncode == 0, str(r)
    answer = r.messages[r.messages.index("SIP/2.0 200 OK"):]
    assert "telephone-event" not in answer.split("CSeq: 1 INVITE")[0] + answer[:1500]
    log = server.wait_for_log("ended: remote-bye (remote)", timeout=10)
    events = dtmf_events(log)
    assert [(d, m) for _, d, m in events] == [("3", "inband"), ("8", "inband"),
                                              ("*", "inband")], log[-3000:]
    assert "collected 38*" in log


def test_digit_sent_both_as_rfc4733_and_tone_counts_once(server_factory, tmp_path):
    server = server_factory(dialplans=DIALPLANS)
    samples = dtmf_audio([(None, 300), ("5", 120), (None, 600)])
    audio = pcmu_packets(samples)
    tone_start = 0.3
    event_ts = audio[int(tone_start / 0.02)].timestamp
    events = rfc4733_packets("5", start=tone_start, ms=120, timestamp=event_ts)
    pcap = write_pcap(tmp_path / "both_5.pcap", renumber(audio + events))
    scenario = pcap_scenario(tmp_path, pcap, PCMU_AND_EVENTS, wait_ms=2500)
    r = sipp(tmp_path, server.sip, scenario=scenario, service="key1", timeout=30)
    assert r.returncode == 0, str(r)
    answer = r.messages[r.messages.index("SIP/2.0 200 OK"):][:2000]
    assert "a=rtpmap:101 telephone-event/8000" in answer, answer
    log = server.wait_for_log("ended: remote-bye (remote)", timeout=10)
    assert [(d, m) for _, d, m in dtmf_events(log)] == [("5", "rfc4733")], log[-3000:]
    assert "collected 5" in log
