"""Real SIP peers for the interop tests: baresip (a softphone driven over ctrl_tcp) and SIPp.

Both run as subprocesses bound to 127.0.0.1 on free ports.  A missing binary fails the test
with a message pointing at ``./scripts/setup`` (the interop suite is never skipped).
"""
from __future__ import annotations

import json
import random
import socket
import subprocess
import threading
import time
import wave
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from tests.interop.conftest import free_port, require

SIPP_PCAP_DIR = Path("/usr/share/sip-tester")
SCENARIOS = Path(__file__).resolve().parent / "scenarios"


# --------------------------------------------------------------------------- audio helpers

def write_wav(path: Path, samples: np.ndarray, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono int16 samples (the first channel of a multichannel file) and the rate."""
    with wave.open(str(path), "rb") as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        raw = w.readframes(w.getnframes())
    assert width == 2, f"{path}: {8 * width}-bit samples, expected 16"
    samples = np.frombuffer(raw, dtype="<i2")
    if channels > 1:
        samples = samples[::channels]
    return samples, rate


def rms(samples: np.ndarray) -> float:
    if len(samples) == 0:
        return 0.0
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


# --------------------------------------------------------------------------- netstrings

class NetstringDecoder:
    """Incremental netstring (``<len>:<data>,``) decoder."""

    def __init__(self):
        self.buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        out = []
        while True:
            colon = self.buffer.find(b":")
            if colon < 0:
                if len(self.buffer) > 10:
                    raise ValueError(f"bad netstring prefix {self.buffer[:20]!r}")
                return out
            length = int(self.buffer[:colon])
            end = colon + 1 + length
            if len(self.buffer) < end + 1:
                return out
            if self.buffer[end:end + 1] != b",":
                raise ValueError("netstring without trailing comma")
            out.append(self.buffer[colon + 1:end])
            self.buffer = self.buffer[end + 1:]


def netstring(data: bytes) -> bytes:
    return str(len(data)).encode() + b":" + data + b","


# --------------------------------------------------------------------------- baresip

@dataclass
class Baresip:
    """A headless baresip in ``tmp_path/<name>``: auto-answers, sends ``source`` WAV as its
    microphone, records what it sends and hears (sndfile), and is driven over ctrl_tcp."""

    tmp_path: Path
    name: str = "baresip"
    source: Path | None = None
    proc: subprocess.Popen | None = None
    events: list[dict] = field(default_factory=list)
    responses: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self.binary = require("baresip")
        self.dir = self.tmp_path / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dumps = self.dir / "dumps"
        self.dumps.mkdir(exist_ok=True)
        self.sip_port = free_port()
        self.ctrl_port = free_port()
        rtp_low = random.randrange(20000, 29000, 2)
        self.rtp_range = (rtp_low, rtp_low + 40)
        if self.source is None:
            # a quiet microphone: low-level noise, so the received-audio check sees only the server
            rng = np.random.default_rng(1)
            self.source = write_wav(self.dir / "mic.wav",
                                    rng.integers(-20, 20, 8000 * 120).astype(np.int16))
        self._write_config(rtp_low)
        (self.dir / "accounts").write_text("<sip:test@127.0.0.1>;regint=0;answermode=auto\n")
        (self.dir / "contacts").write_text("")
        self.log_path = self.dir / "baresip.log"
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None

    def _write_config(self, rtp_low: int) -> None:
        (self.dir / "config").write_text(f"""\
poll_method epoll
sip_listen 127.0.0.1:{self.sip_port}
sip_trans_def udp
net_interface 127.0.0.1
audio_player alsa,null
audio_source aufile,{self.source}
audio_alert alsa,null
audio_srate 8000
audio_channels 1
rtp_ports {rtp_low}-{rtp_low + 40}
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module alsa.so
module sndfile.so
module account.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}
snd_path {self.dumps}
""")

    # -- process
    def start(self, timeout: float = 10.0, attempts: int = 3) -> "Baresip":
        """Start baresip; if one of its ports was taken meanwhile (free_port only checks),
        start again on new ports rather than talk to some other process's port."""
        for attempt in range(attempts):
            self._start_once(timeout)
            deadline = time.monotonic() + timeout
            while "baresip is ready" not in self.log() and time.monotonic() < deadline:
                time.sleep(0.05)
            if "Address already in use" not in self.log():
                return self
            self.stop()
            self.sip_port, self.ctrl_port = free_port(), free_port()
            self._write_config(random.randrange(20000, 29000, 2))
        raise AssertionError(f"baresip could not bind its ports:\n{self.log()[-2000:]}")

    def _start_once(self, timeout: float) -> None:
        self._log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen([self.binary, "-f", str(self.dir)], stdin=subprocess.DEVNULL,
                                     stdout=self._log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"baresip did not open ctrl_tcp on {self.ctrl_port}:\n"
                                         f"{self.log()[-3000:]}")
                time.sleep(0.05)
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log_file", None):
            self._log_file.close()

    # -- ctrl_tcp
    def _read(self):
        decoder = NetstringDecoder()
        sock = self._sock
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                with self._cond:
                    self._cond.notify_all()
                return
            for frame in decoder.feed(data):
                try:
                    msg = json.loads(frame)
                except ValueError:
                    continue
                with self._cond:
                    (self.events if msg.get("event") else self.responses).append(msg)
                    self._cond.notify_all()

    def command(self, command: str, params: str = "", timeout: float = 5.0) -> dict:
        token = f"t{random.randrange(1 << 30)}"
        body = {"command": command, "token": token}
        if params:
            body["params"] = params
        self._sock.sendall(netstring(json.dumps(body).encode()))
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for r in self.responses:
                    if r.get("token") == token:
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"baresip: no response to {command!r}; log:\n"
                                         f"{self.log()[-2000:]}")
                self._cond.wait(left)

    def dial(self, uri: str) -> dict:
        return self.command("dial", uri)

    def sndcode(self, digit: str) -> dict:
        return self.command("sndcode", digit)

    def send_digits(self, digits: str, gap: float = 0.4):
        for d in digits:
            self.sndcode(d)
            time.sleep(gap)

    def hangup(self) -> dict:
        return self.command("hangup")

    def event_types(self) -> list[str]:
        with self._lock:
            return [e.get("type", "") for e in self.events]

    def wait_for_event(self, name: str, timeout: float = 10.0, count: int = 1) -> dict:
        """Wait until the ``count``-th event of type ``name`` arrived; returns it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self.events if e.get("type") == name]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"baresip: no {name} event within {timeout}s; events "
                        f"{[e.get('type') for e in self.events]}; log:\n{self.log()[-2000:]}")
                self._cond.wait(left)

    # -- recordings
    def _dump(self, suffix: str) -> Path:
        files = sorted(self.dumps.glob(f"dump-*-{suffix}.wav"), key=lambda p: p.stat().st_mtime)
        assert files, f"baresip wrote no dump-*-{suffix}.wav in {self.dumps}"
        return files[-1]

    def received_wav(self) -> Path:
        """What baresip heard from the far end (the latest call)."""
        return self._dump("dec")

    def sent_wav(self) -> Path:
        """What baresip sent to the far end (the latest call)."""
        return self._dump("enc")


# --------------------------------------------------------------------------- SIPp

def free_media_port() -> int:
    """An even UDP port p on 127.0.0.1 with p..p+3 free (SIPp's audio and video RTP/RTCP)."""
    for _ in range(200):
        base = random.randrange(20000, 60000, 2)
        socks = []
        try:
            for port in range(base, base + 4):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free media port")


@dataclass
class SippResult:
    returncode: int
    stats: str          # the -trace_stat CSV ("" if none)
    messages: str       # the -trace_msg log
    errors: str         # the -trace_err log
    output: str         # stdout + stderr

    def stat(self, name: str) -> int:
        """The last value of a cumulative column of the stat CSV, e.g. ``FailedCall(C)``."""
        lines = [l for l in self.stats.splitlines() if l.strip()]
        assert len(lines) >= 2, f"no stat rows:\n{self.stats}\n{self.output[-2000:]}"
        header = lines[0].rstrip(";").split(";")
        row = lines[-1].rstrip(";").split(";")
        return int(row[header.index(name)])

    def __str__(self):
        return (f"sipp rc={self.returncode}\n--- output\n{self.output[-3000:]}\n--- errors\n"
                f"{self.errors[-3000:]}\n--- messages (tail)\n{self.messages[-3000:]}")


def sipp(tmp_path: Path, target: str, *, scenario: str | Path = "uac", service: str = "echo",
         calls: int = 1, rate: float | None = None, duration_ms: int | None = None,
         transport: str | None = None, extra: list[str] = (), timeout: float = 60.0,
         tag: str | None = None) -> SippResult:
    """Run SIPp once against ``target`` ("127.0.0.1:PORT").

    ``scenario`` is a built-in name (``uac``) or a path to an XML file; ``calls`` bounds the run
    with ``-m``.  Traces land in ``tmp_path/sipp-<tag>/``.
    """
    binary = require("sipp")
    tag = tag or f"{Path(str(scenario)).stem}-{random.randrange(1 << 20)}"
    work = tmp_path / f"sipp-{tag}"
    work.mkdir(parents=True, exist_ok=True)
    stat_file, msg_file, err_file = work / "stat.csv", work / "messages.log", work / "errors.log"
    cmd = [binary, target]
    if Path(str(scenario)).suffix == ".xml":
        cmd += ["-sf", str(scenario)]
    else:
        cmd += ["-sn", str(scenario)]
    cmd += ["-s", service, "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(free_port()),
            "-mp", str(free_media_port()),
            "-m", str(calls), "-nostdin",
            "-trace_stat", "-stf", str(stat_file), "-fd", "1",
            "-trace_msg", "-message_file", str(msg_file),
            "-trace_err", "-error_file", str(err_file),
            "-timeout", f"{int(timeout)}s", "-timeout_error"]
    if rate is not None:
        cmd += ["-r", str(rate)]
    if duration_ms is not None:
        cmd += ["-d", str(duration_ms)]
    if transport is not None:
        cmd += ["-t", transport]
    cmd += list(extra)
    try:
        proc = subprocess.run(cmd, cwd=work, capture_output=True, timeout=timeout + 15)
        rc, out = proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        rc, out = -9, ((e.stdout or b"") + (e.stderr or b"")).decode(errors="replace")

    def text(p: Path) -> str:
        return p.read_text(errors="replace") if p.exists() else ""

    return SippResult(rc, text(stat_file), text(msg_file), text(err_file), out)


class SippProcess:
    """SIPp running in the background (for tests that act while a call is up)."""

    def __init__(self, tmp_path: Path, target: str, **kwargs):
        self.result: SippResult | None = None
        self._thread = threading.Thread(target=self._run, args=(tmp_path, target), kwargs=kwargs,
                                        daemon=True)
        self._thread.start()

    def _run(self, tmp_path, target, **kwargs):
        self.result = sipp(tmp_path, target, **kwargs)

    def wait(self, timeout: float = 60.0) -> SippResult:
        self._thread.join(timeout)
        assert self.result is not None, "sipp did not finish"
        return self.result


def sipp_messages(messages: str) -> list[tuple[float, str, list[str]]]:
    """Parse a SIPp -trace_msg log into (time, "sent"/"received", message lines)."""
    out = []
    for block in messages.split("----------------------------------------------- ")[1:]:
        lines = block.splitlines()
        if len(lines) < 2:
            continue
        when = datetime.strptime(lines[0].strip(), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        direction = "received" if "received" in lines[1] else "sent"
        body = [l for l in lines[2:] if l.strip()]
        out.append((when, direction, body))
    return out


def _matches(lines: list[str], first_line: str, cseq_method: str | None) -> bool:
    if not lines or not lines[0].startswith(first_line):
        return False
    if cseq_method is None:
        return True
    cseq = [l for l in lines if l.lower().startswith("cseq:")]
    return bool(cseq) and cseq[0].split()[-1].upper() == cseq_method.upper()


def message_times(messages: str, first_line: str, cseq_method: str | None = None,
                  direction: str = "received") -> list[float]:
    """Times (epoch seconds) of SIP messages in a SIPp -trace_msg log whose start line begins
    with ``first_line`` (e.g. ``SIP/2.0 200`` or ``BYE``), optionally with that CSeq method."""
    return [when for when, d, lines in sipp_messages(messages)
            if d == direction and _matches(lines, first_line, cseq_method)]


def count_messages(messages: str, first_line: str, cseq_method: str | None = None,
                   direction: str = "received") -> int:
    return len(message_times(messages, first_line, cseq_method, direction))
