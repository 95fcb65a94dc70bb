"""The verb registry: verb name -> class, and the factory the runner builds verbs with."""
from __future__ import annotations

from ivr.dialplan.model import Step
from ivr.dialplan.verbs.answer import Answer
from ivr.dialplan.verbs.base import Env, Verb
from ivr.dialplan.verbs.dial import Dial
from ivr.dialplan.verbs.transfer import Transfer
from ivr.dialplan.verbs.enqueue import Enqueue
from ivr.dialplan.verbs.echo import Echo
from ivr.dialplan.verbs.gather import Gather
from ivr.dialplan.verbs.gosub import Gosub
from ivr.dialplan.verbs.goto import Goto
from ivr.dialplan.verbs.hangup import Hangup
from ivr.dialplan.verbs.if_ import If
from ivr.dialplan.verbs.log import Log
from ivr.dialplan.verbs.menu import Menu
from ivr.dialplan.verbs.pause import Pause
from ivr.dialplan.verbs.play import Play
from ivr.dialplan.verbs.record import Record
from ivr.dialplan.verbs.reject import Reject
from ivr.dialplan.verbs.return_ import Return
from ivr.dialplan.verbs.ring import Ring
from ivr.dialplan.verbs.say import Say
from ivr.dialplan.verbs.say_digits import SayDigits
from ivr.dialplan.verbs.say_number import SayNumber
from ivr.dialplan.verbs.set import Set
from ivr.dialplan.verbs.switch import Switch
from ivr.dialplan.verbs.time import Time
from ivr.dialplan.verbs.webhook import Webhook

VERBS: tuple[type[Verb], ...] = (
    Answer, Ring, Say, Play, Pause, Gather, Menu, SayDigits, SayNumber, Set, If, Switch, Goto,
    Gosub, Return, Time, Record, Webhook, Reject, Hangup, Echo, Log, Dial, Transfer, Enqueue)
REGISTRY: dict[str, type[Verb]] = {v.name: v for v in VERBS}


def build_verb(step: Step, env: Env) -> Verb:
    """The default verb factory: a fresh verb object for one run of ``step``."""
    return REGISTRY[step.verb](step, env)


__all__ = ["REGISTRY", "VERBS", "Env", "Verb", "build_verb"]
