"""An extension whose From carries no port, on a server that is not on 5060.

Phones (PJSIP, Linphone) put their AOR in From as ``<sip:2001@127.0.0.1>`` -- no port --
whatever port the server listens on.  baresip does the same when its account names the
server without a port and reaches it through ``outbound``: the REGISTER and the INVITE go
to the server's real port while From stays ``sip:2001@127.0.0.1``.  The call must still be
challenged (407) and, once authenticated, run 2001's extension context and reach 2002
(before, it was taken for an anonymous caller: no challenge, "no route for 2002", 404).
"""
from __future__ import annotations

import re
import time

from tests.interop.peers import Baresip
from tests.interop.test_extensions import phone, registered, start, tone_wav


def portless_phone(tmp_path, name, account, password, server, freq):
    bs = Baresip(tmp_path, name, source=tone_wav(tmp_path / f"{name}.wav", freq))
    (bs.dir / "accounts").write_text(
        f'<sip:{account}@127.0.0.1>;auth_pass={password};'
        f'outbound="sip:127.0.0.1:{server.sip_port}";regint=60;answermode=auto\n')
    return bs.start()


def test_extension_with_a_portless_from_calls_2002(server_factory, tmp_path):
    server = start(server_factory, tmp_path)
    assert server.sip_port != 5060
    alice = portless_phone(tmp_path, "alice", "2001", "demo2001", server, 600)
    bob = phone(tmp_path, "bob", "2002", 700, server, "demo2002")
    try:
        registered(alice)
        registered(bob)
        alice.dial("sip:2002@127.0.0.1")   # routed by the outbound proxy: the server
        bob.wait_for_event("CALL_ESTABLISHED", timeout=10)
        alice.wait_for_event("CALL_ESTABLISHED", timeout=5)
        log = server.wait_for_log("bridged", timeout=5)
        assert "source='extension'" in log and "flow='internal'" in log, log[-3000:]
        # The INVITE really had a From without a port.
        assert re.search(r"INVITE sip:2002@127\.0\.0\.1 from <sip:2001@127\.0\.0\.1>;", log), \
            log[-3000:]
        alice.hangup()
        bob.wait_for_event("CALL_CLOSED", timeout=5)
    finally:
        alice.stop()
        bob.stop()
