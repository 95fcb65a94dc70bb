"""Transaction matching (RFC 3261 17.1.3, 17.2.3) and the requests a transaction builds
itself (the ACK for a non-2xx, CANCEL).  Pure."""
from __future__ import annotations

import random
import secrets

from .headers import Headers
from .message import Request, Response

MAGIC_COOKIE = "z9hG4bK"


# -- matching (17.1.3, 17.2.3) -----------------------------------------------------------


def client_key(message: Request | Response) -> tuple[str, str]:
    """(top Via branch, CSeq method): a response matches the client transaction that
    sent the request with that key (17.1.3).  Raises SipSyntaxError on a bad message."""
    branch = message.top_via.branch or ""
    return branch, message.cseq[1]


def server_key(request: Request, to_tag: str | None = None, method: str | None = None) -> tuple:
    """The key of the server transaction ``request`` belongs to (17.2.3).

    RFC 3261 branch: (branch, sent-by, method) with ACK matching INVITE.  RFC 2543 peers
    (no magic cookie): (Request-URI, To tag, From tag, Call-ID, CSeq number, top Via,
    method).  ``to_tag`` overrides the request's To tag (the key an ACK for a response
    with that tag carries); ``method`` overrides the method (a CANCEL's INVITE, 9.2).
    Raises SipSyntaxError on a bad message.
    """
    via = request.top_via
    method = method or request.method
    if method == "ACK":
        method = "INVITE"
    branch = via.branch
    if branch and branch.startswith(MAGIC_COOKIE):
        sent_by = f"{via.host.lower()}:{via.port if via.port is not None else ''}"
        return ("3261", branch, sent_by, method)
    if to_tag is None:
        to_tag = request.to.tag
    return ("2543", request.uri, to_tag, request.from_.tag, request.call_id,
            request.cseq[0], str(via), method)


def server_ack_key(invite: Request, response: Response) -> tuple:
    """The key the ACK for ``response`` (a final response to ``invite``) will match."""
    return server_key(invite, to_tag=response.to.tag)


def cancel_target_key(cancel: Request) -> tuple:
    """The key of the INVITE server transaction a CANCEL refers to (9.2)."""
    return server_key(cancel, method="INVITE")


# -- building requests -------------------------------------------------------------------


def make_branch(rand: random.Random | None = None) -> str:
    """A fresh RFC 3261 branch: the magic cookie and 64 random bits."""
    bits = rand.getrandbits(64) if rand is not None else secrets.randbits(64)
    return f"{MAGIC_COOKIE}{bits:016x}"


def _copy_common(invite: Request, method: str, to_value: str) -> Headers:
    headers = Headers()
    headers.add("Via", invite.headers.get("Via"))  # the top Via only
    headers.add("Max-Forwards", "70")
    for route in invite.headers.get_raw("Route"):
        headers.add("Route", route)
    headers.add("From", invite.headers.get("From"))
    headers.add("To", to_value)
    headers.add("Call-ID", invite.headers.get("Call-ID"))
    headers.add("CSeq", f"{invite.cseq[0]} {method}")
    return headers


def make_ack(invite: Request, response: Response) -> Request:
    """The ACK for a non-2xx final response (17.1.1.3)."""
    to_value = response.headers.get("To") or invite.headers.get("To")
    return Request("ACK", invite.uri, _copy_common(invite, "ACK", to_value))


def make_cancel(invite: Request) -> Request:
    """CANCEL for ``invite`` (9.1): same Request-URI, Call-ID, From, To, CSeq number and
    top Via (so it reaches the same server transaction's host), the INVITE's Route set."""
    return Request("CANCEL", invite.uri, _copy_common(invite, "CANCEL", invite.headers.get("To")))
