"""Answering a 401/407 challenge to our INVITE (RFC 3261 22.2, RFC 8760).  Pure."""
from __future__ import annotations

import secrets

from .auth import build_authorization, choose_challenge, parse_challenge
from .message import Request, Response


def authorized_retry(invite: Request, challenge: Response, credentials: tuple[str, str],
                     via: str, cnonce: str | None = None) -> Request:
    """The INVITE again with credentials for the strongest challenge we can answer: CSeq
    + 1, a new Via (branch), everything else kept.  Raises ``auth.AuthError`` when no
    challenge can be answered."""
    header = "WWW-Authenticate" if challenge.status == 401 else "Proxy-Authenticate"
    user, password = credentials
    chosen = choose_challenge([parse_challenge(v) for v in challenge.headers.get_raw(header)])
    authorization = build_authorization(chosen, "INVITE", invite.uri, user, password=password,
                                        cnonce=cnonce or secrets.token_hex(8), nc=1,
                                        body=invite.body)
    request = Request("INVITE", invite.uri, invite.headers.copy(), invite.body)
    request.headers.set("CSeq", f"{invite.cseq[0] + 1} INVITE")
    request.headers.pop_first("Via")
    request.headers.prepend("Via", via)
    request.headers.set("Authorization" if challenge.status == 401 else "Proxy-Authorization",
                        authorization)
    return request
