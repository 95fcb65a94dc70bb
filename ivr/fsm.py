"""The one transition helper behind every state machine in the code (STYLE: one table per
machine, misuse raises).

A machine's table maps ``(state, event)`` to what happens.  Two shapes are in use:

* a plain transition table, ``(state, event) -> next state`` (dialogs, queue entries and
  agents, the RFC 4733 receiver, click-to-call sessions): :func:`next_state`;
* a handler table, ``(state, event) -> (handler name, next state)`` (the transactions, the
  retransmitters, the session timer): subclass :class:`Machine` and call ``_fire`` (the
  INVITE session, whose rows say more, looks them up with :func:`next_state`).

An event the current state does not allow raises (``TransitionError`` or the machine's
own subclass of it); it is never silently ignored.  Pure: no clock, no I/O, no Twisted.
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping


class TransitionError(Exception):
    """An event that the machine's current state does not allow."""

    @classmethod
    def not_allowed(cls, what: str, state, event) -> "TransitionError":
        """The error for ``event`` arriving in ``state``; a machine whose callers already
        know its own wording overrides this."""
        return cls(f"{what}: {_name(event)} not allowed in state {_name(state)}")


def _name(value: Any) -> str:
    return str(getattr(value, "value", value))


def next_state(table: Mapping, state, event, *, what: str,
               error: type[TransitionError] = TransitionError):
    """The entry for ``(state, event)`` in ``table``; ``error`` naming ``what`` if the state
    does not allow the event."""
    try:
        return table[(state, event)]
    except KeyError:
        raise error.not_allowed(what, state, event) from None


class Machine:
    """A machine driven by a handler table: ``TABLE[(state, event)] = (handler, next)``.

    ``_fire(event, *args)`` looks the event up, calls ``self.<handler>(*args)`` (no handler
    when it is ``None``), moves to the next state and returns what the handler returned.
    The state changes after the handler runs, so a handler sees the state the event arrived
    in.  ``_misuse`` picks the exception for a disallowed event (a subclass may tell the
    peer's mistakes from its own user's)."""

    TABLE: ClassVar[Mapping] = {}
    state: Any

    def _fire(self, event, *args):
        handler, following = next_state(self.TABLE, self.state, event, what=self._what(),
                                         error=self._misuse(event))
        result = getattr(self, handler)(*args) if handler is not None else None
        self.state = following
        return result

    def _what(self) -> str:
        return type(self).__name__

    def _misuse(self, event) -> type[TransitionError]:
        return TransitionError
