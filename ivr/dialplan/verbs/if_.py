"""``if``: branch on a variable.

    - if: {var: digits, equals: "1", then: sales, else: [ {say: "Not one"} ]}

Exactly one test: equals, not_equals, in, matches (regex, whole value), empty (true/false),
less_than, greater_than (numbers).  ``then``/``else`` are a flow (goto) or inline steps;
a missing branch carries on with the next step.
"""
from __future__ import annotations

from ivr.dialplan.schema import boolean, list_of, number, regex, string, target, template, variable
from ivr.dialplan.verbs.base import Verb, branch, template_context

TESTS = ("equals", "not_equals", "in", "matches", "empty", "less_than", "greater_than")


def evaluate(args, value: str, render) -> bool:
    if args.equals is not None:
        return value == render(args.equals)
    if args.not_equals is not None:
        return value != render(args.not_equals)
    if args.get("in") is not None:
        return value in args.get("in")
    if args.matches is not None:
        return args.matches.fullmatch(value) is not None
    if args.empty is not None:
        return (value == "") == args.empty
    try:
        num = float(value)
    except ValueError:
        return False
    if args.less_than is not None:
        return num < args.less_than
    return num > args.greater_than


class If(Verb):
    name = "if"
    FIELDS = {"var": variable(required=True, settable=False), "equals": template(),
              "not_equals": template(), "in": list_of(string(), default=None), "matches": regex(),
              "empty": boolean(None), "less_than": number(), "greater_than": number(),
              "then": target(), "else": target()}

    @staticmethod
    def check(p, node, args):
        given = [t for t in TESTS if args.get(t) is not None]
        if len(given) != 1:
            return p.error(node, f"'if' needs exactly one test of {', '.join(TESTS)}"
                                 + (f" (found {', '.join(given)})" if given else ""))
        return None

    def execute(self, call):
        value = str(template_context(call).get(self.args.var) or "")
        result = evaluate(self.args, value, self.render)
        chosen = self.args.then if result else self.args.get("else")
        self.log("branch", var=self.args.var, value=value, result=result,
                 to=chosen.describe() if chosen else "next")
        return branch(chosen)


__all__ = ["If", "evaluate"]
