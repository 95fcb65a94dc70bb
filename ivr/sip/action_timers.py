"""Runs the ``StartTimer`` / ``CancelTimer`` actions of a UA-core machine (the reliable
1xx of :mod:`ivr.sip.prack`, the session timer of :mod:`ivr.sip.session_timer`) on an
injected clock (``IReactorTime``: ``callLater``), one slot per timer name.

Everything else the machine returned is handed back for its owner to carry out.
"""
from __future__ import annotations

from typing import Any, Callable

from .transaction import CancelTimer, StartTimer


class ActionTimers:
    def __init__(self, clock, on_fired: Callable[[Any], None]) -> None:
        self.clock = clock
        self.on_fired = on_fired
        self.delayed: dict[Any, Any] = {}

    def run(self, actions: list) -> list:
        """Carry out the timer actions; the other actions, in order."""
        rest = []
        for action in actions:
            if isinstance(action, StartTimer):
                self.cancel(action.name)
                self.delayed[action.name] = self.clock.callLater(action.delay, self._fired,
                                                                 action.name)
            elif isinstance(action, CancelTimer):
                self.cancel(action.name)
            else:
                rest.append(action)
        return rest

    def cancel(self, name) -> None:
        delayed = self.delayed.pop(name, None)
        if delayed is not None and delayed.active():
            delayed.cancel()

    def cancel_all(self) -> None:
        for name in list(self.delayed):
            self.cancel(name)

    def _fired(self, name) -> None:
        self.delayed.pop(name, None)
        self.on_fired(name)
