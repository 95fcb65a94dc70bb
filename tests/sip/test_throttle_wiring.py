"""The server wires failure bans as designed: protected addresses, logged bans, API access."""
from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher

from ivr.server import IvrServer
from ivr.server_security import sip_security

from .test_throttle_bans import PHONE, STRANGER, TRUNK, CallerKind, Server, yaml_text


class Wired(Server):
    """The helpers of test_throttle_bans over the objects IvrServer builds."""

    def __init__(self, tmp_path):
        (tmp_path / "config").mkdir()
        (tmp_path / "config" / "extensions.yaml").write_text(yaml_text())
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        server = IvrServer(self.clock, sip=("127.0.0.1", 0), http=("127.0.0.1", 0),
                           data=str(tmp_path / "data"), config=str(tmp_path / "config"),
                           advertise="127.0.0.1")
        security = sip_security(server._load_extensions(), self.clock,
                                server._own_addresses(), 5060)
        self.throttle = security.throttle
        self.registrar = security.registrar
        self.location = self.registrar.location
        self.invites = security.invite_auth
        self.cseq = 0


def test_server_protects_trunks_and_registered_phones_and_logs_bans(tmp_path):
    s = Wired(tmp_path)
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        assert s.login("2002", PHONE).status == 200
        for source in (TRUNK, PHONE):
            assert {r.status for r in s.flood("2001", source)} == {403}
        assert s.trunk_call().caller.kind is CallerKind.TRUNK
        assert s.flood("2001", STRANGER, n=4)[-1] is None
        s.clock.advance(300)
        s.throttle.expire(s.clock.seconds())  # what the server's housekeeping does
    finally:
        globalLogPublisher.removeObserver(events.append)
    lines = [formatEvent(e) for e in events if e.get("log_namespace") == "ivr.sip.throttle"]
    assert len(lines) == 2
    assert lines[0].startswith("banning 192.0.2.77 after 3 failed authentications until ")
    assert lines[1].startswith("ban of 192.0.2.77 (3 failed authentications, since ")
    assert lines[1].endswith("ended: expired")
