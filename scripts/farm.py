"""A farm on one machine: a throwaway PostgreSQL, Kamailio (deploy/kamailio/kamailio.cfg) and N
``ivr serve`` nodes on 127.0.X.y addresses, everything in one run directory.

Used by ``scripts/cluster up|status|down`` and by tests/interop/test_farm.py.  Every process
id, address and port is written to ``RUN/farm.json`` so that ``status`` and ``down`` (other
processes) find them; ``down`` stops exactly those processes and the cluster, and nothing
else.
"""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivr.store.throwaway_pg import PgCluster  # noqa: E402

KAMAILIO_CFG = ROOT / "deploy" / "kamailio" / "kamailio.cfg"
STATE = "farm.json"
#: The project's virtual environment (./scripts/setup) runs the nodes.
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() \
    else sys.executable


def free_port(host: str) -> int:
    """A port free for UDP and TCP on ``host``."""
    for _ in range(200):
        port = random.randint(20000, 60000)
        u, t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket()
        try:
            u.bind((host, port))
            t.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError(f"no free port on {host}")


def _spawn(argv: list[str], log: Path, cwd: Path = ROOT) -> subprocess.Popen:
    out = open(log, "ab")
    try:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        out.close()


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own child, not reaped yet) is not running
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def save(run: Path, state: dict) -> None:
    tmp = run / (STATE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(run / STATE)


def load(run: Path) -> dict | None:
    try:
        return json.loads((Path(run) / STATE).read_text())
    except (OSError, ValueError):
        return None


def node_argv(node: dict, database: str, *, config: Path, dialplans: Path, prompts: Path,
              extra: list[str]) -> list[str]:
    return [PYTHON, "-m", "ivr.cli", "serve",
            "--sip", f"{node['address']}:{node['sip_port']}",
            "--http", f"{node['address']}:{node['http_port']}",
            "--rtp-ports", f"{node['rtp_ports'][0]}-{node['rtp_ports'][1]}",
            "--advertise", node["address"], "--node-id", node["id"],
            "--database", database, "--data", node["data"],
            "--config", str(config), "--dialplans", str(dialplans), "--prompts", str(prompts),
            *extra]


def up(run: Path, nodes: int = 2, *, config: Path = ROOT / "config",
       dialplans: Path = ROOT / "dialplans", prompts: Path = ROOT / "prompts",
       node_args: list[str] = (), pike_density: int = 200, net: int | None = None,
       node_cores: list[str] | None = None, kamailio_core: str | None = None) -> dict:
    """Start the farm in ``run`` (created); returns (and saves) its state.  On any failure
    what was started is stopped again.  ``node_cores`` (one per node) and ``kamailio_core``
    pin the processes with taskset (benchmarks)."""
    run = Path(run).resolve()
    run.mkdir(parents=True, exist_ok=True)
    if load(run) and any(p["running"] for p in status(run)["processes"]):
        raise RuntimeError(f"a farm is already running in {run}: scripts/cluster down first")
    net = net if net is not None else random.randint(1, 250)
    state: dict = {"run_dir": str(run), "nodes": []}
    save(run, state)
    try:
        pg = PgCluster()  # its own directory under /tmp (the postgres user must reach it)
        state["postgresql"] = {"pid": pg.pid(), "port": pg.port, "dir": str(pg.dir),
                               "url": pg.url, "address": "127.0.0.1"}
        save(run, state)
        kam_ip = f"127.0.{net}.10"
        kam = {"address": kam_ip, "sip_port": free_port(kam_ip),
               "ctl": f"unix:{run / 'kamailio' / 'ctl'}"}
        config = farm_config(Path(config), run / "config", kam_ip)
        (run / "kamailio").mkdir(exist_ok=True)
        for i in range(nodes):
            ip = f"127.0.{net}.{11 + i}"
            low = 30000 + (net * 97 + i * 1000) % 28000 // 2 * 2
            node = {"id": f"node{i + 1}", "address": ip, "sip_port": free_port(ip),
                    "http_port": free_port(ip), "rtp_ports": [low, low + 998],
                    "data": str(run / f"node{i + 1}"), "log": str(run / f"node{i + 1}.log")}
            state["nodes"].append(node)
        dslist = run / "kamailio" / "dispatcher.list"
        dslist.write_text("".join(f"1 sip:{n['address']}:{n['sip_port']} 0 0 "
                                  f"node={n['id']}\n" for n in state["nodes"]))
        for i, node in enumerate(state["nodes"]):
            argv = node_argv(node, pg.url, config=config, dialplans=dialplans, prompts=prompts,
                             extra=list(node_args))
            node["argv"] = _pin(node_cores[i] if node_cores else None, argv)
            node["pid"] = _spawn(node["argv"], Path(node["log"])).pid
            save(run, state)
        for node in state["nodes"]:
            _wait_ready(node, 0)
        kam_log = run / "kamailio.log"
        kam["log"] = str(kam_log)
        kam["pid"] = _spawn(_pin(kamailio_core, ["kamailio", "-DD", "-E", "-f", str(KAMAILIO_CFG),
                             "-Y", str(run / "kamailio"), "-w", str(run / "kamailio"),
                             "-A", f"LISTEN=udp:{kam_ip}:{kam['sip_port']}",
                             "-A", f'DSLIST="{dslist}"', "-A", f'CTLSOCK="{kam["ctl"]}"',
                             "-A", f"PIKE_DENSITY={pike_density}"]), kam_log).pid
        state["kamailio"] = kam
        save(run, state)
        _wait_for(lambda: all(d["state"].startswith("A") for d in dispatcher(kam["ctl"]))
                  and len(dispatcher(kam["ctl"])) == nodes or not _alive(kam["pid"]),
                  30, "Kamailio to see every node")
        if not _alive(kam["pid"]):
            raise RuntimeError("kamailio did not start:\n" + kam_log.read_text()[-3000:])
        return state
    except BaseException:
        down(run)
        raise


def farm_config(config: Path, into: Path, proxy: str) -> Path:
    """A copy of the configuration directory ``config`` in ``into`` whose extensions.yaml
    trusts Kamailio (``security: trusted_proxies``): every request comes from its address,
    and a phone with a bad password must get the phone banned, not Kamailio (the farm).
    A config that names its trusted proxies already is copied as it is."""
    import shutil
    if into.exists():
        shutil.rmtree(into)
    shutil.copytree(config, into)
    ext = into / "extensions.yaml"
    text = ext.read_text() if ext.exists() else ""
    import yaml
    security = (yaml.safe_load(text) or {}).get("security") or {}
    if not security.get("trusted_proxies"):
        lines = text.splitlines()
        line = f"  trusted_proxies: [{proxy}]   # Kamailio (scripts/farm.py)"
        flow = [i for i, t in enumerate(lines) if t.startswith("security: {")]
        empty = [i for i, t in enumerate(lines) if t.lstrip().startswith("trusted_proxies:")]
        if empty:                                   # an empty list: Kamailio's address
            lines[empty[0]] = line
        elif "security:" in lines:
            lines.insert(lines.index("security:") + 1, line)
        elif flow:
            i = flow[0]
            lines[i] = lines[i].replace("}", f", trusted_proxies: [{proxy}]}}", 1)
        else:
            lines += ["security:", line]
        ext.write_text("\n".join(lines) + "\n")
    return into


def _pin(core: str | None, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if core is not None else argv


def _wait_ready(node: dict, offset: int, timeout: float = 90) -> None:
    """Wait for ``server ready`` in the node's log past ``offset`` (bytes)."""
    def ready() -> bool:
        with open(node["log"], "rb") as f:
            f.seek(offset)
            return b"server ready" in f.read()
    _wait_for(lambda: ready() or not _alive(node["pid"]), timeout, f"{node['id']} to start")
    if not _alive(node["pid"]):
        raise RuntimeError(f"{node['id']} did not start:\n"
                           + Path(node["log"]).read_text(errors="replace")[-3000:])


def start_node(run: Path, node_id: str, timeout: float = 90) -> dict:
    """Start node ``node_id`` of the farm in ``run`` again (after it died or was stopped),
    with the same id, addresses, ports, data directory and arguments; its log is appended
    to.  Returns the node's state once it is ready (Kamailio's next probe finds it)."""
    state = load(run)
    node = next(n for n in state["nodes"] if n["id"] == node_id)
    if _alive(node.get("pid")):
        raise RuntimeError(f"{node_id} is running (pid {node['pid']})")
    offset = Path(node["log"]).stat().st_size if Path(node["log"]).exists() else 0
    node["pid"] = _spawn(node["argv"], Path(node["log"])).pid
    save(run, state)
    _wait_ready(node, offset, timeout)
    return node


def restart_node(run: Path, node_id: str, drain_wait: float = 30.0, timeout: float = 90) -> dict:
    """Stop node ``node_id`` if it runs (SIGTERM, so it drains; SIGKILL after ``drain_wait``
    seconds) and start it again as :func:`start_node` does."""
    state = load(run)
    if state is None:
        raise RuntimeError(f"no farm in {run}")
    nodes = {n["id"]: n for n in state["nodes"]}
    if node_id not in nodes:
        raise RuntimeError(f"no node {node_id!r} (the farm has {', '.join(nodes)})")
    _stop(nodes[node_id].get("pid"), timeout=drain_wait)
    return start_node(run, node_id, timeout)


def dispatcher(ctl: str) -> list[dict]:
    """Kamailio's dispatcher set 1: each node's URI and state (AP active probing, IP
    inactive probing, ...)."""
    try:
        out = subprocess.run(["kamcmd", "-s", ctl, "dispatcher.list"], capture_output=True,
                             text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    found, uri = [], None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("URI:"):
            uri = line.split(":", 1)[1].strip()
        elif line.startswith("FLAGS:") and uri is not None:
            found.append({"uri": uri, "state": line.split(":", 1)[1].strip()})
            uri = None
    return found


def status(run: Path) -> dict:
    state = load(run) or {"nodes": []}
    procs = []
    pg = state.get("postgresql")
    if pg:
        pid = PgCluster.attach(pg["dir"], pg["port"]).pid()
        procs.append({"name": "postgresql", "pid": pid, "running": _alive(pid),
                      "address": "127.0.0.1", "port": pg["port"]})
    kam = state.get("kamailio")
    if kam:
        procs.append({"name": "kamailio", "pid": kam.get("pid"),
                      "running": _alive(kam.get("pid")), "address": kam["address"],
                      "port": kam["sip_port"]})
    for node in state.get("nodes", ()):
        procs.append({"name": node["id"], "pid": node.get("pid"),
                      "running": _alive(node.get("pid")), "address": node["address"],
                      "sip_port": node["sip_port"], "http_port": node["http_port"],
                      "rtp_ports": node["rtp_ports"]})
    running_kam = kam and _alive(kam.get("pid"))
    return {"run_dir": state.get("run_dir"), "processes": procs,
            "dispatcher": dispatcher(kam["ctl"]) if running_kam else [],
            "database": pg["url"] if pg else None}


def _stop(pid: int | None, timeout: float = 10.0) -> None:
    """SIGTERM the process group ``pid`` leads (it was started in a session of its own),
    then SIGKILL what is left."""
    if not pid or not _alive(pid):
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:
                if not _alive(pid):
                    return
            time.sleep(0.05)


def down(run: Path, *, remove: bool = False) -> None:
    """Stop every process of the farm in ``run`` (Kamailio, the nodes, PostgreSQL, whose
    cluster is removed); the logs stay in ``run`` unless ``remove``."""
    run = Path(run)
    state = load(run)
    if state is None:
        return
    kam = state.get("kamailio") or {}
    _stop(kam.get("pid"))
    for node in state.get("nodes", ()):
        _stop(node.get("pid"), timeout=5.0)
    pg = state.get("postgresql")
    if pg and Path(pg["dir"]).exists():
        PgCluster.attach(pg["dir"], pg["port"]).destroy()  # throwaway: nothing is kept
    if remove:
        import shutil
        shutil.rmtree(run, ignore_errors=True)
