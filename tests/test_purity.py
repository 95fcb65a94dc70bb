"""Rule 1 of docs/ARCHITECTURE.md: protocol code is pure.  The modules declared in PURE take
bytes or events in and give bytes, events or actions out: importing one (in a fresh
interpreter, each on its own) pulls no Twisted (so no reactor), no socket, select or
asyncio, and no ivr module that is not itself declared pure; and none of them reads a
clock or imports those anywhere in its source, not even inside a function."""
from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

#: The pure modules.  ``package.*`` stands for the package and every module in it.
PURE = [
    "ivr", "ivr.errors", "ivr.fsm",
    "ivr.httpclient", "ivr.httpclient.signing",
    "ivr.sdp.*",
    # SIP: messages, addresses and numbers, validation, the transaction, dialog, INVITE
    # session table, PRACK and session-timer machines, digest auth, the registrar's and the
    # limits' bookkeeping
    "ivr.sip", "ivr.sip.action_timers", "ivr.sip.address", "ivr.sip.addressing", "ivr.sip.auth",
    "ivr.sip.authenticator", "ivr.sip.capabilities", "ivr.sip.connection_limits",
    "ivr.sip.dialog", "ivr.sip.directory", "ivr.sip.e164", "ivr.sip.headers",
    "ivr.sip.lexical", "ivr.sip.limit_log", "ivr.sip.message", "ivr.sip.path", "ivr.sip.prack",
    "ivr.sip.prack_uas",
    "ivr.sip.registrar", "ivr.sip.retransmit", "ivr.sip.session_listener",
    "ivr.sip.session_table", "ivr.sip.session_timer", "ivr.sip.throttle", "ivr.sip.timers",
    "ivr.sip.transaction", "ivr.sip.transaction_match", "ivr.sip.uac_auth", "ivr.sip.uas_2xx",
    "ivr.sip.uri", "ivr.sip.validate",
    # RTP: packets, RTCP, RFC 4733, reframing, statistics
    "ivr.rtp", "ivr.rtp.dtmf", "ivr.rtp.framing", "ivr.rtp.packet", "ivr.rtp.rtcp",
    "ivr.rtp.stats",
    # WebRTC: the ICE-lite agent and the DTLS-SRTP endpoint (see LIBRARIES)
    "ivr.rtp.ice", "ivr.rtp.dtls",
    # media: G.711, audio files and caches, the player, the in-band DTMF detector
    "ivr.media", "ivr.media.audio", "ivr.media.g711", "ivr.media.inband_dtmf",
    "ivr.media.player", "ivr.media.speech_text", "ivr.media.worker_frames",
    # queues: everything but the engine and its entries (which hold Deferreds)
    "ivr.queue.agents", "ivr.queue.model", "ivr.queue.stats", "ivr.queue.strategies",
]

#: Packages whose ``__init__`` is not pure (ivr.queue re-exports the engine): their pure
#: modules are imported without running it.
IMPURE_PACKAGES = ["ivr.queue"]

#: Well-kept libraries a pure module uses for the protocol they cover, which import
#: socket/select/asyncio for parts of themselves we never call (aioice's ICE connection,
#: pyOpenSSL's socket-backed connections).  They are imported before the snapshot, so
#: the test still sees everything else the module pulls; its own source is checked as any.
LIBRARIES = {"ivr.rtp.ice": ["aioice.stun"], "ivr.rtp.dtls": ["OpenSSL.SSL"]}

#: Top-level modules a pure module never pulls in.
FORBIDDEN = ("twisted", "socket", "select", "asyncio")

#: Modules that format timestamps they are given (``time.gmtime``) and so import ``time``,
#: or date a certificate from a time they are given (``datetime.timedelta``); they still
#: never read the clock.
FORMAT_TIME = {"ivr.sip.registrar", "ivr.sip.throttle", "ivr.rtp.dtls"}

CLOCK_READS = {("time", name) for name in ("time", "time_ns", "monotonic", "monotonic_ns",
                                           "perf_counter", "perf_counter_ns", "process_time")}
CLOCK_READS |= {("datetime", "now"), ("datetime", "utcnow"), ("date", "today"),
                ("datetime", "today")}


def _expand(entries: list[str]) -> list[str]:
    names = []
    for entry in entries:
        if entry.endswith(".*"):
            package = entry[:-2]
            spec = find_spec(package)
            names.append(package)
            names += [f"{package}.{info.name}"
                      for info in pkgutil.iter_modules(spec.submodule_search_locations)]
        else:
            names.append(entry)
    return names


MODULES = _expand(PURE)

# Runs in a fresh interpreter: one forked child per module, so that each module is
# imported on its own, from nothing but the interpreter's start-up modules.
_CHILD = r"""
import importlib, importlib.util, json, os, sys, types
forbidden = tuple(json.loads(sys.argv[1]))
impure_packages = json.loads(sys.argv[2])
libraries = json.loads(sys.argv[4])
assert not [m for m in sys.modules if m.split(".")[0] in forbidden], "the interpreter itself"
for name in json.loads(sys.argv[3]):
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        for package in impure_packages:
            if name.startswith(package + "."):
                spec = importlib.util.find_spec(package)
                stub = types.ModuleType(package)
                stub.__path__ = list(spec.submodule_search_locations)
                sys.modules[package] = stub
        for library in libraries.get(name, ()):
            importlib.import_module(library)
        before = set(sys.modules)
        importlib.import_module(name)
        print(json.dumps([name, sorted(set(sys.modules) - before)]))
        sys.stdout.flush()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        print(json.dumps([name, ["<import failed>"]]))
"""


@pytest.fixture(scope="module")
def pulled() -> dict[str, list[str]]:
    """Module -> every module that importing it (alone) loaded."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(FORBIDDEN), json.dumps(IMPURE_PACKAGES),
         json.dumps(MODULES), json.dumps(LIBRARIES)],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(line) for line in proc.stdout.splitlines())


@pytest.mark.parametrize("name", MODULES)
def test_importing_a_pure_module_pulls_no_twisted_socket_or_impure_module(name, pulled):
    loaded = pulled[name]
    assert "<import failed>" not in loaded
    assert [m for m in loaded if m.split(".")[0] in FORBIDDEN] == []
    assert [m for m in loaded if m.split(".")[0] == "ivr" and m not in MODULES] == []


def _imports_and_clock_reads(tree: ast.AST) -> tuple[set[str], set[tuple[str, str]]]:
    imported: set[str] = set()
    reads: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module)
            reads |= {(node.module, alias.name) for alias in node.names}
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            reads.add((node.value.id, node.attr))
    return imported, reads & CLOCK_READS


@pytest.mark.parametrize("name", MODULES)
def test_a_pure_module_reads_no_clock_and_imports_no_io_even_lazily(name):
    source = Path(find_spec(name).origin).read_text()
    imported, clock_reads = _imports_and_clock_reads(ast.parse(source))
    roots = {module.split(".")[0] for module in imported}
    assert roots.isdisjoint(FORBIDDEN), roots & set(FORBIDDEN)
    assert clock_reads == set()
    if name not in FORMAT_TIME:
        assert roots.isdisjoint({"time", "datetime"}), roots & {"time", "datetime"}
