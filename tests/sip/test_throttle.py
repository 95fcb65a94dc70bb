"""Per-source failure throttle: ban after N failures in a window, drop while banned, unban."""
import ast
import pathlib

import pytest

from ivr.sip.throttle import Throttle


def test_ban_after_n_failures_within_window():
    t = Throttle(max_failures=3, window=60, ban_time=300)
    assert t.failure("1.2.3.4", 0) is False
    assert t.failure("1.2.3.4", 10) is False
    assert not t.is_banned("1.2.3.4", 20)
    assert t.failure("1.2.3.4", 59) is True
    assert t.is_banned("1.2.3.4", 59)
    assert t.is_banned("1.2.3.4", 358.9)
    assert not t.is_banned("5.6.7.8", 100)
    assert t.banned(100) == ["1.2.3.4"]


def test_unban_after_ban_time_with_a_clean_slate():
    t = Throttle(max_failures=2, window=60, ban_time=300)
    t.failure("h", 0)
    t.failure("h", 1)
    assert t.is_banned("h", 300.9)
    assert not t.is_banned("h", 301)
    assert t.failure("h", 302) is False  # the count starts again
    assert t.tracked == 1


def test_failures_outside_the_window_do_not_count():
    t = Throttle(max_failures=3, window=60, ban_time=300)
    t.failure("h", 0)
    t.failure("h", 30)
    assert t.failure("h", 61) is False  # the one at 0 fell out of the window
    assert t.failure("h", 80) is True


def test_success_resets_count_but_not_an_active_ban():
    t = Throttle(max_failures=2, window=60, ban_time=300)
    t.failure("h", 0)
    t.success("h", 1)
    assert t.failure("h", 2) is False
    assert t.failure("h", 3) is True
    t.success("h", 4)
    assert t.is_banned("h", 5)
    assert t.failure("h", 6) is True  # failures while banned keep it banned, not extend


def test_exempt_addresses_are_never_banned():
    t = Throttle(max_failures=1, exempt={"127.0.0.1"})
    assert t.failure("127.0.0.1", 0) is False
    assert not t.is_banned("127.0.0.1", 0)


def test_memory_is_bounded_and_bans_outlive_plain_failures():
    t = Throttle(max_failures=2, window=60, ban_time=300, max_tracked=100)
    t.failure("bad", 0)
    t.failure("bad", 0)
    for i in range(10_000):
        t.failure(f"10.0.{i // 256}.{i % 256}", 1)
    assert t.tracked == 100
    assert t.is_banned("bad", 2)


def test_expire_forgets_old_entries():
    t = Throttle(max_failures=2, window=60, ban_time=300)
    t.failure("a", 0)
    t.failure("b", 0)
    t.failure("b", 0)
    t.expire(61)
    assert t.tracked == 1
    t.expire(300)
    assert t.tracked == 0


def test_bad_limits_are_our_misuse():
    with pytest.raises(ValueError):
        Throttle(max_failures=0)


@pytest.mark.parametrize("module", ["throttle", "registrar", "authenticator"])
def test_no_twisted_import(module):
    source = pathlib.Path(f"ivr/sip/{module}.py").read_text()
    names = [getattr(n, "module", None) or "" for n in ast.walk(ast.parse(source))
             if isinstance(n, ast.ImportFrom)]
    names += [a.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Import) for a in n.names]
    assert not [n for n in names if n.startswith("twisted")]
