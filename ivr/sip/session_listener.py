"""What an INVITE session asks of its user: the listener's callbacks, the exception with
which the listener turns down an SDP offer, and the Warning header that says why."""
from __future__ import annotations

from typing import Protocol

from .message import Request, Response


class OfferRejected(Exception):
    """The listener cannot accept an SDP offer: answer ``status`` (488, or 400 for SDP
    that is malformed) with a Warning of code ``warn_code`` saying ``why``, if given."""

    def __init__(self, why: str = "", status: int = 488, warn_code: int = 399) -> None:
        super().__init__(why)
        self.why, self.status, self.warn_code = why, status, warn_code


#: Longest Warning text we send: it quotes what the peer sent, which may be anything.
MAX_WARNING_TEXT = 200


def warning_header(agent: str, text: str, code: int = 399) -> tuple[str, str]:
    """``("Warning", 'code agent "text"')`` (RFC 3261 20.43).  ``text`` usually quotes
    the peer's own bytes, so it becomes a safe quoted-string: characters that are not
    printable (CR, LF, NUL, other controls) turn into ``?``, ``"`` and ``\\`` are escaped,
    and it is cut at MAX_WARNING_TEXT characters."""
    if not 300 <= code <= 399:
        raise ValueError(f"a Warning code is 3xx, not {code}")
    if len(text) > MAX_WARNING_TEXT:
        text = text[: MAX_WARNING_TEXT - 3] + "..."
    text = "".join(c if c.isprintable() else "?" for c in text)
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return ("Warning", f'{code} {agent} "{text}"')


class SessionListener(Protocol):
    """The call layer's side of a session (``session`` is the
    :class:`ivr.sip.session.InviteSession` calling)."""

    def on_progress(self, session: "InviteSession", response: Response) -> None: ...
    def on_answered(self, session: "InviteSession", response: Response) -> bytes | None: ...
    def on_failed(self, session: "InviteSession", status: int, reason: str) -> None: ...
    def on_confirmed(self, session: "InviteSession", ack: Request) -> None: ...
    def on_offer(self, session: "InviteSession", sdp: bytes | None) -> bytes: ...
    def on_answer(self, session: "InviteSession", sdp: bytes) -> None: ...
    def on_info(self, session: "InviteSession", request: Request) -> int: ...
    def on_terminated(self, session: "InviteSession", reason: str) -> None: ...
