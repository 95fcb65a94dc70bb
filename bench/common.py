"""Shared harness pieces: the server under test, SIPp, packet capture, CPU/RSS probes, results.

The server runs on core 0 and everything that drives or observes it (SIPp, dumpcap) on core 1,
with ``taskset`` where it exists, so the server's figures are one core's worth.
"""
from __future__ import annotations

import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
SCENARIOS = BENCH / "scenarios"
SERVER_CORE, DRIVER_CORE = "0", "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class BenchError(RuntimeError):
    """The harness could not run a step (a tool is missing, the server did not start...)."""


def require(binary: str) -> str:
    path = shutil.which(binary)
    if not path:
        raise BenchError(f"{binary} is not installed: run ./scripts/setup (see bench/README.md)")
    return path


def pinned(core: str, cmd: list[str]) -> list[str]:
    """``cmd`` run on one core when taskset exists and the machine has more than one core."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", core, *cmd]
    return cmd


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(200):
        port = random.randint(20000, 29999)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            u.bind(("127.0.0.1", port))
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise BenchError("no free port")


def free_range(size: int, low: int = 30000, high: int = 60000) -> tuple[int, int]:
    """An even-aligned UDP port range of ``size`` ports none of which is bound right now."""
    for _ in range(50):
        start = random.randrange(low, high - size, 2)
        probe = []
        try:
            for port in range(start, start + size, 97):  # sample: binding every port is slow
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                probe.append(s)
                s.bind(("127.0.0.1", port))
            return start, start + size - 1
        except OSError:
            continue
        finally:
            for s in probe:
                s.close()
    raise BenchError("no free port range")


# --------------------------------------------------------------------------- process probes

def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its direct children (the server's TTS worker)."""
    total = cpu_seconds(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        try:
            total += cpu_seconds(int(child))
        except (OSError, ValueError, IndexError):
            pass
    return total


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


class CpuWindow:
    """CPU used by ``pid`` between start() and stop(), as seconds and as a share of wall time."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def start(self) -> "CpuWindow":
        self.t0, self.c0 = time.monotonic(), cpu_seconds(self.pid)
        return self

    def stop(self) -> dict:
        wall, cpu = time.monotonic() - self.t0, cpu_seconds(self.pid) - self.c0
        return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                "cpu_percent": round(100.0 * cpu / wall, 1) if wall > 0 else None}


# --------------------------------------------------------------------------- the server

@dataclass
class Server:
    proc: subprocess.Popen
    sip_port: int
    http_port: int
    rtp_range: tuple[int, int]
    work: Path
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def sip(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def count(self, text: str) -> int:
        return self.log().count(text)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM twice (drain, then exit at once), SIGKILL as a last resort."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        return self.proc.returncode


def prepare_dialplans(work: Path, uas_port: int = 9) -> Path:
    """bench/dialplans copied into ``work`` with UAS_PORT filled in."""
    out = work / "dialplans"
    out.mkdir(parents=True, exist_ok=True)
    for src in (BENCH / "dialplans").glob("*.yaml"):
        (out / src.name).write_text(src.read_text().replace("UAS_PORT", str(uas_port)))
    return out


def start_server(work: Path, *, uas_port: int = 9, rtp_ports: int = 6000,
                 timeout: float = 90.0, config: Path | None = None) -> Server:
    """``ivr serve`` on core 0 with the bench dialplans, on free ports; waits for "server ready".
    ``config``: a config directory instead of bench/config (e.g. a copy with more keys)."""
    work.mkdir(parents=True, exist_ok=True)
    sip_port, http_port = free_port(), free_port()
    rtp = free_range(rtp_ports)
    log_path = work / "server.log"
    cmd = pinned(SERVER_CORE, [
        sys.executable, "-m", "ivr.cli", "serve", "--sip", f"127.0.0.1:{sip_port}",
        "--http", f"127.0.0.1:{http_port}", "--rtp-ports", f"{rtp[0]}-{rtp[1]}",
        "--dialplans", str(prepare_dialplans(work, uas_port)), "--prompts", str(ROOT / "prompts"),
        "--data", str(work / "data"), "--config", str(config or BENCH / "config"),
        "--media-timeout", "600", "--drain-timeout", "5"])
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    server = Server(proc, sip_port, http_port, rtp, work, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "server ready" in server.log():
            return server
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    server.stop()
    raise BenchError(f"ivr serve did not start:\n{server.log()[-3000:]}")


# --------------------------------------------------------------------------- SIPp

@dataclass
class SippRun:
    returncode: int
    work: Path
    output: str
    stats: dict = field(default_factory=dict)
    rtt_ms: list = field(default_factory=list)
    errors: str = ""

    def stat(self, name: str, default: int = 0) -> int:
        try:
            return int(self.stats.get(name, default))
        except ValueError:
            return default


def _read_stats(path: Path) -> dict:
    if not path.exists():
        return {}
    lines = [l for l in path.read_text(errors="replace").splitlines() if l.strip()]
    if len(lines) < 2:
        return {}
    header = lines[0].rstrip(";").split(";")
    row = lines[-1].rstrip(";").split(";")
    return dict(zip(header, row))


def _read_rtt(work: Path) -> list[float]:
    out: list[float] = []
    for path in work.glob("*_rtt.csv"):
        for line in path.read_text(errors="replace").splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 2:
                try:
                    out.append(float(parts[1]))
                except ValueError:
                    pass
    return out


def sipp_args(work: Path, target: str, scenario: str | Path, *, service: str, calls: int,
              rate: float | None = None, limit: int | None = None, duration_ms: int | None = None,
              timeout: float = 120.0, extra: list[str] = ()) -> list[str]:
    binary = require("sipp")
    cmd = [binary, target]
    cmd += ["-sf", str(scenario)] if str(scenario).endswith(".xml") else ["-sn", str(scenario)]
    cmd += ["-s", service, "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(free_port()),
            "-mp", str(free_range(4, 20000, 29000)[0]), "-m", str(calls), "-nostdin",
            "-trace_stat", "-stf", str(work / "stat.csv"), "-fd", "1",
            "-trace_err", "-error_file", str(work / "errors.log"),
            "-trace_rtt", "-rtt_freq", "1", "-max_socket", "4096",
            "-timeout", f"{int(timeout)}s", "-timeout_error", "-recv_timeout", "20000"]
    if rate is not None:
        cmd += ["-r", f"{rate:g}", "-rp", "1000"]
    if limit is not None:
        cmd += ["-l", str(limit)]
    if duration_ms is not None:
        cmd += ["-d", str(int(duration_ms))]
    return cmd + list(extra)


class Sipp:
    """SIPp on core 1 in the background; ``wait()`` gives a SippRun."""

    def __init__(self, work: Path, target: str, scenario, *, tag: str, timeout: float = 120.0,
                 **kwargs) -> None:
        self.work = work / f"sipp-{tag}"
        self.work.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        cmd = pinned(DRIVER_CORE, sipp_args(self.work, target, scenario, timeout=timeout, **kwargs))
        self.out = open(self.work / "output.txt", "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.work, stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def wait(self) -> SippRun:
        try:
            rc = self.proc.wait(self.timeout + 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.out.close()
        text = (self.work / "output.txt").read_text(errors="replace")
        err = self.work / "errors.log"
        return SippRun(rc, self.work, text, _read_stats(self.work / "stat.csv"), _read_rtt(self.work),
                       err.read_text(errors="replace")[-2000:] if err.exists() else "")


def sipp(work: Path, target: str, scenario, **kwargs) -> SippRun:
    return Sipp(work, target, scenario, **kwargs).wait()


class SippUas:
    """SIPp's built-in ``uas`` answering with ``-rtp_echo``: the reference peer and B3's far end."""

    def __init__(self, work: Path, core: str, tag: str = "uas") -> None:
        self.work = work / f"sipp-{tag}"
        self.work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.media_port = free_range(4, 20000, 29000)[0]
        cmd = pinned(core, [require("sipp"), "-sn", "uas", "-i", "127.0.0.1", "-mi", "127.0.0.1",
                            "-p", str(self.port), "-mp", str(self.media_port), "-rtp_echo",
                            "-nostdin", "-max_socket", "4096",
                            "-trace_stat", "-stf", str(self.work / "stat.csv"), "-fd", "1"])
        self.out = open(self.work / "output.txt", "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.work, stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        time.sleep(0.3)
        if self.proc.poll() is not None:
            raise BenchError(f"sipp uas exited: {(self.work / 'output.txt').read_text()[-1500:]}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()


# --------------------------------------------------------------------------- capture

class Capture:
    """dumpcap on loopback (core 1) into a pcap file, filtered to UDP ports in ``ports``."""

    def __init__(self, path: Path, bpf: str) -> None:
        self.path = path
        binary = shutil.which("dumpcap") or require("tshark")
        cmd = pinned(DRIVER_CORE, [binary, "-i", "lo", "-f", bpf, "-w", str(path), "-P", "-q",
                                   "-B", "256", "-s", "64"])
        self.err_path = path.with_suffix(".log")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.err, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # dumpcap creates the file once it is capturing
            if path.exists() or self.proc.poll() is not None:
                break
            time.sleep(0.05)
        time.sleep(0.3)
        if self.proc.poll() is not None:
            raise BenchError(f"capture failed: {self.err_path.read_text()[-1000:]}")

    def stop(self) -> dict:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        text = self.err_path.read_text(errors="replace")
        dropped = 0
        for line in text.splitlines():  # "Packets received/dropped on interface 'lo': 100/0 (...)"
            if "dropped" in line and "/" in line:
                try:
                    dropped = int(line.split(":")[-1].split("/")[1].split()[0])
                except (ValueError, IndexError):
                    pass
        return {"capture_dropped": dropped}


# --------------------------------------------------------------------------- results

def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        text = (out.stdout + out.stderr).strip().splitlines()
        return next((l.strip() for l in text if l.strip()), "?")
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"


def machine() -> dict:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    import twisted
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = "?"
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "twisted": twisted.__version__,
            "numpy": numpy.__version__, "sipp": _version(["sipp", "-v"]),
            "tshark": _version(["tshark", "--version"]), "commit": commit,
            "taskset": bool(shutil.which("taskset")), "loadavg_1m_at_start": load}


def write_result(name: str, mode: str, figures: dict, targets: dict, started: float) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"benchmark": name, "mode": mode, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "elapsed_s": round(time.monotonic() - started, 1), "machine": machine(),
           "targets": targets, "figures": figures}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(out, indent=2, default=float) + "\n")
    return path


def percentile(values, q: float):
    import numpy as np
    arr = np.asarray(values, dtype=float)
    return round(float(np.percentile(arr, q)), 3) if arr.size else None


_FLOOR = """
import json, sys, time
end = time.monotonic() + float(sys.argv[1]); nxt = time.monotonic(); ts = []
while time.monotonic() < end:
    nxt += 0.02
    d = nxt - time.monotonic()
    if d > 0:
        time.sleep(d)
    ts.append(time.monotonic())
iv = [(b - a) * 1000 for a, b in zip(ts, ts[1:])]
dev = sorted(abs(x - 20) for x in iv)
print(json.dumps({"p99_dev_ms": round(dev[int(len(dev) * 0.99)], 3), "max_ms": round(max(iv), 3),
                  "intervals": len(iv)}))
"""


def timer_floor(seconds: float = 3.0) -> dict:
    """The timing floor of the server's core: a bare 20 ms sleep loop (no work) pinned there.
    On a shared or virtual machine this shows what no server on that core can beat."""
    out = subprocess.run(pinned(SERVER_CORE, [sys.executable, "-c", _FLOOR, str(seconds)]),
                         capture_output=True, text=True, timeout=seconds + 20)
    try:
        return json.loads(out.stdout)
    except ValueError:
        return {"error": out.stderr[-300:]}
