"""No 5xx for anything a SIP client sends (issue #13): bad SDP gets 400 or 488 with a
Warning naming the problem, in INVITEs, re-INVITEs, UPDATEs and ACKs, and mutated
messages (the torture corpus, the recorded fixtures, generated SDP bodies) never get a
5xx nor stop the server from answering the next OPTIONS and INVITE.

The harness is the real server path in process: SipTransport.handle_datagram (not
started: its UDP port is an in-memory one), the UserAgent, the DialplanService running a
real plan, and real Call legs whose RTP ports are in memory, all on one task.Clock.
"""
from __future__ import annotations

import logging
import secrets
import textwrap
from pathlib import Path

import pytest
from twisted.internet import task
from twisted.logger import globalLogPublisher

from ivr.call.call import MediaContext
from ivr.dialplan.service import DialplanService
from ivr.rtp.clock import MediaClock
from ivr.sip.message import Request, Response, parse_datagram
from ivr.sip.transport import SipTransport
from ivr.sip.ua import UserAgent

from ..rtp.fakes import FakePorts

HOST, PORT = "127.0.0.1", 5060
PEER = ("127.0.0.2", 5070)
DATA = Path(__file__).resolve().parents[1] / "data" / "sip"

PLAN = textwrap.dedent("""\
    routes:
      - name: fuzz
        flow: main
    flows:
      main:
        - answer
        - pause: 2
        - hangup
    """)

GOOD_SDP = (b"v=0\r\no=alice 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\n"
            b"t=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")


class MemoryUdpPort:
    """Stands in for the transport's listening UDP port: keeps what was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple]] = []

    def write(self, data: bytes, addr) -> None:
        self.sent.append((data, addr))


class Server:
    """The server's SIP and call path in process, on a task.Clock."""

    def __init__(self, plan_dir: Path) -> None:
        self.clock = task.Clock()
        self.media = MediaContext(reactor=self.clock, media_clock=MediaClock(self.clock),
                                  ports=FakePorts(), advertise=HOST, bind_host=HOST)
        self.dialplan = DialplanService(self.clock, plan_dir, None, self.media)
        self.dialplan.store.use_inotify = False
        self.dialplan.start()
        self.dialplan.store.stop()  # loaded once; no polling on the fake clock
        self.transport = SipTransport(self.clock, HOST, PORT, self._on_sip)
        self.port = MemoryUdpPort()
        self.transport._udp.transport = self.port
        self.ua = UserAgent(self.clock, self.transport, self, HOST, PORT)
        self.legs: list = []  # every call leg the dialplan made

    # the server's Application side (as ivr.server.IvrServer does it)
    def _on_sip(self, message, source) -> None:
        self.ua.receive(message, source)

    def incoming_call(self, session) -> None:
        call = self.dialplan.start_call(session, session.invite)
        if call is not None:
            self.legs.append(call)

    @property
    def live(self) -> list:
        """Legs not ended yet (every one must end: none may leak)."""
        return [call for call in self.legs if not call.ended]

    # -- the client's side ---------------------------------------------------------------
    def send(self, data: bytes) -> list[Response | Request]:
        """Deliver one datagram from PEER; everything the server sent back meanwhile."""
        before = len(self.port.sent)
        self.transport.handle_datagram(data, PEER)
        return self.sent_since(before)

    def sent_since(self, before: int) -> list[Response | Request]:
        return [parse_datagram(data) for data, _ in self.port.sent[before:]]

    def run(self, seconds: float) -> list[Response | Request]:
        before = len(self.port.sent)
        for _ in range(int(seconds * 10)):
            self.clock.advance(0.1)
        return self.sent_since(before)

    def responses(self, messages) -> list[int]:
        return [m.status for m in messages if isinstance(m, Response)]


@pytest.fixture
def plan_dir(tmp_path) -> Path:
    (tmp_path / "fuzz.yaml").write_text(PLAN)
    return tmp_path


@pytest.fixture
def server(plan_dir) -> Server:
    return Server(plan_dir)


class ErrorLog(logging.Handler):
    """Every error logged, by Twisted's logger (failures, errors) or the standard
    library's (the dialplan runner): an error is a bug of ours."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.events: list[str] = []

    def emit(self, record) -> None:
        self.events.append(record.getMessage())

    def __call__(self, event) -> None:
        level = event.get("log_level")
        if "log_failure" in event or (level is not None and level.name in ("error", "critical")):
            failure = event.get("log_failure")
            self.events.append(failure.getTraceback() if failure else repr(event))

    def __enter__(self) -> "ErrorLog":
        globalLogPublisher.addObserver(self)
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger().removeHandler(self)
        globalLogPublisher.removeObserver(self)


@pytest.fixture
def errors():
    with ErrorLog() as log:
        yield log


def invite(body: bytes = GOOD_SDP, *, content_type: str | None = "application/sdp",
           call_id: str | None = None, user: str = "fuzz") -> bytes:
    call_id = call_id or secrets.token_hex(8)
    lines = [f"INVITE sip:{user}@{HOST}:{PORT} SIP/2.0",
             f"Via: SIP/2.0/UDP {PEER[0]}:{PEER[1]};branch=z9hG4bK{secrets.token_hex(6)}",
             "Max-Forwards: 70",
             f"From: <sip:alice@{PEER[0]}:{PEER[1]}>;tag=a{call_id[:6]}",
             f"To: <sip:{user}@{HOST}:{PORT}>",
             f"Call-ID: {call_id}",
             "CSeq: 1 INVITE",
             f"Contact: <sip:alice@{PEER[0]}:{PEER[1]}>"]
    if body and content_type:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def in_dialog(method: str, ok: Response, cseq: int, body: bytes = b"",
              content_type: str | None = "application/sdp") -> bytes:
    """A request in the dialog that ``ok`` (our 200 to an INVITE) set up."""
    branch = f"z9hG4bK{secrets.token_hex(6)}"
    number = ok.cseq[0] if method == "ACK" else cseq
    lines = [f"{method} sip:ivr@{HOST}:{PORT} SIP/2.0",
             f"Via: SIP/2.0/UDP {PEER[0]}:{PEER[1]};branch={branch}",
             "Max-Forwards: 70",
             f"From: {ok.headers.get('From')}",
             f"To: {ok.headers.get('To')}",
             f"Call-ID: {ok.call_id}",
             f"CSeq: {number} {method}",
             f"Contact: <sip:alice@{PEER[0]}:{PEER[1]}>"]
    if body and content_type:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def options() -> bytes:
    return (f"OPTIONS sip:fuzz@{HOST}:{PORT} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {PEER[0]}:{PEER[1]};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:alice@{PEER[0]}>;tag=o1\r\n"
            f"To: <sip:fuzz@{HOST}>\r\nCall-ID: {secrets.token_hex(8)}\r\n"
            f"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


def final(messages, method: str = "INVITE") -> Response:
    (response,) = [m for m in messages if isinstance(m, Response) and m.status >= 200
                   and m.cseq[1] == method]
    return response


def answered_call(server: Server) -> Response:
    """An INVITE answered 200 and ACKed: the call is up; its 200."""
    ok = final(server.send(invite()))
    assert ok.status == 200
    server.send(in_dialog("ACK", ok, 0))
    return ok


def sdp(connection: str = "c=IN IP4 127.0.0.2", media: str = "m=audio 6000 RTP/AVP 0",
        extra: str = "") -> bytes:
    text = f"v=0\r\no=alice 1 1 IN IP4 127.0.0.2\r\ns=-\r\n{connection}\r\nt=0 0\r\n{media}\r\n"
    return (text + extra).encode()


# -- bad SDP in an INVITE --------------------------------------------------------------------


def test_a_good_invite_is_answered_and_the_call_ends(server, errors):
    ok = answered_call(server)
    assert ok.headers.get("Content-Type") == "application/sdp"
    assert len(server.live) == 1
    messages = server.run(5)
    assert {m.method for m in messages if isinstance(m, Request)} == {"BYE"}
    assert server.live == [] and errors.events == []


def test_an_invalid_ipv4_address_in_c_gets_400_with_a_warning(server, errors):
    messages = server.send(invite(sdp("c=IN IP4 10.10.10.256")))
    response = final(messages)
    assert response.status == 400
    assert response.headers.get("Warning") == (
        f'399 {HOST}:{PORT} "bad SDP: c= address 10.10.10.256 is not an IPv4 address"')
    server.run(40)
    assert server.live == [] and errors.events == []


def test_an_offer_without_a_common_codec_gets_488_with_warning_305(server, errors):
    response = final(server.send(invite(sdp(media="m=audio 6000 RTP/AVP 18"))))
    assert response.status == 488
    assert response.headers.get("Warning") == (
        f'305 {HOST}:{PORT} "no audio stream offers any of PCMU, PCMA"')
    server.run(40)
    assert server.live == [] and errors.events == []


@pytest.mark.parametrize("body, status, warning", [
    (b"this is not a session description\r\n", 400, '399 {a} "bad SDP: SDP must start with a v= line"'),
    (sdp("c=IN IP4 media.example.com"), 488,
     '301 {a} "c= address media.example.com is a host name, not an IP address"'),
    (sdp("c=IN IP4 239.1.1.1/16"), 488, '399 {a} "c= address 239.1.1.1 is not a unicast address"'),
    (sdp(media="m=audio 99999 RTP/AVP 0"), 400,
     '399 {a} "bad SDP: port out of range in \'m=audio 99999 RTP/AVP 0\'"'),
    (sdp(extra='a=x\r\nc=IN IP6 "\\\x01\r\n'), 400,
     '399 {a} "bad SDP: c= address \\"\\\\? is not an IPv6 address"'),
])
def test_bad_sdp_in_an_invite_is_answered_with_a_warning(server, errors, body, status, warning):
    response = final(server.send(invite(body)))
    assert response.status == status
    assert response.headers.get("Warning") == warning.format(a=f"{HOST}:{PORT}")
    server.run(40)
    assert server.live == [] and errors.events == []


def test_a_bad_reinvite_offer_is_refused_and_the_call_goes_on(server, errors):
    ok = answered_call(server)
    (call,) = server.live
    before = call.negotiated
    refused = final(server.send(in_dialog("INVITE", ok, 2, sdp("c=IN IP4 10.10.10.256"))))
    assert refused.status == 400
    assert refused.headers.get("Warning") == (
        f'399 {HOST}:{PORT} "bad SDP: c= address 10.10.10.256 is not an IPv4 address"')
    server.send(in_dialog("ACK", refused, 2))  # the ACK for a non-2xx (ignored: no body)
    assert call.negotiated == before and not call.ended
    # the session is unchanged: a good re-INVITE (hold) is still answered
    held = final(server.send(in_dialog("INVITE", ok, 3, sdp(extra="a=sendonly\r\n"))))
    assert held.status == 200 and call.negotiated.on_hold
    assert errors.events == []


@pytest.mark.parametrize("body, status, code", [
    (sdp("c=IN IP4 10.10.10.256"), 400, 399),
    (sdp("c=IN IP4 media.example.com"), 488, 301),
    (sdp(media="m=audio 6000 RTP/AVP 18"), 488, 305),
])
def test_a_bad_update_offer_is_refused_with_a_warning(server, errors, body, status, code):
    ok = answered_call(server)
    (call,) = server.live
    refused = final(server.send(in_dialog("UPDATE", ok, 2, body)), "UPDATE")
    assert refused.status == status
    assert refused.headers.get("Warning").startswith(f"{code} {HOST}:{PORT} \"")
    assert not call.ended and call.negotiated.remote_ip == "127.0.0.2"
    assert errors.events == []


@pytest.mark.parametrize("answer", [
    sdp("c=IN IP4 10.10.10.256"), sdp("c=IN IP4 media.example.com"), b"garbage",
    sdp(media="m=audio 6000 RTP/AVP 18"),
])
def test_a_bad_answer_in_the_ack_to_our_late_offer_ends_the_call(server, errors, answer):
    ok = final(server.send(invite(b"", content_type=None)))
    assert ok.status == 200 and ok.body.startswith(b"v=0")  # our offer
    (call,) = server.live
    messages = server.send(in_dialog("ACK", ok, 0, answer))
    assert [m.method for m in messages if isinstance(m, Request)] == ["BYE"]
    assert call.ended and errors.events == []


def test_a_bad_answer_in_the_ack_to_our_reinvite_offer_is_ignored(server, errors):
    ok = answered_call(server)
    (call,) = server.live
    before = call.negotiated
    offer = final(server.send(in_dialog("INVITE", ok, 2)))  # no SDP: we offer in the 200
    assert offer.status == 200 and offer.body.startswith(b"v=0")
    server.send(in_dialog("ACK", offer, 2, sdp("c=IN IP4 10.10.10.256")))
    assert not call.ended and call.negotiated in (None, before)
    assert errors.events == []


def test_the_warning_text_is_a_safe_quoted_string():
    from ivr.sip.session import MAX_WARNING_TEXT, warning_header
    name, value = warning_header("h:5060", 'a "quoted" \\ line\r\nInjected: yes\x00\udcff é')
    assert name == "Warning"
    assert value == '399 h:5060 "a \\"quoted\\" \\\\ line??Injected: yes?? é"'
    _, long = warning_header("h", "x" * 1000, 305)
    assert long == f'305 h "{"x" * (MAX_WARNING_TEXT - 3)}..."'
    with pytest.raises(ValueError):
        warning_header("h", "text", 500)


# -- bad SDP in the answers to our own INVITE (an outbound leg) --------------------------------


def dial(server: Server):
    """An outbound leg to PEER; the INVITE it sent."""
    from ivr.call.outbound import OutboundCall
    call = OutboundCall(server.media, f"sip:bob@{PEER[0]}:{PEER[1]}").dial(server.ua)
    (request,) = server.sent_since(0)
    assert request.method == "INVITE"
    return call, request


def reply(request: Request, status: int, body: bytes = b"") -> bytes:
    from ivr.sip.message import make_response, serialize
    extra = [("Contact", f"<sip:bob@{PEER[0]}:{PEER[1]}>")]
    if body:
        extra.append(("Content-Type", "application/sdp"))
    return serialize(make_response(request, status, to_tag="b1", body=body, extra=extra))


@pytest.mark.parametrize("answer", [
    sdp("c=IN IP4 10.10.10.256"), sdp("c=IN IP4 media.example.com"), b"garbage",
    sdp(media="m=audio 6000 RTP/AVP 18"),
])
def test_a_bad_answer_in_a_200_to_our_invite_is_acked_then_hung_up(server, errors, answer):
    call, request = dial(server)
    sent = server.send(reply(request, 200, answer))
    assert [m.method for m in sent if isinstance(m, Request)] == ["ACK"]  # every 2xx (13.2.2.4)
    sent = server.run(1)
    assert [m.method for m in sent if isinstance(m, Request)][:1] == ["BYE"]
    assert call.ended and not call.answered and server.ua.sessions == {}
    failures = []
    call.when_answered().addErrback(failures.append)
    assert failures[0].value.reason == "failed"
    assert errors.events == []


def test_a_bad_answer_in_a_183_is_ignored(server, errors):
    call, request = dial(server)
    server.send(reply(request, 183, sdp("c=IN IP4 10.10.10.256")))
    assert call.negotiated is None and not call.ended
    server.send(reply(request, 200, GOOD_SDP))
    assert call.answered and call.negotiated.remote_ip == "127.0.0.2"
    assert errors.events == []
