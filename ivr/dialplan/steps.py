"""Reading a list of steps: ``- answer`` or ``- say: "Hello"`` or ``- gather: {...}``."""
from __future__ import annotations

from yaml.nodes import MappingNode, Node, ScalarNode

from ivr.dialplan.model import Step
from ivr.dialplan.schema import INVALID, Parser, is_null, kind, suggest

#: verbs after which the next step of the same list can never run
TERMINAL_VERBS = frozenset({"hangup", "reject", "goto", "return"})


def read_step(p: Parser, node: Node):
    if isinstance(node, ScalarNode) and not is_null(node):
        name, vnode = node.value, None
    elif isinstance(node, MappingNode):
        if len(node.value) != 1:
            keys = ", ".join(str(k.value) for k, _ in node.value)
            return p.error(node, f"a step is a single verb, found {len(node.value)} keys ({keys}); "
                                 "put each verb in its own '- ' list item")
        knode, vnode = node.value[0]
        if not isinstance(knode, ScalarNode):
            return p.error(knode, "a verb name must be a string")
        name = knode.value
        node = knode
    else:
        return p.error(node, f"a step must be a verb name or 'verb: arguments', not {kind(node)}")
    verb = p.registry.get(name)
    if verb is None:
        return p.error(node, f"unknown verb '{name}'{suggest(name, p.registry)}")
    fields = verb.FIELDS
    if vnode is None or is_null(vnode):
        missing = [k for k, f in fields.items() if f.required]
        if missing:
            return p.error(node, f"'{name}' needs '{missing[0]}'")
        args = p.fields(_EMPTY, fields, f"'{name}'")
        vnode = None
    else:
        if not fields:
            return p.error(vnode, f"'{name}' takes no arguments")
        args = p.fields(vnode, fields, f"'{name}'", main=verb.MAIN,
                        whole=getattr(verb, "WHOLE", False))
    if args is None:
        return INVALID
    step = Step(name, args, p.where(node))
    check = getattr(verb, "check", None)
    if check is not None and check(p, vnode if vnode is not None else node, args) is INVALID:
        return INVALID
    return step


def read_steps(p: Parser, node: Node, what: str):
    nodes = p.sequence(node, what)
    if nodes is None:
        return INVALID
    if not nodes:
        return p.error(node, f"{what} has no steps")
    steps = []
    ok = True
    terminal = None
    for n in nodes:
        if terminal is not None:
            p.error(n, f"unreachable step: '{terminal[0]}' at line {terminal[1]} never continues")
            ok = False
            terminal = None  # one error per dead run is enough
            continue
        step = read_step(p, n)
        if step is INVALID:
            ok = False
            continue
        steps.append(step)
        if step.verb in TERMINAL_VERBS:
            terminal = (step.verb, step.where.line)
    return tuple(steps) if ok else INVALID


class _Null(ScalarNode):
    def __init__(self):
        super().__init__("tag:yaml.org,2002:null", "")


_EMPTY = _Null()
