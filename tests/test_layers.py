"""The structure drawn from the imports (issue #14): layers point down, no cycles.

Every ``import`` of an ``ivr`` module counts, wherever it is written (at the top, inside a
function, under ``TYPE_CHECKING``): a lazy import is still an arrow.  The layers, top to
bottom (a package or a top-level module of ``ivr``):

* ``cli``: the command line;
* ``local``: the terminal phone and ``ivr say`` (they run an in-process server);
* ``server``, ``server_farm``, ``server_http`` and ``server_security``: wiring only (a farm's
  parts in ``server_farm``, the HTTP resources in front of the API in ``server_http``, the
  registrar and INVITE authentication in ``server_security``);
* ``api`` and ``dialplan`` (the API may use the dialplans, not the reverse);
* ``call``: legs, bridges, call control, the telephony interface;
* ``config``: the validated extensions configuration;
* ``sip``, ``rtp``, ``media``, ``sdp``, ``store``, ``queue``, ``httpclient``: the protocol
  stacks, the media engine, storage, the queue engine, the outbound HTTP client
  (``rtp`` sends what ``media`` produces);
* ``errors``, ``logging``, ``fsm``: pure helpers.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "ivr"

LAYERS = (
    ("cli",),
    ("local",),
    ("server", "server_farm", "server_http", "server_security"),
    ("api", "dialplan"),
    ("call",),
    ("config",),
    ("sip", "rtp", "media", "sdp", "store", "queue", "httpclient"),
    ("errors", "logging", "fsm"),
)
# Arrows allowed inside one layer (importer, imported).
SIDEWAYS = {("api", "dialplan"), ("rtp", "media"), ("server", "server_farm"),
            ("server", "server_http"), ("server", "server_security")}
# The one cycle the design has: a step's schema names the steps it may contain.
ALLOWED_CYCLES = [{"ivr.dialplan.schema", "ivr.dialplan.steps"}]


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports() -> dict[str, set[str]]:
    """Module -> the ``ivr`` modules it imports."""
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                candidates = [f"{module}.{a.name}" if f"{module}.{a.name}" in mods else module
                              for a in node.names]
            else:
                continue
            for target in candidates:
                if target.split(".")[0] != "ivr":
                    continue
                while target not in mods and "." in target:
                    target = target.rpartition(".")[0]
                if target != name and target != "ivr":
                    targets.add(target)
        graph[name] = targets
    return graph


def folder(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def rank(name: str) -> int:
    for i, layer in enumerate(LAYERS):
        if name in layer:
            return i
    raise AssertionError(f"ivr/{name} is in no layer: add it to LAYERS in {__file__}")


def test_every_package_has_a_layer():
    for name in {folder(m) for m in modules() if m != "ivr"}:
        rank(name)


def test_no_arrow_runs_up_or_sideways():
    wrong = []
    for importer, targets in imports().items():
        if importer == "ivr":
            continue
        a = folder(importer)
        for target in targets:
            b = folder(target)
            if a == b:
                continue
            ra, rb = rank(a), rank(b)
            if ra > rb or (ra == rb and (a, b) not in SIDEWAYS):
                wrong.append(f"{importer} -> {target}")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_but_the_grammars():
    unexpected = [sorted(c) for c in cycles(imports()) if c not in ALLOWED_CYCLES]
    assert not unexpected, f"import cycles: {unexpected}"


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
