import os

from twisted.internet.task import Clock

from ivr.local.keyboard import Keyboard, KeyEvent, KeyKind, parse_keys


def test_parse_keys_digits_hangup_and_noise():
    assert parse_keys("1 2\n*#a q?x") == [
        KeyEvent(KeyKind.DIGIT, "1"), KeyEvent(KeyKind.DIGIT, "2"), KeyEvent(KeyKind.DIGIT, "*"),
        KeyEvent(KeyKind.DIGIT, "#"), KeyEvent(KeyKind.DIGIT, "A"), KeyEvent(KeyKind.HANGUP)]
    assert parse_keys("") == []


def test_escape_sequences_are_not_digits_except_letters():
    # arrow keys send ESC [ A; the letter alone is a legal DTMF digit A, the rest is ignored
    assert [e.digit for e in parse_keys("\x1b[B")] == ["B"]
    assert parse_keys("\x03\t\r") == []


class _Reactor(Clock):
    def __init__(self):
        super().__init__()
        self.calls = []

    def callFromThread(self, fn, *args):  # noqa: N802
        self.calls.append((fn, args))


def test_pipe_is_read_on_a_thread_and_delivered_through_the_reactor():
    r, w = os.pipe()
    reactor = _Reactor()
    got = []
    with os.fdopen(r, "r") as stream:
        kb = Keyboard(reactor, got.append, stream=stream)
        kb.start()
        assert not kb.interactive
        os.write(w, b"9#q\n")
        os.close(w)
        import time
        deadline = time.monotonic() + 5
        while not reactor.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        for fn, args in reactor.calls:
            fn(*args)
        kb.stop()
    assert got == [KeyEvent(KeyKind.DIGIT, "9"), KeyEvent(KeyKind.DIGIT, "#"), KeyEvent(KeyKind.HANGUP)]
