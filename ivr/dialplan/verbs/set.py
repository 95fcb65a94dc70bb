"""``set: {greeting: "Hello {{caller.name}}", tries: "0"}``: set plan variables (templates)."""
from __future__ import annotations

from ivr.dialplan.schema import INVALID, ScalarNode, check_variable, custom, is_null, read_template
from ivr.dialplan.verbs.base import Verb


def _assignments(p, node):
    items = p.mapping(node, "'set'")
    if items is None:
        return INVALID
    if not items:
        return p.error(node, "'set' needs at least one variable")
    out = []
    for key, knode, vnode in items:
        name = check_variable(p, knode, key)
        if not isinstance(vnode, ScalarNode):
            p.error(vnode, f"the value of '{key}' must be text, not a list or mapping")
            name = INVALID
        value = read_template(p, vnode, "" if is_null(vnode) else vnode.value) \
            if isinstance(vnode, ScalarNode) else INVALID
        if INVALID in (name, value):
            return INVALID
        out.append((name, value))
    return tuple(out)


class Set(Verb):
    name = "set"
    MAIN = "variables"
    WHOLE = True
    FIELDS = {"variables": custom(_assignments, required=True, json={
        "type": "object", "minProperties": 1, "additionalProperties": {"type": "string"}})}

    def execute(self, call):
        for name, template in self.args.variables:
            value = self.render(template)
            call.variables[name] = value
            self.log("set", name=name, value=value)
        return None
