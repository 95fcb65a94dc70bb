import os
import shutil
import tempfile

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from ivr.dialplan.reload import DialplanStore

GOOD = "routes:\n  - {name: echo, flow: main}\nflows:\n  main: [{say: %s}, hangup]\n"
BROKEN = "flows:\n  main: [{say: \"unclosed {{x\"}]\n"


def write(path, text):
    path.write_text(text)
    st = path.stat()  # make the change visible to mtime polling even within one tick
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def test_reload_swaps_and_broken_edit_keeps_old_plan(tmp_path):
    f = tmp_path / "plan.yaml"
    write(f, GOOD % "one")
    store = DialplanStore(tmp_path, None, task.Clock())
    loaded = []
    store.on_reload(loaded.append)
    assert store.reload() == []
    first = store.current
    assert first.flows["main"].steps[0].args.text.source == "one"
    write(f, BROKEN)
    errors = store.reload()
    assert [(e.line, e.col) for e in errors] == [(2, 26)]
    assert str(errors[0]).startswith(f"{f}:2:26: bad template")
    assert store.current is first and store.errors == errors
    write(f, GOOD % "two")
    assert store.reload() == []
    assert store.current.flows["main"].steps[0].args.text.source == "two"
    assert loaded == [first, store.current]
    assert (store.reloads, store.failed_reloads) == (2, 1)


def test_polling_reloads_after_debounce(tmp_path):
    f = tmp_path / "plan.yaml"
    write(f, GOOD % "one")
    clock = task.Clock()
    store = DialplanStore(tmp_path, None, clock, use_inotify=False, poll_interval=1.0,
                          debounce=0.2)
    store.reload()
    assert store.start() == "poll"
    write(f, GOOD % "two")
    clock.advance(1.0)                  # the poll sees the change...
    assert store.current.flows["main"].steps[0].args.text.source == "one"
    clock.advance(0.2)                  # ...and reloads after the debounce
    assert store.current.flows["main"].steps[0].args.text.source == "two"
    write(tmp_path / "other.yaml", BROKEN)
    clock.advance(1.0)
    clock.advance(0.2)
    assert store.current.flows["main"].steps[0].args.text.source == "two"
    assert store.errors and store.errors[0].file.endswith("other.yaml")
    (tmp_path / "other.yaml").unlink()
    clock.advance(1.0)
    clock.advance(0.2)
    assert store.errors == [] and store.reloads == 3
    store.stop()
    assert clock.getDelayedCalls() == []


def test_debounce_coalesces_bursts(tmp_path):
    f = tmp_path / "plan.yaml"
    write(f, GOOD % "one")
    clock = task.Clock()
    store = DialplanStore(tmp_path, None, clock, use_inotify=False)
    store.reload()
    for _ in range(5):
        store.schedule()
        clock.advance(0.1)
    assert store.reloads == 1
    clock.advance(0.2)
    assert store.reloads == 2


class InotifyTests(unittest.TestCase):
    """The real watcher on a temporary directory with the real reactor."""

    @defer.inlineCallbacks
    def test_edit_is_reloaded_within_a_second(self):
        d = tempfile.mkdtemp(prefix="ivr-reload-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "plan.yaml")
        with open(path, "w") as fh:
            fh.write(GOOD % "one")
        store = DialplanStore(d, None, reactor, debounce=0.1)
        self.assertEqual(store.reload(), [])
        self.assertEqual(store.start(), "inotify")
        self.addCleanup(store.stop)
        reloaded = defer.Deferred()
        store.on_reload(lambda plan: reloaded.called or reloaded.callback(plan))
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:            # editors write a temp file and rename it
            fh.write(GOOD % "two")
        os.rename(tmp, path)
        reloaded.addTimeout(1.0, reactor)
        plan = yield reloaded
        self.assertEqual(plan.flows["main"].steps[0].args.text.source, "two")
        self.assertIs(store.current, plan)
