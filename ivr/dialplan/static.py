"""The prompts a plan will speak whatever the caller does, for pre-rendering at load."""
from __future__ import annotations

from ivr.dialplan.model import Dialplan, Prompt, Settings, Target
from ivr.media.speech_text import say_digits, say_number

PromptKey = tuple  # (text, voice, language, rate)


def static_prompts(dialplan: Dialplan) -> list[PromptKey]:
    """Every say / prompt text without ``{{ }}``, as (text, voice, language, rate) with the
    plan's defaults applied; each once, in plan order."""
    s = dialplan.settings
    out: dict[PromptKey, None] = {}
    for flow in dialplan.flows.values():
        _walk(flow.steps, s, out)
    return list(out)


def _key(text: str, obj, s: Settings) -> PromptKey:
    return (text, getattr(obj, "voice", None) or s.voice, getattr(obj, "language", None) or s.language,
            getattr(obj, "rate", None) or s.rate)


def _walk(steps, s: Settings, out: dict) -> None:
    for step in steps:
        args = step.args
        if step.verb == "say" and args.text.is_static:
            out[_key(args.text.source, args, s)] = None
        elif step.verb == "enqueue" and args.hold is not None and args.hold.is_static:
            out[_key(args.hold.source, None, s)] = None
        elif step.verb in ("say_digits", "say_number") and args.value.is_static:
            value = args.value.source
            if step.verb == "say_digits":
                text = say_digits(value)
            else:
                try:
                    text = say_number(value.strip())
                except (ValueError, ArithmeticError):
                    text = say_digits(value)
            if text:
                out[_key(text, args, s)] = None
        for _name, value in args.items():
            _walk_value(value, s, out)


def _walk_value(value, s: Settings, out: dict) -> None:
    if isinstance(value, Prompt):
        if value.text is not None and value.text.is_static:
            out[_key(value.text.source, value, s)] = None
    elif isinstance(value, Target):
        _walk(value.steps, s, out)
    elif isinstance(value, tuple):
        for item in value:
            _walk_value(item, s, out)
