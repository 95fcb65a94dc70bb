"""``time``: business hours and holidays, in a time zone.

    - time:
        timezone: America/New_York          # default: settings.timezone
        when:                               # open if any rule matches (one rule: a mapping)
          - {days: mon-fri, hours: "09:00-17:00"}
          - {days: sat, hours: ["10:00-12:00", "13:00-15:00"]}
          - {dates: ["2025-12-24"], hours: "09:00-12:00"}
        holidays: ["12-25", "2026-01-01"]   # closed all day (MM-DD: every year)
        then: open_flow                     # open: a flow or inline steps (default: next step)
        else: closed_flow                   # closed
"""
from __future__ import annotations

from ivr.dialplan import timecond
from ivr.dialplan.schema import INVALID, ScalarNode, SequenceNode, custom, list_of, string, target
from ivr.dialplan.verbs.base import Verb, branch


def _via(parse):
    """A field reader for a string that ``parse`` turns into a value or a ValueError."""
    def read(p, node):
        v = string().read(p, node)
        if v is INVALID:
            return v
        try:
            return parse(v)
        except ValueError as e:
            return p.error(node, str(e))
    return read


_DATE = {"type": "string", "format": "date-or-month-day"}
RULE_FIELDS = {"days": custom(_via(timecond.parse_days), default=frozenset(),
                              json={"type": "string", "format": "days"}),
               "hours": list_of(custom(_via(timecond.parse_hours),
                                       json={"type": "string", "format": "hours"})),
               "dates": list_of(custom(_via(timecond.parse_date), json=_DATE))}
_RULE_JSON = {"type": "object", "additionalProperties": False, "minProperties": 1,
              "properties": {k: f.json for k, f in RULE_FIELDS.items()}}


def _rule(p, node):
    args = p.fields(node, RULE_FIELDS, "a time rule")
    if args is None:
        return INVALID
    if not (args.days or args.hours or args.dates):
        return p.error(node, "a time rule needs days, hours or dates")
    return timecond.TimeRule(days=args.days, hours=args.hours, dates=args.dates)


def _rules(p, node):
    nodes = node.value if isinstance(node, SequenceNode) else [node]
    if isinstance(node, ScalarNode):
        return p.error(node, "'when' is a rule {days, hours, dates} or a list of rules")
    rules = [_rule(p, n) for n in nodes]
    return INVALID if INVALID in rules else tuple(rules)


class Time(Verb):
    name = "time"
    FIELDS = {"timezone": custom(_via(lambda v: (v, timecond.zone(v))),
                                 json={"type": "string", "format": "timezone"}),
              "when": custom(_rules, default=(), json={"anyOf": [
                  _RULE_JSON, {"type": "array", "items": _RULE_JSON}]}),
              "holidays": list_of(custom(_via(timecond.parse_date), json=_DATE)),
              "then": target(), "else": target()}

    def execute(self, call):
        tzname, tz = self.args.timezone or (self.env.settings.timezone,
                                            timecond.zone(self.env.settings.timezone))
        now = self.env.wall_clock(call)
        is_open = timecond.is_open(self.args.when, self.args.holidays, now, tz)
        chosen = self.args.then if is_open else self.args.get("else")
        self.log("branch", test="time", open=is_open, now=now.astimezone(tz).isoformat(),
                 timezone=tzname, to=chosen.describe() if chosen else "next")
        return branch(chosen)
