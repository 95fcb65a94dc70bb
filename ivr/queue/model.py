"""Queue configuration and the outcomes a queued caller ends with.  Pure data, no Twisted.

:func:`queue_config_from_dict` is what the dialplan loader calls for each ``queues:`` entry;
it returns a frozen :class:`QueueConfig` or a list of :class:`QueueConfigError` (the key the
message is about, so the loader can attach the YAML node's line and column).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Strategy(str, Enum):
    RING_ALL = "ring-all"        # every available agent rings; the first to answer wins
    ROUND_ROBIN = "round-robin"  # a rotating pointer per queue, remembered between callers
    LONGEST_IDLE = "longest-idle"  # the agent whose last queue call ended longest ago


class OutcomeKind(str, Enum):
    ANSWERED = "answered"
    TIMEOUT = "timeout"        # max_wait passed: the dialplan takes the overflow branch
    ABANDONED = "abandoned"    # the caller hung up (entry.abandon())
    FULL = "full"              # max_callers already waiting; refused at once
    NO_AGENTS = "no-agents"    # no agent logged in (join_empty / leave_when_empty false)


@dataclass(frozen=True)
class Outcome:
    """How a queued caller left the queue.  ``wait`` is seconds from enqueue to the outcome.

    ``answer`` is whatever truthy value the dialer's ring attempt fired with (e.g. the
    agent's call leg), so the enqueue verb can bridge to it.
    """
    kind: OutcomeKind
    agent: str | None = None
    wait: float = 0.0
    answer: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "kind", OutcomeKind(self.kind))


_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]*\Z")


@dataclass(frozen=True)
class QueueConfig:
    """One named queue.  Times are seconds; ``None`` (or 0) disables max_wait/announcements."""
    name: str
    agents: tuple[str, ...]
    strategy: Strategy = Strategy.RING_ALL
    ring_timeout: float = 15.0           # the engine cancels a ring attempt after this
    wrapup: float = 5.0                  # after call_ended, before the agent is offered again
    max_wait: float | None = 300.0       # then Outcome("timeout") -> the overflow branch
    skip_after_no_answer: float = 30.0   # an agent who did not answer is skipped this long
    announce_position_every: float | None = 30.0
    hold_prompt: str | None = None       # played once on joining (the verb plays it)
    music: str | None = None             # looped while waiting (the verb plays it)
    max_callers: int | None = None       # more waiting callers than this -> Outcome("full")
    join_empty: bool = True              # False: refuse with "no-agents" if none logged in
    leave_when_empty: bool = False       # True: waiting callers leave with "no-agents" too
    autofill: bool = False               # True: callers behind a ringing head ring in parallel
    ewt_samples: int = 10                # handle times averaged for the estimated wait

    def __post_init__(self):
        object.__setattr__(self, "strategy", Strategy(self.strategy))
        object.__setattr__(self, "agents", tuple(self.agents))
        errors = validate_config(self)
        if errors:
            raise ValueError("; ".join(str(e) for e in errors))


@dataclass(frozen=True)
class QueueConfigError:
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


_FIELDS = {f for f in QueueConfig.__dataclass_fields__}


def _number(d: dict, key: str, errors: list, *, positive: bool, optional: bool):
    value = d[key]
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        errors.append(QueueConfigError(key, "must be a number of seconds"
                                       + (" or null" if optional else "")))
        return None
    if value < 0 or (positive and value == 0 and not optional):
        errors.append(QueueConfigError(key, "must not be negative" if not positive
                                       else "must be greater than 0 (or 0/null: off)"
                                       if optional else "must be greater than 0"))
        return None
    if optional and value == 0:
        return None
    return float(value)


def validate_config(cfg: QueueConfig) -> list[QueueConfigError]:
    """Checks a constructed config (types already right); used by ``__post_init__``."""
    errors = []
    if not isinstance(cfg.name, str) or not _NAME_RE.match(cfg.name):
        errors.append(QueueConfigError("name", "must be a non-empty name of letters, digits, _.@+-"))
    if not cfg.agents or not all(isinstance(a, str) and a for a in cfg.agents):
        errors.append(QueueConfigError("agents", "must be a non-empty list of extensions"))
    elif len(set(cfg.agents)) != len(cfg.agents):
        errors.append(QueueConfigError("agents", "lists an agent twice"))
    for key in ("ring_timeout", "skip_after_no_answer"):
        if not getattr(cfg, key) > 0:
            errors.append(QueueConfigError(key, "must be greater than 0"))
    if not cfg.wrapup >= 0:
        errors.append(QueueConfigError("wrapup", "must not be negative"))
    for key in ("max_wait", "announce_position_every"):
        value = getattr(cfg, key)
        if value is not None and not value > 0:
            errors.append(QueueConfigError(key, "must be greater than 0 or null"))
    if cfg.max_callers is not None and not (isinstance(cfg.max_callers, int) and cfg.max_callers > 0):
        errors.append(QueueConfigError("max_callers", "must be a positive whole number or null"))
    if not (isinstance(cfg.ewt_samples, int) and cfg.ewt_samples > 0):
        errors.append(QueueConfigError("ewt_samples", "must be a positive whole number"))
    return errors


def queue_config_from_dict(d: Any) -> QueueConfig | list[QueueConfigError]:
    """A config mapping (as parsed from YAML) to a QueueConfig, or every error found.

    Never raises on bad input.  Unknown keys are errors (typos should not pass silently).
    """
    if not isinstance(d, dict):
        return [QueueConfigError("", "a queue must be a mapping")]
    errors: list[QueueConfigError] = []
    for key in d:
        if key not in _FIELDS:
            errors.append(QueueConfigError(str(key), "unknown queue setting"))
    kwargs: dict[str, Any] = {}
    if "name" not in d:
        errors.append(QueueConfigError("name", "is required"))
    elif not isinstance(d["name"], str) or not _NAME_RE.match(d["name"]):
        errors.append(QueueConfigError("name", "must be a non-empty name of letters, digits, _.@+-"))
    else:
        kwargs["name"] = d["name"]
    agents = d.get("agents")
    if agents is None:
        errors.append(QueueConfigError("agents", "is required"))
    elif (not isinstance(agents, (list, tuple)) or not agents
          or not all(isinstance(a, (str, int)) and not isinstance(a, bool) and str(a) for a in agents)):
        errors.append(QueueConfigError("agents", "must be a non-empty list of extensions"))
    else:
        names = tuple(str(a) for a in agents)
        if len(set(names)) != len(names):
            errors.append(QueueConfigError("agents", "lists an agent twice"))
        kwargs["agents"] = names
    if "strategy" in d:
        try:
            kwargs["strategy"] = Strategy(d["strategy"])
        except ValueError:
            errors.append(QueueConfigError("strategy", "must be one of "
                                           + ", ".join(s.value for s in Strategy)))
    for key, positive, optional in (("ring_timeout", True, False), ("wrapup", False, False),
                                    ("skip_after_no_answer", True, False),
                                    ("max_wait", True, True),
                                    ("announce_position_every", True, True)):
        if key in d:
            before = len(errors)
            value = _number(d, key, errors, positive=positive, optional=optional)
            if len(errors) == before:
                kwargs[key] = value
    for key in ("hold_prompt", "music"):
        if key in d:
            if d[key] is not None and not (isinstance(d[key], str) and d[key]):
                errors.append(QueueConfigError(key, "must be a prompt name or null"))
            else:
                kwargs[key] = d[key]
    for key in ("max_callers", "ewt_samples"):
        if key in d:
            value = d[key]
            if key == "max_callers" and value is None:
                kwargs[key] = None
            elif isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                errors.append(QueueConfigError(key, "must be a positive whole number"))
            else:
                kwargs[key] = value
    for key in ("join_empty", "leave_when_empty", "autofill"):
        if key in d:
            if not isinstance(d[key], bool):
                errors.append(QueueConfigError(key, "must be true or false"))
            else:
                kwargs[key] = d[key]
    if errors:
        return errors
    return QueueConfig(**kwargs)
