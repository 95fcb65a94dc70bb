"""Session timers (RFC 4028), as pure pieces: header parsing, the negotiation a UAS and
a UAC do on an INVITE / UPDATE and its 2xx, and :class:`SessionTimer`, the per-dialog
machine whose timers are actions (no clock, no Twisted).

The refresher re-sends its session (re-INVITE or UPDATE) at half the interval; the other
side ends the call if no refresh came by ``interval - min(32, interval / 3)`` (RFC 4028
10).  ``refresher`` in a Session-Expires is relative to the *transaction* carrying it:
``uac`` is whoever sent that request; the machine only keeps "we refresh" or not.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from ..fsm import Machine
from .message import Request, Response
from .prack import option_tags, peer_supports
from .transaction import CancelTimer, StartTimer, TransactionError

#: RFC 4028 4: Min-SE is never below 90 s.
ABSOLUTE_MIN_SE = 90
#: What we ask for when the peer names no interval (RFC 4028 recommends 1800 s).
DEFAULT_SESSION_EXPIRES = 1800
MAX_DELTA = 2**32 - 1


class SessionTimerName(enum.Enum):
    REFRESH = "session-refresh"  # we are the refresher: send a refresh at interval / 2
    EXPIRY = "session-expiry"    # the peer is: BYE if nothing came by then


@dataclass(frozen=True)
class SendRefresh:
    """Time to refresh the session (re-INVITE or UPDATE with Session-Expires)."""


@dataclass(frozen=True)
class Expired:
    """No refresh arrived in time: end the call (BYE, end_reason session-timer-expired)."""


@dataclass(frozen=True)
class SessionExpires:
    delta: int
    refresher: str | None  # "uac" | "uas" | None


@dataclass(frozen=True)
class Negotiated:
    """The outcome of one transaction: the interval and whether *we* refresh."""
    interval: int
    we_refresh: bool


@dataclass(frozen=True)
class TooSmall:
    """Answer 422 Session Interval Too Small with ``Min-SE: min_se`` (RFC 4028 6)."""
    min_se: int


class SessionTimerError(Exception):
    """The peer's Session-Expires / Min-SE does not parse (they sent garbage)."""


def _delta(value: str) -> int:
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 10 or int(value) > MAX_DELTA:
        raise SessionTimerError(f"bad delta-seconds {value!r}")
    return int(value)


def parse_session_expires(message: Request | Response) -> SessionExpires | None:
    """The Session-Expires header (``x`` compact form), ``None`` when absent."""
    raw = message.headers.get_raw("Session-Expires")
    if not raw:
        return None
    if len(raw) > 1:
        raise SessionTimerError("more than one Session-Expires")
    first, *params = raw[0].split(";")
    refresher = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "refresher":
            refresher = value.strip().lower()
            if refresher not in ("uac", "uas"):
                raise SessionTimerError(f"bad refresher {value!r}")
    return SessionExpires(_delta(first), refresher)


def parse_min_se(message: Request | Response) -> int | None:
    raw = message.headers.get_raw("Min-SE")
    if not raw:
        return None
    return _delta(raw[-1].split(";")[0])


def session_expires_value(interval: int, refresher: str) -> str:
    return f"{interval};refresher={refresher}"


# -- UAS: a request (INVITE, re-INVITE or UPDATE) --------------------------------------------


def uas_check(request: Request, min_se: int = ABSOLUTE_MIN_SE) -> TooSmall | None:
    """422 for a Session-Expires below our Min-SE (RFC 4028 8.1).  A malformed header
    raises :class:`SessionTimerError` (the caller answers 400)."""
    se = parse_session_expires(request)
    if se is not None and se.delta < min_se:
        return TooSmall(max(min_se, parse_min_se(request) or 0))
    return None


def uas_negotiate(request: Request, min_se: int = ABSOLUTE_MIN_SE,
                  default: int = DEFAULT_SESSION_EXPIRES, keep: int | None = None
                  ) -> tuple[Negotiated | None, list[tuple[str, str]]]:
    """RFC 4028 9: what our 2xx to ``request`` says, as (outcome, extra headers).

    A request with Session-Expires keeps its interval and refresher (absent: ``uac``
    when the sender supports timers, else us).  A request without it but with
    ``Supported: timer`` gets our default interval, refreshed by its sender.  A peer that
    knows nothing of timers gets none (outcome ``None``), unless a timer already runs on
    the dialog (``keep``, its interval): then we go on refreshing it ourselves, which RFC
    4028 9 allows without the peer's support."""
    se = parse_session_expires(request)
    supports = peer_supports(request, "timer")
    if se is None and not supports:
        if keep is None:
            return None, []
        return Negotiated(keep, True), [("Session-Expires", session_expires_value(keep, "uas"))]
    interval = se.delta if se is not None else (keep or max(default, min_se))
    refresher = se.refresher if se is not None and se.refresher else None
    if refresher is None:
        refresher = "uac" if supports else "uas"
    if refresher == "uac" and not supports:
        refresher = "uas"  # it cannot refresh what it does not know about
    extra = [("Session-Expires", session_expires_value(interval, refresher))]
    if supports:
        extra.append(("Require", "timer"))
    return Negotiated(interval, we_refresh=(refresher == "uas")), extra


# -- UAC: the 2xx to our request -----------------------------------------------------------


def uac_request_headers(interval: int = DEFAULT_SESSION_EXPIRES,
                        min_se: int = ABSOLUTE_MIN_SE, refresher: str | None = None
                        ) -> list[tuple[str, str]]:
    value = str(interval) if refresher is None else session_expires_value(interval, refresher)
    headers = [("Session-Expires", value)]
    if min_se != ABSOLUTE_MIN_SE:
        headers.append(("Min-SE", str(min_se)))
    return headers


def uac_negotiate(response: Response) -> Negotiated | None:
    """RFC 4028 7.2: a 2xx with Session-Expires sets the interval; refresher=uac (or
    none given) means us, the sender of the request.  Without it: no session timer."""
    se = parse_session_expires(response)
    if se is None:
        return None
    return Negotiated(se.delta, we_refresh=(se.refresher != "uas"))


def retry_interval(response: Response, asked: int) -> int | None:
    """After a 422: the interval to retry with (its Min-SE), or ``None`` if the 422 is
    unusable (no Min-SE, or not above what we asked)."""
    try:
        min_se = parse_min_se(response)
    except SessionTimerError:
        return None
    if min_se is None or min_se <= asked:
        return None
    return min_se


def refresh_method(peer_allow: list[str]) -> str:
    """UPDATE when the peer allows it (no SDP needed, RFC 4028 10), else re-INVITE."""
    allowed = {m.strip().upper() for m in peer_allow}
    return "UPDATE" if "UPDATE" in allowed else "INVITE"


def requires_timer(message: Request | Response) -> bool:
    return "timer" in option_tags(message.headers, "Require")


# -- the per-dialog machine ---------------------------------------------------------------


class TimerState(enum.Enum):
    IDLE = "Idle"
    REFRESHING = "We refresh"
    WATCHING = "Peer refreshes"
    ENDED = "Ended"


class _Input(enum.Enum):
    WE_REFRESH = "negotiated, we refresh"
    PEER_REFRESHES = "negotiated, the peer refreshes"
    STOP = "stop"


def expiry_delay(interval: float) -> float:
    """RFC 4028 10: BYE at ``interval - min(32, interval / 3)`` without a refresh."""
    return interval - min(32.0, interval / 3)


class SessionTimer(Machine):
    """Runs one dialog's session timer.  ``negotiated(outcome)`` after each accepted
    INVITE / UPDATE (ours or theirs) starts or restarts it; ``timer_fired(name)`` gives
    :class:`SendRefresh` or :class:`Expired`; ``stop()`` when the call ends.  An event
    its state does not allow raises :class:`TransactionError`."""

    _ANY = (TimerState.IDLE, TimerState.REFRESHING, TimerState.WATCHING)
    TABLE = {
        **{(s, _Input.WE_REFRESH): ("_on_negotiated", TimerState.REFRESHING) for s in _ANY},
        **{(s, _Input.PEER_REFRESHES): ("_on_negotiated", TimerState.WATCHING) for s in _ANY},
        **{(s, _Input.STOP): ("_on_stop", TimerState.ENDED) for s in _ANY},
        (TimerState.ENDED, _Input.STOP): ("_nothing", TimerState.ENDED),
        (TimerState.ENDED, _Input.WE_REFRESH): ("_nothing", TimerState.ENDED),
        (TimerState.ENDED, _Input.PEER_REFRESHES): ("_nothing", TimerState.ENDED),
        (TimerState.REFRESHING, SessionTimerName.REFRESH): ("_on_refresh", TimerState.REFRESHING),
        (TimerState.WATCHING, SessionTimerName.EXPIRY): ("_on_expiry", TimerState.ENDED),
        (TimerState.ENDED, SessionTimerName.REFRESH): ("_nothing", TimerState.ENDED),
        (TimerState.ENDED, SessionTimerName.EXPIRY): ("_nothing", TimerState.ENDED),
    }

    def __init__(self) -> None:
        self.state = TimerState.IDLE
        self.interval: int | None = None
        self.current: SessionTimerName | None = None

    @property
    def active(self) -> bool:
        return self.state in (TimerState.REFRESHING, TimerState.WATCHING)

    def negotiated(self, outcome: Negotiated) -> list:
        return self._fire(_Input.WE_REFRESH if outcome.we_refresh else _Input.PEER_REFRESHES,
                          outcome)

    def stop(self) -> list:
        return self._fire(_Input.STOP)

    def timer_fired(self, name: SessionTimerName) -> list:
        return self._fire(name)

    def _what(self) -> str:
        return "session timer"

    def _misuse(self, event) -> type[TransactionError]:
        return TransactionError

    def _cancel(self) -> list:
        current, self.current = self.current, None
        return [CancelTimer(current)] if current is not None else []

    def _on_negotiated(self, outcome: Negotiated) -> list:
        actions = self._cancel()
        self.interval = outcome.interval
        if outcome.we_refresh:
            self.current, delay = SessionTimerName.REFRESH, outcome.interval / 2
        else:
            self.current, delay = SessionTimerName.EXPIRY, expiry_delay(outcome.interval)
        return actions + [StartTimer(self.current, delay)]

    def _on_refresh(self) -> list:
        # Until the refresh's 2xx renegotiates, nothing runs: a refresh that fails
        # (timeout, 408, 481, ...) ends the call through the session.
        self.current = None
        return [SendRefresh()]

    def _on_expiry(self) -> list:
        self.current = None
        return [Expired()]

    def _on_stop(self) -> list:
        return self._cancel()

    def _nothing(self, *_ignored) -> list:
        return []
