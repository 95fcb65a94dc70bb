"""A finished call is freed by reference counting, not by the cyclic garbage collector
(#17 item 3, MEM): whoever ends each part of a leg (the Call its media and digits, the
RTP session its ports, the InviteSession its listener and session timer) drops the
back-references that part held, so the Call, its legs, the RTP session and both UAs'
InviteSessions are gone as soon as the last outside reference goes -- with the collector
off.  At B1's rates the cycles cost the collector ~140 objects per call and full
collections of tens of ms.

Driven through the real call core in memory (tests/call/harness.py): INVITE, answer, a
prompt, a pause, then a BYE from the phone (and, second test, our own hang-up)."""
from __future__ import annotations

import gc
import weakref
from collections import Counter

import pytest

from .harness import CallCore, offer

PLAN = """
routes:
  - {name: talk, flow: talk}
  - {name: short, flow: short}
flows:
  talk:
    - answer
    - say: "hello"
    - pause: 10
  short:
    - answer
    - say: "hello"
    - hangup
"""


@pytest.fixture
def core(tmp_path):
    core = CallCore(tmp_path / "plans", PLAN, rtp_pairs=2)
    yield core
    core.close()


def _one_call(core: CallCore, user: str, phone_hangs_up: bool) -> dict:
    """Run one whole call; weak references to its parts once it is over."""
    seen = []
    core.calls.on_ended = seen.append
    phone, _ = core.call(user, offer())
    core.run(0.5, step=0.01)  # answer, then the 0.2 s prompt
    if phone_hangs_up:
        phone.bye()
    core.run(0.2, step=0.01)
    (call,) = seen
    assert call.ended and len(core.calls) == 0 and core.ports.in_use == 0
    server_session = call.session
    refs = {"Call": weakref.ref(call), "SignallingLeg": weakref.ref(call.signalling),
            "MediaLeg": weakref.ref(call.media), "DigitBuffer": weakref.ref(call.digits),
            "RtpSession": weakref.ref(call.rtp),
            "server InviteSession": weakref.ref(server_session),
            "phone InviteSession": weakref.ref(phone)}
    seen.clear()
    return refs


def _cyclic_garbage() -> Counter:
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
    finally:
        gc.set_debug(0)
    garbage, gc.garbage[:] = list(gc.garbage), []
    return Counter(type(o).__module__ + "." + type(o).__qualname__ for o in garbage
                   if type(o).__module__.startswith("ivr."))


@pytest.mark.parametrize("user, phone_hangs_up", [("talk", True), ("short", False)],
                         ids=["phone-hangs-up", "plan-hangs-up"])
def test_a_finished_call_is_freed_without_the_garbage_collector(core, user, phone_hangs_up):
    _one_call(core, user, phone_hangs_up)  # warm-up: first-use caches, lazy imports
    core.run(40)  # past Timer J/L: the transactions are gone
    gc.collect()
    gc.disable()
    try:
        refs = _one_call(core, user, phone_hangs_up)
        core.run(40)
        alive = [name for name, ref in refs.items() if ref() is not None]
        leftover = _cyclic_garbage()
    finally:
        gc.enable()
    assert (alive, leftover) == ([], Counter())
    assert len(core.cdrs.records) == 2 and core.ua.active_sessions() == 0
