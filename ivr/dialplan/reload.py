"""The live dialplan, reloaded when its files change, without dropping a call.

    store = DialplanStore("dialplans", "prompts", reactor)
    errors = store.reload()          # first load (errors: nothing is live yet)
    store.on_reload(lambda plan: ...) # e.g. pre-render static prompts
    store.start()                    # inotify (Linux), else polling
    plan = store.current             # take it once per call: the call keeps that plan

A reload swaps ``current`` in one assignment after the whole new plan validated; a reload
with errors logs them as file:line:col and keeps the previous plan.  Changes are debounced
(``debounce`` seconds) so an editor's write-rename-chmod burst gives one reload.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

from twisted.internet import task

from ivr.dialplan.loader import load_dialplans
from ivr.dialplan.model import Dialplan, DialplanError

log = logging.getLogger(__name__)


def _snapshot(directory: Path) -> dict:
    out = {}
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return out
    for e in entries:
        if e.name.endswith((".yaml", ".yml")):
            try:
                st = e.stat()
                out[e.name] = (st.st_mtime_ns, st.st_size, st.st_ino)
            except OSError:
                pass
    return out


class DialplanStore:
    def __init__(self, directory, prompts_dir=None, reactor=None, *, debounce: float = 0.2,
                 poll_interval: float = 1.0, use_inotify: bool = True):
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.directory = Path(directory)
        self.prompts_dir = prompts_dir
        self.reactor = reactor
        self.debounce = debounce
        self.poll_interval = poll_interval
        self.use_inotify = use_inotify
        self.current: Dialplan | None = None
        self.errors: list[DialplanError] = []
        self.reloads = 0        # successful loads
        self.failed_reloads = 0
        self.watching: str | None = None   # "inotify", "poll" or None
        self._callbacks: list[Callable[[Dialplan], object]] = []
        self._pending = None
        self._notifier = None
        self._poller: task.LoopingCall | None = None
        self._snapshot: dict = {}

    def on_reload(self, callback: Callable[[Dialplan], object]) -> None:
        """Call ``callback(plan)`` after every successful load (including the first)."""
        self._callbacks.append(callback)

    def reload(self) -> list[DialplanError]:
        """Load now; on success swap ``current``; on errors keep it.  Returns the errors."""
        self._snapshot = _snapshot(self.directory)
        plan, errors = load_dialplans(self.directory, self.prompts_dir)
        self.errors = errors
        if errors:
            self.failed_reloads += 1
            kept = "keeping the previous plan" if self.current is not None else "no plan loaded"
            log.error("dialplan reload failed (%d errors, %s):\n%s", len(errors), kept,
                      "\n".join(map(str, errors)))
            return errors
        self.current = plan
        self.reloads += 1
        log.info("dialplan loaded: %d routes, %d flows from %s", len(plan.routes),
                 len(plan.flows), self.directory)
        for cb in list(self._callbacks):
            try:
                cb(plan)
            except Exception:
                log.exception("dialplan reload callback failed")
        return []

    # -- watching -------------------------------------------------------------------------
    def start(self) -> str:
        """Watch the directory; returns "inotify" or "poll"."""
        if self.watching:
            return self.watching
        if self.use_inotify and self._start_inotify():
            self.watching = "inotify"
        else:
            self._snapshot = _snapshot(self.directory)
            self._poller = task.LoopingCall(self._poll)
            self._poller.clock = self.reactor
            self._poller.start(self.poll_interval, now=False)
            self.watching = "poll"
        return self.watching

    def stop(self) -> None:
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None
        if self._notifier is not None:
            try:
                self._notifier.loseConnection()
            except Exception:
                log.exception("closing inotify")
            self._notifier = None
        if self._poller is not None and self._poller.running:
            self._poller.stop()
        self._poller = None
        self.watching = None

    def _start_inotify(self) -> bool:
        try:
            from twisted.internet import inotify
            from twisted.python.filepath import FilePath
            notifier = inotify.INotify(reactor=self.reactor)
            notifier.startReading()
            mask = (inotify.IN_CLOSE_WRITE | inotify.IN_MOVED_TO | inotify.IN_MOVED_FROM
                    | inotify.IN_DELETE | inotify.IN_CREATE | inotify.IN_DELETE_SELF
                    | inotify.IN_MOVE_SELF)
            notifier.watch(FilePath(str(self.directory)), mask=mask, callbacks=[self._notified])
        except Exception as e:  # not Linux, no inotify, directory missing...
            log.warning("inotify unavailable (%s): polling %s every %ss", e, self.directory,
                        self.poll_interval)
            return False
        self._notifier = notifier
        return True

    def _notified(self, _watch, path, mask) -> None:
        name = path.basename()
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        if name.endswith((".yaml", ".yml")) or path.path == str(self.directory).encode() \
                or path.path == str(self.directory):
            self.schedule()

    def _poll(self) -> None:
        if _snapshot(self.directory) != self._snapshot:
            self.schedule()

    def schedule(self) -> None:
        """A change was seen: reload after ``debounce`` seconds of quiet."""
        if self._pending is not None and self._pending.active():
            self._pending.reset(self.debounce)
            return
        self._pending = self.reactor.callLater(self.debounce, self._debounced)

    def _debounced(self) -> None:
        self._pending = None
        self.reload()
