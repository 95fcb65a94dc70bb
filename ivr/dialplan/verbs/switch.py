"""``switch``: pick a branch by a variable's value.

    - switch: {var: lang, cases: {"en": english, "es": spanish}, default: english}
"""
from __future__ import annotations

from ivr.dialplan.schema import INVALID, TARGET_JSON, custom, target, variable
from ivr.dialplan.verbs.base import Verb, branch, template_context


def _cases(p, node):
    items = p.mapping(node, "'cases'")
    if items is None:
        return INVALID
    if not items:
        return p.error(node, "'cases' is empty")
    out = {}
    for key, _k, vnode in items:
        t = target().read(p, vnode)
        if t is INVALID:
            return INVALID
        out[key] = t
    return tuple(out.items())


class Switch(Verb):
    name = "switch"
    FIELDS = {"var": variable(required=True, settable=False), "cases": custom(_cases, required=True, json={
                  "type": "object", "minProperties": 1, "additionalProperties": TARGET_JSON}),
              "default": target()}

    def execute(self, call):
        value = str(template_context(call).get(self.args.var) or "")
        chosen = dict(self.args.cases).get(value, self.args.default)
        self.log("branch", var=self.args.var, value=value,
                 to=chosen.describe() if chosen else "next")
        return branch(chosen)
