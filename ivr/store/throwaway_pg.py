"""A throwaway PostgreSQL cluster from the Debian package, for the tests and ``scripts/cluster``.

``initdb`` into a temporary directory (or ``directory``), its own socket directory and a
free port on 127.0.0.1, run as the ``postgres`` system user when we are root (PostgreSQL
refuses to run as root).  :meth:`stop` and :meth:`start` let a test take the database away
and bring it back; :meth:`destroy` removes everything.  :meth:`PgCluster.attach` finds one
again from another process (``scripts/cluster down``).  No ``ivr`` imports: a tool, not
part of the server.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    def __init__(self, user: str = "ivr", directory: str | Path | None = None,
                 port: int | None = None, *, create: bool = True) -> None:
        bindir = pg_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed: run ./scripts/setup")
        self.bin = bindir
        self.user = user
        if directory is None:
            self.dir = Path(tempfile.mkdtemp(prefix="ivr-pg-"))
        else:
            self.dir = Path(directory)
            self.dir.mkdir(parents=True, exist_ok=True)
        self.data = self.dir / "data"
        self.port = port or free_port()
        self._as = []
        if os.getuid() == 0:  # postgres refuses to run as root
            shutil.chown(self.dir, "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        if not create:
            return
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", user,
                  "-E", "UTF8", "--no-sync")
        self.start()

    @classmethod
    def attach(cls, directory: str | Path, port: int, user: str = "ivr") -> "PgCluster":
        """The cluster another process made in ``directory`` (to stop or destroy it)."""
        return cls(user, directory, port, create=False)

    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        proc = subprocess.run([*self._as, *argv], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {proc.stdout}{proc.stderr}")

    def start(self) -> None:
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off -c max_connections=200"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts,
                  "-l", str(self.dir / "log"), "-w", "-t", "30", "start")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # -w waits for the socket; check TCP too
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("PostgreSQL did not open its port")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
