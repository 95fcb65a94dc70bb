"""Every inbound leg's CDR says which route took it (issue #13): ``kind:value`` of the
matched dialplan route, or ``extension`` for an authenticated extension's own call."""
from __future__ import annotations

import textwrap
from types import SimpleNamespace

import pytest
from twisted.internet import task

from ivr.call.call import MediaContext
from ivr.dialplan.service import DialplanService
from ivr.call.records import call_summary
from ivr.rtp.clock import MediaClock
from ivr.sip.message import parse_datagram

from ..rtp.fakes import FakePorts

PLAN = textwrap.dedent("""\
    settings: {default_region: US}
    routes:
      - {number: 611, flow: main}
      - {number: "1-800-555-0100", flow: main}
      - {name: echo, flow: main}
      - {pattern: "_NXXNXXXXXX", flow: main}
      - {class: any, flow: main}
    flows:
      main: [{reject: busy}]
      internal: [{reject: busy}]
    """)


class FakeSession:
    """The INVITE session a Call drives: only rejections happen here."""

    def __init__(self, invite, caller=None):
        self.invite = invite
        self.call_id = invite.call_id
        self.caller = caller
        self.listener = None
        self.remote_sdp = None
        self.rejected = []

    def reject(self, status, reason=None):
        self.rejected.append(status)


def invite(user: str):
    return parse_datagram((
        f"INVITE sip:{user}@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-1\r\n"
        "From: \"Alice\" <sip:+12025550143@127.0.0.2>;tag=a\r\n"
        f"To: <sip:{user}@127.0.0.1>\r\nCall-ID: c-{user}\r\nCSeq: 1 INVITE\r\n"
        "Max-Forwards: 70\r\nContact: <sip:alice@127.0.0.2:5070>\r\n"
        "Content-Length: 0\r\n\r\n").encode())


@pytest.fixture
def service(tmp_path):
    (tmp_path / "plan.yaml").write_text(PLAN)
    clock = task.Clock()
    media = MediaContext(reactor=clock, media_clock=MediaClock(clock), ports=FakePorts(),
                         advertise="127.0.0.1", bind_host="127.0.0.1")
    svc = DialplanService(clock, tmp_path, None, media)
    svc.store.use_inotify = False
    svc.start()
    svc.store.stop()
    return svc


@pytest.mark.parametrize("dialled,route", [
    ("611", "number:611"),
    ("8005550100", "number:+18005550100"),
    ("echo", "name:echo"),
    ("2125551234", "pattern:_NXXNXXXXXX"),
    ("%2B442079460000", "class:any"),
])
def test_inbound_leg_records_the_route_that_matched(service, dialled, route):
    session = FakeSession(invite(dialled))
    call = service.start_call(session, session.invite)
    assert session.rejected == [486]  # the flow ran (and the leg ended)
    assert call_summary(call)["route"] == route


def test_an_extension_call_is_routed_as_extension(service):
    ext = SimpleNamespace(number="2001", name="Alice", context="internal")
    session = FakeSession(invite("611"), caller=SimpleNamespace(extension=ext))
    call = service.start_call(session, session.invite)
    assert session.rejected == [486]
    row = call_summary(call)
    assert (row["route"], row["flow"], row["to_number"]) == ("extension", "internal", "611")
