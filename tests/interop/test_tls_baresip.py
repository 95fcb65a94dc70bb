"""SIP over TLS with a real phone: baresip, trusting the server's self-signed certificate
(``sip_cafile``), registers as 2001 over TLS (``;transport=tls``), calls the echo line
over TLS and hears its own tone come back."""
from __future__ import annotations

import re
import time

import numpy as np

from .conftest import free_port
from .peers import Baresip, read_wav, write_wav


# 2001 (password demo2001) whose own calls run the echo line's flow (dialplans/echo.yaml).
CONFIG = """\
realm: ivr.local
md5_only_user_agents: ['^baresip v[01]\\.']
extensions:
  "2001":
    context: echo_test
    ha1_sha256: bddecaed6dae6739bf9799694ba46c4abf3d40f32e34ae8f10010a6f565483aa
    ha1_md5: 87a565bc203f8cedf2e3139a4402bcff
"""


class TlsBaresip(Baresip):
    """baresip with a CA file for SIP over TLS."""

    cafile = None

    def _write_config(self, rtp_low: int) -> None:
        super()._write_config(rtp_low)
        config = self.dir / "config"
        config.write_text(config.read_text() + f"sip_cafile {self.cafile}\n")


def tone(path, freq=700.0, seconds=60):
    t = np.arange(int(8000 * seconds)) / 8000
    return write_wav(path, (0.3 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16))


def peak_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / 8000)[int(spectrum.argmax())])


def wait_for(predicate, what: str, log, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what}:\n{log()[-3000:]}")


def test_baresip_registers_over_tls_and_hears_its_tone_on_the_echo_line(server_factory,
                                                                         tmp_path):
    tls_port = free_port()
    config = tmp_path / "config"
    config.mkdir()
    (config / "extensions.yaml").write_text(CONFIG)
    server = server_factory(extra=["--sips", f"127.0.0.1:{tls_port}"], config=config)
    log = server.wait_for_log(f"SIP over TLS on 127.0.0.1:{tls_port}")
    cert = server.data / "tls" / "cert.pem"
    assert "created a self-signed TLS certificate for 127.0.0.1" in log
    fingerprint = re.search(r"SHA-256 fingerprint ([0-9A-F:]{95})", log).group(1)
    assert cert.exists()

    TlsBaresip.cafile = cert
    phone = TlsBaresip(tmp_path, "tls2001", source=tone(tmp_path / "mic.wav"))
    (phone.dir / "accounts").write_text(
        f"<sip:2001@127.0.0.1:{tls_port};transport=tls>;auth_pass=demo2001;"
        "regint=60;answermode=auto\n")
    phone.start()
    try:
        outcome = wait_for(lambda: re.findall(r"\{0/TLS/v4\} (\d{3} [A-Za-z ]+?) \(", phone.log())
                           or re.findall(r"reg: \S+: (\d{3} [A-Za-z ]+?) \(", phone.log()),
                           "baresip never registered over TLS", phone.log)
        assert outcome[-1].startswith("200"), phone.log()[-2000:]
        assert "{0/TLS/v4}" in phone.log()  # it registered over TLS, not UDP

        phone.dial(f"sip:echo@127.0.0.1:{tls_port}")  # the account adds ;transport=tls
        phone.wait_for_event("CALL_ESTABLISHED", timeout=15)
        time.sleep(9)  # the prompt (about 3 s), then its own voice back
        phone.hangup()
        phone.wait_for_event("CALL_CLOSED", timeout=10)
        heard, rate = read_wav(phone.received_wav())
        assert rate == 8000
        last = heard[-3 * 8000:]
        assert np.sqrt(np.mean(last.astype(np.float64) ** 2)) > 1000, "silence came back"
        assert abs(peak_hz(last) - 700) < 15, peak_hz(last)
    finally:
        phone.stop()
    server_log = server.log()
    assert "SIP/TLS connection" not in server_log or "failed" not in server_log
    assert fingerprint in server_log
