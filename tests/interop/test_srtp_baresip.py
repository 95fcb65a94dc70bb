"""SRTP with a real phone (issue #15): baresip configured only for TLS (``;transport=tls``)
and mandatory SRTP (``;mediaenc=srtp-mand``, its ``srtp`` module, SDES keys) registers as
2001, whose ``media_encryption`` is ``required``:

* on the echo line it hears its own 700 Hz tone back, and a capture of the loopback
  (tshark) shows RTP on that leg whose payloads do not decode as the tone, while the CDR
  says ``tls`` and ``srtp:AES_CM_128_HMAC_SHA1_80``;
* on the toll-free menu (the bundled ``main_menu`` flow of +18005550100, the extension's
  own context here: an extension's calls run its context) its RFC 4733 digits, sent
  inside SRTP, choose the menu branch;
* calling 2002, a plain-RTP phone registered over UDP, each hears the other's tone: the
  relay decrypts one leg and encrypts the other.
"""
from __future__ import annotations

import random
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np

from ivr.media.g711 import ulaw_decode

from .conftest import free_port
from .peers import Baresip
from .test_tls_baresip import TlsBaresip, peak_hz, tone, wait_for

CONFIG = """\
realm: ivr.local
md5_only_user_agents: ['^baresip v[01]\\.']
extensions:
  "2001":
    context: {context}
    media_encryption: required
    ha1_sha256: bddecaed6dae6739bf9799694ba46c4abf3d40f32e34ae8f10010a6f565483aa
    ha1_md5: 87a565bc203f8cedf2e3139a4402bcff
  "2002":
    context: internal
    media_encryption: optional
    ha1_sha256: edb1f84eb25b5cce60214b684bbc4ef5ed8693c292309422c90574ee73006231
    ha1_md5: 45f510763d8d21f7a0b550d7d493a274
"""
SUITE = "AES_CM_128_HMAC_SHA1_80"


class SrtpBaresip(TlsBaresip):
    """baresip over TLS with its srtp module loaded."""

    def _write_config(self, rtp_low: int) -> None:
        super()._write_config(rtp_low)
        config = self.dir / "config"
        # before account.so, or the account's mediaenc=srtp-mand is unknown when it is read
        config.write_text(config.read_text().replace("module account.so",
                                                     "module srtp.so\nmodule account.so"))


def start(server_factory, tmp_path: Path, context: str):
    tls_port = free_port()
    rtp_low = random.randrange(30000, 59000, 2)
    config = tmp_path / "config"
    config.mkdir()
    (config / "extensions.yaml").write_text(CONFIG.format(context=context))
    server = server_factory(extra=["--sips", f"127.0.0.1:{tls_port}",
                                   "--rtp-ports", f"{rtp_low}-{rtp_low + 400}"], config=config)
    server.wait_for_log(f"SIP over TLS on 127.0.0.1:{tls_port}")
    server.tls_port, server.rtp_range = tls_port, (rtp_low, rtp_low + 400)
    SrtpBaresip.cafile = server.data / "tls" / "cert.pem"
    return server


def srtp_phone(tmp_path, server, freq=700.0, name="srtp2001"):
    phone = SrtpBaresip(tmp_path, name, source=tone(tmp_path / f"{name}.wav", freq))
    (phone.dir / "accounts").write_text(
        f"<sip:2001@127.0.0.1:{server.tls_port};transport=tls>;auth_pass=demo2001;"
        "mediaenc=srtp-mand;regint=60;answermode=auto\n")
    phone.start()
    registered(phone)
    return phone


def registered(phone) -> None:
    outcome = wait_for(lambda: re.findall(r"\{0/(?:TLS|UDP)/v4\} (\d{3} [A-Za-z ]+?) \(",
                                          phone.log())
                       or re.findall(r"reg: \S+: (\d{3} [A-Za-z ]+?) \(", phone.log()),
                       "baresip never registered", phone.log)
    assert outcome[-1].startswith("200"), phone.log()[-2000:]


def cdrs(server) -> list[dict]:
    conn = sqlite3.connect(server.data / "ivr.sqlite3")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM cdrs ORDER BY setup_at")]
    finally:
        conn.close()


def cdrs_when_written(server, count: int) -> list[dict]:
    return wait_for(lambda: (lambda rows: rows if len(rows) >= count else None)(cdrs(server)),
                    f"{count} CDR(s) never written", server.log)


def last_seconds(path, seconds=3) -> np.ndarray:
    from .peers import read_wav
    heard, rate = read_wav(path)
    assert rate == 8000
    return heard[-seconds * 8000:]


def has_tone(samples: np.ndarray, freq: float) -> bool:
    return (np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 1000
            and abs(peak_hz(samples) - freq) < 15)


class Capture:
    """tshark on the loopback, UDP to and from the server's RTP ports, into a pcap file;
    with ``peer``, only packets whose other end is in the phone's RTP ports (a CI machine's
    loopback may carry other processes' datagrams through the server's random range)."""

    def __init__(self, tmp_path: Path, ports: tuple[int, int],
                 peer: tuple[int, int] | None = None) -> None:
        binary = shutil.which("tshark")
        assert binary, "tshark is missing: ./scripts/setup installs it"
        self.path = tmp_path / "rtp.pcap"
        bpf = f"udp portrange {ports[0]}-{ports[1]}"
        if peer:
            bpf += f" and udp portrange {peer[0]}-{peer[1]}"
        self.proc = subprocess.Popen(
            [binary, "-i", "lo", "-f", bpf, "-F", "pcap",
             "-w", str(self.path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while not (self.path.exists() and self.path.stat().st_size >= 24):
            assert self.proc.poll() is None and time.monotonic() < deadline, \
                f"tshark did not start: {self.proc.stderr.read().decode(errors='replace')}"
            time.sleep(0.05)
        time.sleep(0.5)

    def stop(self) -> list[tuple[int, int, bytes]]:
        """(source port, destination port, UDP payload) of every captured packet."""
        time.sleep(0.3)
        self.proc.terminate()
        self.proc.wait(10)
        return read_pcap(self.path.read_bytes())


def read_pcap(data: bytes) -> list[tuple[int, int, bytes]]:
    import struct
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    link = struct.unpack(endian + "I", data[20:24])[0]
    offset, out = 24, []
    while offset + 16 <= len(data):
        incl = struct.unpack(endian + "IIII", data[offset:offset + 16])[2]
        frame = data[offset + 16:offset + 16 + incl]
        offset += 16 + incl
        ip = frame[{0: 4, 1: 14, 113: 16, 276: 20}.get(link, 14):]  # null/ethernet/SLL/SLL2
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        udp = ip[(ip[0] & 0x0F) * 4:]
        sport, dport = struct.unpack("!HH", udp[:4])
        out.append((sport, dport, udp[8:]))
    return out


def test_srtp_phone_hears_its_tone_on_the_echo_line_and_the_wire_is_not_the_tone(
        server_factory, tmp_path):
    server = start(server_factory, tmp_path, "echo_test")
    phone = srtp_phone(tmp_path, server)
    capture = Capture(tmp_path, server.rtp_range, phone.rtp_range)
    try:
        phone.dial(f"sip:echo@127.0.0.1:{server.tls_port}")
        phone.wait_for_event("CALL_ESTABLISHED", timeout=15)
        time.sleep(9)  # the prompt (about 3 s), then its own voice back
        phone.hangup()
        phone.wait_for_event("CALL_CLOSED", timeout=10)
        assert has_tone(last_seconds(phone.received_wav()), 700), "the tone did not come back"
    finally:
        packets = capture.stop()
        phone.stop()
    assert "srtp" in phone.log().lower()
    (record,) = cdrs_when_written(server, 1)
    assert record["sip_transport"] == "tls", record
    assert record["media_encryption"] == f"srtp:{SUITE}", record
    assert record["srtp_auth_failures"] == 0
    # the SRTP leg on the wire: many RTP-sized packets both ways, none of them the tone
    rtp = [p for _, _, p in packets if len(p) > 12 and p[0] >> 6 == 2 and not 200 <= p[1] <= 204]
    assert len(rtp) > 300, len(rtp)
    assert {len(p) for p in rtp} >= {172 + 10}  # 12 + 160 bytes of audio + the 80-bit tag
    audio = np.concatenate([ulaw_decode(p[12:172]) for p in rtp if len(p) == 182])
    spectrum = np.abs(np.fft.rfft(audio[:8000 * 4].astype(np.float64)))
    freqs = np.fft.rfftfreq(len(audio[:8000 * 4]), 1 / 8000)
    near = spectrum[(freqs > 680) & (freqs < 720)].sum() / spectrum.sum()
    assert near < 0.05, f"{near:.0%} of the captured payloads' energy is at the tone"
    assert "insecure_srtp_keys" not in server.log()


def test_srtp_phone_chooses_the_toll_free_menu_branch_with_rfc4733_digits(server_factory,
                                                                          tmp_path):
    server = start(server_factory, tmp_path, "main_menu")
    phone = srtp_phone(tmp_path, server)
    try:
        phone.dial(f"sip:+18005550100@127.0.0.1:{server.tls_port}")
        phone.wait_for_event("CALL_ESTABLISHED", timeout=15)
        time.sleep(1.0)
        phone.send_digits("2")  # support: the queue, not configured here -> unavailable
        wait_for(lambda: re.findall(r"dtmf digit='2' mode='rfc4733'", server.log()),
                 "the digit never arrived", server.log)
        time.sleep(1.0)
        phone.hangup()
        phone.wait_for_event("CALL_CLOSED", timeout=10)
    finally:
        phone.stop()
    log = server.log()
    assert re.search(r"menu_choice .*digits='2'", log) or "flow='support'" in log, log[-3000:]
    (record,) = cdrs_when_written(server, 1)
    assert record["media_encryption"] == f"srtp:{SUITE}" and record["sip_transport"] == "tls"
    assert '"rfc4733": 1' in (record["extra"] or "") or record["digits"] == '["2"]', record


def test_an_srtp_extension_bridged_with_a_plain_phone_both_hear(server_factory, tmp_path):
    server = start(server_factory, tmp_path, "internal")
    plain = Baresip(tmp_path, "plain2002", source=tone(tmp_path / "plain.wav", 1100))
    (plain.dir / "accounts").write_text(
        f"<sip:2002@{server.sip}>;auth_pass=demo2002;regint=60;answermode=auto\n")
    plain.start()
    registered(plain)
    phone = srtp_phone(tmp_path, server, freq=700)
    try:
        phone.dial(f"sip:2002@127.0.0.1:{server.tls_port}")
        phone.wait_for_event("CALL_ESTABLISHED", timeout=20)
        plain.wait_for_event("CALL_ESTABLISHED", timeout=10)
        time.sleep(6)
        phone.hangup()
        phone.wait_for_event("CALL_CLOSED", timeout=10)
        plain.wait_for_event("CALL_CLOSED", timeout=10)
        assert has_tone(last_seconds(phone.received_wav(), 2), 1100), "SRTP leg heard nothing"
        assert has_tone(last_seconds(plain.received_wav(), 2), 700), "plain leg heard nothing"
    finally:
        phone.stop()
        plain.stop()
    records = {r["direction"]: r for r in cdrs_when_written(server, 2)}
    assert records["inbound"]["media_encryption"] == f"srtp:{SUITE}"
    assert records["inbound"]["sip_transport"] == "tls"
    assert records["outbound"]["media_encryption"] == "none"
    assert records["outbound"]["sip_transport"] == "udp"
