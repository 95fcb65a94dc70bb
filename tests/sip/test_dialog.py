"""The pure Dialog (RFC 3261 section 12): identity, route sets, CSeq, in-dialog requests."""
from __future__ import annotations

import pytest

from ivr.sip.dialog import Dialog, DialogError, DialogState
from ivr.sip.message import make_response, parse_datagram, serialize


def _invite(record_routes=(), contact="<sip:alice@198.51.100.7:5070>", cseq=17):
    lines = [
        "INVITE sip:ivr@192.0.2.10 SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.7:5070;branch=z9hG4bKabc",
        *(f"Record-Route: {rr}" for rr in record_routes),
        "Max-Forwards: 70",
        'From: "Alice" <sip:alice@example.com>;tag=a1',
        "To: <sip:ivr@192.0.2.10>",
        "Call-ID: call-1@example.com",
        f"CSeq: {cseq} INVITE",
        f"Contact: {contact}",
        "Content-Length: 0",
    ]
    return parse_datagram(("\r\n".join(lines) + "\r\n\r\n").encode())


def _uac_pair(record_routes=(), status=200, contact="<sip:bob@203.0.113.5:5080>"):
    """Our INVITE and a response to it (as seen by the UAC)."""
    invite = _invite(contact="<sip:ivr@192.0.2.10:5060>", cseq=1)
    # Pretend we sent it: From is ours, To is theirs.
    invite.headers.set("From", "<sip:ivr@192.0.2.10>;tag=ours")
    invite.headers.set("To", "<sip:bob@example.net>")
    extra = [("Contact", contact)] + [("Record-Route", rr) for rr in record_routes]
    response = make_response(invite, status, to_tag="theirs", extra=extra)
    return invite, parse_datagram(serialize(response))


def test_from_uas_takes_identity_target_and_route_set_in_order():
    invite = _invite(record_routes=["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"])
    dialog = Dialog.from_uas(invite, "mytag", "<sip:ivr@192.0.2.10:5060>")
    assert dialog.id == ("call-1@example.com", "mytag", "a1")
    assert dialog.remote_target == "sip:alice@198.51.100.7:5070"
    assert dialog.route_set == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert dialog.remote_seq == 17
    assert dialog.local_seq == 0
    assert dialog.remote_party == '"Alice" <sip:alice@example.com>'
    assert dialog.local_party == "<sip:ivr@192.0.2.10>"
    assert dialog.state is DialogState.EARLY


def test_from_uas_without_contact_targets_the_from_uri():
    invite = _invite()
    invite.headers.remove("Contact")
    dialog = Dialog.from_uas(invite, "t", "")
    assert dialog.remote_target == "sip:alice@example.com"


def test_from_uac_reverses_the_record_route_and_confirms_on_2xx():
    invite, ok = _uac_pair(record_routes=["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"])
    dialog = Dialog.from_uac(invite, ok)
    assert dialog.id == (invite.call_id, "ours", "theirs")
    assert dialog.route_set == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    assert dialog.remote_target == "sip:bob@203.0.113.5:5080"
    assert dialog.local_seq == 1 and dialog.remote_seq is None
    assert dialog.local_contact == "<sip:ivr@192.0.2.10:5060>"
    assert dialog.state is DialogState.CONFIRMED


def test_from_uac_on_provisional_is_early_and_2xx_recomputes_route_set_and_target():
    invite, ringing = _uac_pair(record_routes=["<sip:old.example.com;lr>"], status=180)
    dialog = Dialog.from_uac(invite, ringing)
    assert dialog.state is DialogState.EARLY
    _, ok = _uac_pair(record_routes=["<sip:a.example.com;lr>", "<sip:b.example.com;lr>"],
                      contact="<sip:bob@203.0.113.9:6000>")
    dialog.update_from_response(ok)
    assert dialog.route_set == ["<sip:b.example.com;lr>", "<sip:a.example.com;lr>"]
    assert dialog.remote_target == "sip:bob@203.0.113.9:6000"
    dialog.confirm()
    # Once confirmed, a later target refresh keeps the route set (12.2.1.2).
    _, again = _uac_pair(record_routes=["<sip:c.example.com;lr>"], contact="<sip:bob@203.0.113.1>")
    dialog.update_from_response(again)
    assert dialog.route_set == ["<sip:b.example.com;lr>", "<sip:a.example.com;lr>"]
    assert dialog.remote_target == "sip:bob@203.0.113.1"


def test_loose_routing_keeps_the_remote_target_as_request_uri():
    invite, ok = _uac_pair(record_routes=["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"])
    dialog = Dialog.from_uac(invite, ok)
    bye = dialog.create_request("BYE")
    assert bye.uri == "sip:bob@203.0.113.5:5080"
    assert bye.headers.get_all("Route") == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]


def test_strict_routing_puts_the_first_route_in_the_request_uri():
    invite, ok = _uac_pair(record_routes=["<sip:p1.example.com;lr>", "<sip:strict.example.com>"])
    dialog = Dialog.from_uac(invite, ok)
    bye = dialog.create_request("BYE")
    assert bye.uri == "sip:strict.example.com"
    assert bye.headers.get_all("Route") == ["<sip:p1.example.com;lr>",
                                            "<sip:bob@203.0.113.5:5080>"]


def test_lr_is_recognised_as_a_uri_parameter_only():
    # ";LR" (case-insensitive) is loose; an "lr" inside a host name or outside <> is not.
    for route, strict in [("<sip:p.example.com;LR>", False), ("<sip:p.example.com;lr=on>", False),
                          ("<sip:lr.example.com>", True), ("<sip:p.example.com>;lr", True)]:
        invite, ok = _uac_pair(record_routes=[route])
        bye = Dialog.from_uac(invite, ok).create_request("BYE")
        assert (bye.uri != "sip:bob@203.0.113.5:5080") is strict, route


def test_create_request_headers_and_cseq_numbering():
    invite, ok = _uac_pair()
    dialog = Dialog.from_uac(invite, ok)
    reinvite = dialog.create_request("INVITE", body=b"v=0\r\n", content_type="application/sdp",
                                     extra=[("Subject", "hold")])
    h = reinvite.headers
    assert h.get("From") == "<sip:ivr@192.0.2.10>;tag=ours"
    assert h.get("To") == "<sip:bob@example.net>;tag=theirs"
    assert h.get("Call-ID") == invite.call_id
    assert h.get("CSeq") == "2 INVITE"
    assert h.get("Max-Forwards") == "70"
    assert h.get("Contact") == "<sip:ivr@192.0.2.10:5060>"
    assert h.get("Content-Type") == "application/sdp"
    assert h.get("Subject") == "hold"
    assert "Via" not in h  # the UA core adds it with a fresh branch
    assert reinvite.body == b"v=0\r\n"
    ack = dialog.create_request("ACK", cseq=2)
    assert ack.headers.get("CSeq") == "2 ACK" and "Contact" not in ack.headers
    bye = dialog.create_request("BYE")
    assert bye.headers.get("CSeq") == "3 BYE" and "Contact" not in bye.headers
    assert "Content-Type" not in bye.headers
    # Serialises and parses back as a well-formed request.
    again = parse_datagram(serialize(bye))
    assert again.method == "BYE" and again.cseq == (3, "BYE")


def test_uas_dialog_requests_go_from_to_swapped():
    dialog = Dialog.from_uas(_invite(), "mytag", "<sip:ivr@192.0.2.10:5060>")
    bye = dialog.create_request("BYE")
    assert bye.headers.get("From") == "<sip:ivr@192.0.2.10>;tag=mytag"
    assert bye.headers.get("To") == '"Alice" <sip:alice@example.com>;tag=a1'
    assert bye.cseq == (1, "BYE")
    assert bye.uri == "sip:alice@198.51.100.7:5070"


def test_remote_cseq_ordering():
    dialog = Dialog.from_uas(_invite(cseq=17), "t", "")

    def req(number, method):
        r = _invite(cseq=number)
        r.method = method
        r.headers.set("CSeq", f"{number} {method}")
        return r

    assert dialog.check_remote_seq(req(18, "INFO")) is True
    assert dialog.remote_seq == 18
    assert dialog.check_remote_seq(req(16, "BYE")) is False  # out of order: 500
    assert dialog.remote_seq == 18
    assert dialog.check_remote_seq(req(5, "ACK")) is True  # ACK/CANCEL reuse numbers
    assert dialog.check_remote_seq(req(5, "CANCEL")) is True
    assert dialog.remote_seq == 18
    assert dialog.check_remote_seq(req(30, "INVITE")) is True  # gaps are allowed
    assert dialog.remote_seq == 30


def test_uac_dialog_accepts_any_first_remote_cseq():
    invite, ok = _uac_pair()
    dialog = Dialog.from_uac(invite, ok)
    bye = _invite(cseq=9000)
    bye.method = "BYE"
    bye.headers.set("CSeq", "9000 BYE")
    assert dialog.check_remote_seq(bye) is True and dialog.remote_seq == 9000


def test_target_refresh_updates_remote_target():
    dialog = Dialog.from_uas(_invite(), "t", "")
    dialog.target_refresh(_invite(contact="<sip:alice@198.51.100.99:7000;transport=tcp>"))
    assert dialog.remote_target == "sip:alice@198.51.100.99:7000;transport=tcp"


def test_state_table():
    dialog = Dialog.from_uas(_invite(), "t", "")
    assert dialog.state is DialogState.EARLY
    dialog.confirm()
    assert dialog.state is DialogState.CONFIRMED
    dialog.confirm()  # a re-INVITE's 2xx: stays confirmed
    assert dialog.state is DialogState.CONFIRMED
    dialog.terminate()
    assert dialog.state is DialogState.TERMINATED
    dialog.terminate()  # idempotent
    with pytest.raises(DialogError, match="confirm not allowed in TERMINATED"):
        dialog.confirm()
    assert dialog.state is DialogState.TERMINATED


def test_early_dialog_can_be_terminated_directly():
    dialog = Dialog.from_uas(_invite(), "t", "")
    dialog.terminate()
    assert dialog.state is DialogState.TERMINATED
    with pytest.raises(DialogError):
        dialog.confirm()
