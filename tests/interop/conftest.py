"""Fixtures for interop tests: a real ``ivr serve`` process and real peers on 127.0.0.1."""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(100):
        port = random.randint(20000, 60000)
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
    raise RuntimeError("no free port")


def require(binary: str) -> str:
    path = shutil.which(binary)
    assert path, f"{binary} is not installed: run ./scripts/setup (CI installs it)"
    return path


@dataclass
class Server:
    proc: subprocess.Popen
    sip_port: int
    http_port: int
    data: Path
    log_path: Path
    dialplans: Path

    @property
    def sip(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if text in log:
                return log
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in server log:\n{self.log()[-4000:]}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


BUNDLED_CONFIG = ROOT / "config"


def start_server(tmp_path: Path, dialplans: Path | None = None, extra: list[str] = (),
                 env: dict | None = None, config: Path | None = None) -> Server:
    """``config`` is the --config dir (default: the bundled config/, as a newcomer runs it)."""
    sip_port, http_port = free_port(), free_port()
    rtp_low = random.randrange(30000, 59000, 2)
    data = tmp_path / "data"
    log_path = tmp_path / "server.log"
    dialplans = dialplans or ROOT / "dialplans"
    cmd = [sys.executable, "-m", "ivr.cli", "serve", "--sip", f"127.0.0.1:{sip_port}",
           "--http", f"127.0.0.1:{http_port}", "--rtp-ports", f"{rtp_low}-{rtp_low + 400}",
           "--dialplans", str(dialplans), "--prompts", str(ROOT / "prompts"),
           "--data", str(data), "--config", str(config or BUNDLED_CONFIG), *extra]
    log_file = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT,
                            env={**os.environ, **(env or {})})
    server = Server(proc, sip_port, http_port, data, log_path, dialplans)
    server.wait_for_log("server ready", timeout=60)
    return server


@pytest.fixture
def server_factory(tmp_path):
    servers: list[Server] = []

    def factory(**kwargs) -> Server:
        server = start_server(tmp_path, **kwargs)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop(signal.SIGKILL if server.proc.poll() is None else signal.SIGTERM)


@pytest.fixture
def server(server_factory) -> Server:
    return server_factory()
