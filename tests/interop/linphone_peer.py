"""Linphone as a real peer for the interop tests: ``linphonec`` (Debian's linphone-cli) driven
over its stdin, with its own HOME and rc file, on 127.0.0.1.

Its sound card is files: it plays a WAV into each call and records what it hears.  Its log at
level 6 (``linphone.log``) holds every SIP message it sent or received; its console output
(``console.log``) shows the call states the tests wait for.
"""
from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from tests.interop.conftest import free_port, require

_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_SENT = re.compile(r"message sent to \[")
_RECEIVED = re.compile(r"received \[\d+\] new bytes from \[")


def _die_with_parent() -> None:
    """linphonec spins on a closed stdin: if pytest dies, take it down too (PR_SET_PDEATHSIG)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


class Linphone:
    """One linphonec.  ``account`` (a REGISTER with a password) or none (a caller whose From is
    ``sip:<name>@customer.example``); ``transport`` "udp" or "tcp"; ``use_info`` sends DTMF as
    SIP INFO instead of RFC 4733; incoming calls are answered at once (``-a``)."""

    def __init__(self, tmp_path: Path, name: str = "linphone", play: Path | None = None,
                 transport: str = "udp", use_info: bool = False):
        self.binary = require("linphonec")
        self.name = name
        self.dir = tmp_path / name
        self.home = self.dir / "home"
        # without this directory linphonec opens no SIP port at all
        (self.home / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        self.play, self.transport, self.use_info = play, transport, use_info
        self.rc = self.dir / "linphonerc"
        self.log_path = self.dir / "linphone.log"
        self.console_path = self.dir / "console.log"
        self.recordings = 0
        self.proc: subprocess.Popen | None = None

    def _write_rc(self) -> None:
        port = free_port()
        udp, tcp = (port, 0) if self.transport == "udp" else (0, port)
        rtp = free_port()
        # linphone's own parser: no spaces around "="
        self.rc.write_text(f"""\
[sip]
sip_port={udp}
sip_tcp_port={tcp}
sip_tls_port=0
bind_address=127.0.0.1
use_ipv6=0
use_info={int(self.use_info)}
contact="{self.name}" <sip:{self.name}@customer.example>
default_proxy=-1

[rtp]
audio_rtp_port={rtp}-{rtp + 100}

[sound]
echocancellation=0

[video]
enabled=0
capture=0
display=0
automatically_initiate=0
automatically_accept=0
""")

    def start(self, timeout: float = 10.0) -> "Linphone":
        self._write_rc()
        self._console = open(self.console_path, "wb")
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.rc), "-a", "-S", "-d", "6", "-l", str(self.log_path)],
            stdin=subprocess.PIPE, stdout=self._console, stderr=subprocess.STDOUT,
            env={**os.environ, "HOME": str(self.home)}, cwd=self.dir,
            preexec_fn=_die_with_parent)
        self.wait_for_console(r"linphonec> ", timeout)
        self.command("soundcard use files")
        if self.play:
            self.command(f"play {self.play}")
        self.next_recording()
        return self

    def next_recording(self) -> Path:
        """Record the next call into a new file; returns its path."""
        self.recordings += 1
        path = self.recording(self.recordings)
        self.command(f"record {path}")
        return path

    def recording(self, n: int | None = None) -> Path:
        return self.dir / f"rec-{n or self.recordings}.wav"

    def command(self, line: str) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.diagnostics()
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    # -- what it said
    def console(self) -> str:
        return self.console_path.read_text(errors="replace") if self.console_path.exists() else ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def diagnostics(self) -> str:
        console = "\n".join(l for l in self.console().splitlines()
                            if "suitable soundcard" not in l)
        return f"{self.name} console:\n{console[-3000:]}\nlinphone.log:\n{self.log()[-3000:]}"

    def wait_for_console(self, pattern: str, timeout: float = 10.0, count: int = 1) -> str:
        deadline = time.monotonic() + timeout
        while True:
            found = re.findall(pattern, self.console())
            if len(found) >= count:
                return found[count - 1]
            if time.monotonic() > deadline or (self.proc and self.proc.poll() is not None):
                raise AssertionError(f"{pattern!r} not seen within {timeout}s\n"
                                     + self.diagnostics())
            time.sleep(0.1)

    def sip_messages(self) -> list[str]:
        """Every SIP message sent ("TX" first line) or received ("RX")."""
        out, current = [], None
        for line in self.log().splitlines():
            if _STAMP.match(line):
                current = None
                if _SENT.search(line):
                    current = ["TX"]
                elif _RECEIVED.search(line):
                    current = ["RX"]
                if current is not None:
                    out.append(current)
            elif current is not None:
                current.append(line)
        return ["\n".join(m).rstrip() for m in out]

    def sent(self, first: str) -> list[str]:
        return [m for m in self.sip_messages() if m.startswith("TX\n")
                and m.split("\n", 2)[1].startswith(first)]

    def received(self, first: str) -> list[str]:
        return [m for m in self.sip_messages() if m.startswith("RX\n")
                and m.split("\n", 2)[1].startswith(first)]

    # -- actions
    def register(self, user: str, password: str, server_port: int) -> None:
        suffix = ";transport=tcp" if self.transport == "tcp" else ""
        self.command(f"register sip:{user}@127.0.0.1 sip:127.0.0.1:{server_port}{suffix} "
                     f"{password}")

    def registered(self, timeout: float = 10.0) -> None:
        """linphonec prints nothing when it registers: its log says so."""
        deadline = time.monotonic() + timeout
        while "to [LinphoneRegistrationOk]" not in self.log():
            failed = re.search(r"to \[LinphoneRegistrationFailed\]", self.log())
            if failed or time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not register\n" + self.diagnostics())
            time.sleep(0.1)

    def call(self, uri: str) -> None:
        suffix = ";transport=tcp" if self.transport == "tcp" else ""
        self.command(f"call {uri}{suffix}")

    def connected(self, timeout: float = 10.0, count: int = 1) -> str:
        return self.wait_for_console(r"Call \d+ with [^\n]+? connected", timeout, count)

    def ended(self, timeout: float = 10.0) -> str:
        return self.wait_for_console(r"Call \d+ with [^\n]+? ended", timeout)

    def dtmf(self, digit: str) -> None:
        """linphonec sends a line that is one DTMF character as that digit."""
        self.command(digit)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.command("quit")
                self.proc.wait(5)
            except (AssertionError, OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._console.close()
