"""A real PortAudio device for the local-audio tests: PipeWire with a null sink.

The session fixture starts a private dbus-daemon, pipewire and wireplumber in a fresh
XDG_RUNTIME_DIR and creates a null sink (pw-cli create-node adapter); sounddevice then sees a
``pipewire`` device whose input hears the output through the sink's monitor. PortAudio reads
the device list once at initialisation, so everything that uses the device runs as a
subprocess with ``pipewire_env``. Missing packages are installed (as CI does) when root.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
APT_PACKAGES = ["pipewire", "pipewire-bin", "pipewire-alsa", "wireplumber", "dbus", "libportaudio2"]
BINARIES = ["pipewire", "wireplumber", "pw-cli", "dbus-daemon"]
NULL_SINK = ("{ factory.name=support.null-audio-sink node.name=ivr_null media.class=Audio/Sink "
             "object.linger=true audio.position=[FL FR] }")


def _ensure_installed() -> None:
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if not Path("/usr/lib/x86_64-linux-gnu/libportaudio.so.2").exists() and not any(
            Path(p).exists() for p in ("/usr/lib/aarch64-linux-gnu/libportaudio.so.2",
                                       "/usr/lib/libportaudio.so.2")):
        missing.append("libportaudio2")
    if missing and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES],
                       check=False, capture_output=True, timeout=600,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    still = [b for b in BINARIES if shutil.which(b) is None]
    assert not still, f"{still} not installed: apt-get install -y {' '.join(APT_PACKAGES)}"


def base_env() -> dict:
    """The environment without any sound server (PortAudio sees no device)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XDG_RUNTIME_DIR", "DBUS_", "PIPEWIRE_", "PULSE_", "JACK_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return env


def _devices(env: dict) -> str:
    code = "import sounddevice as sd; print([d['name'] for d in sd.query_devices()], sd.default.device)"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    return r.stdout


@pytest.fixture(scope="session")
def pipewire_env():
    _ensure_installed()
    runtime = tempfile.mkdtemp(prefix="ivr-pw-")
    os.chmod(runtime, 0o700)
    env = base_env()
    env.update(XDG_RUNTIME_DIR=runtime, PIPEWIRE_RUNTIME_DIR=runtime,
               DBUS_SESSION_BUS_ADDRESS=f"unix:path={runtime}/bus")
    logs = open(Path(runtime) / "daemons.log", "wb")
    procs = [subprocess.Popen(["dbus-daemon", "--session", "--nofork", f"--address=unix:path={runtime}/bus"],
                              env=env, stdout=logs, stderr=subprocess.STDOUT)]
    try:
        deadline = time.monotonic() + 20
        while not (Path(runtime) / "bus").exists():
            assert time.monotonic() < deadline, "dbus-daemon did not start"
            time.sleep(0.05)
        procs.append(subprocess.Popen(["pipewire"], env=env, stdout=logs, stderr=subprocess.STDOUT))
        while not (Path(runtime) / "pipewire-0").exists():
            assert time.monotonic() < deadline, "pipewire did not start"
            time.sleep(0.05)
        procs.append(subprocess.Popen(["wireplumber"], env=env, stdout=logs, stderr=subprocess.STDOUT))
        while True:
            r = subprocess.run(["pw-cli", "create-node", "adapter", NULL_SINK], env=env,
                               capture_output=True, text=True, timeout=30)
            if r.returncode == 0 and "Error" not in r.stdout + r.stderr:
                break
            assert time.monotonic() < deadline, f"cannot create the null sink: {r.stdout}{r.stderr}"
            time.sleep(0.2)
        while "pipewire" not in (listing := _devices(env)) or "-1" in listing:
            assert time.monotonic() < deadline, f"sounddevice sees no pipewire device: {listing!r}"
            time.sleep(0.2)
        time.sleep(0.5)  # let wireplumber settle the default sink and source
        yield env
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        logs.close()
        shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def no_device_env(tmp_path):
    """An environment where PortAudio finds no device: no sound server reachable."""
    empty = tmp_path / "no-sound"
    empty.mkdir(mode=0o700)
    env = base_env()
    env.update(XDG_RUNTIME_DIR=str(empty), PIPEWIRE_RUNTIME_DIR=str(empty),
               DBUS_SESSION_BUS_ADDRESS=f"unix:path={empty}/bus")
    return env


def ivr(args: list[str], env: dict, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """Run the ``ivr`` CLI in a subprocess."""
    return subprocess.run([sys.executable, "-m", "ivr.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kwargs)


class Capture:
    """Record the sound device's default input (the null sink's monitor) in a subprocess."""

    def __init__(self, env: dict, seconds: float, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen([sys.executable, str(HERE / "capture.py"), str(seconds), str(out)],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.strip() == "recording", f"capture did not start: {line!r} {self.proc.stderr.read()}"

    def wait(self, timeout: float = 60):
        _, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, err
        from ivr.media.audio import load_wav
        return load_wav(self.out)
