"""The INVITE session's states, events and its one transition table (RFC 3261 13-15,
RFC 3262, RFC 3311, RFC 4028).

Pure: no clock, no I/O, no Twisted.  :class:`ivr.sip.session.InviteSession` looks every
event up here with :func:`ivr.fsm.next_state`; the row names the handler to call and the
state the session is in when it runs.

Events come from two sides, and a state that does not allow one is handled by side:

* **Ours** (:data:`LOCAL`): what the call layer asks (ring, accept, hang up, re-INVITE,
  ...).  Missing from the table means our own code misused the session: it raises
  :class:`SessionError`.
* **The peer's and the layers' below** (everything else): requests, responses to our
  INVITE, ACKs, timers.  Every in-dialog request has a row in every state, so the peer's
  mistakes get the RFC's answer (a re-INVITE before our ACK: 500 with Retry-After, 14.2;
  one while our own INVITE is pending: 491; anything on an ended dialog or a PRACK to a
  UAC: 481).  A response, ACK or timer the state does not allow raises
  :class:`PeerMisuse`, which the session logs and drops (there is nothing to answer).
"""
from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from ..fsm import TransitionError, next_state


class Role(Enum):
    UAS = "uas"
    UAC = "uac"


class SessionState(Enum):
    CALLING = "calling"        # UAC: INVITE sent
    EARLY = "early"            # provisional with tag seen / sent
    INCOMING = "incoming"      # UAS: INVITE received, no answer yet
    WAIT_ACK = "wait_ack"      # UAS: 2xx sent
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class SessionError(TransitionError):
    """Our own misuse of a session (a request the session's state does not allow)."""


class PeerMisuse(TransitionError):
    """The peer (or a layer below) delivered something the state does not allow: dropped."""


class Event(Enum):
    # ours
    RING = "ring"
    ACCEPT = "accept"
    ACCEPT_AFTER_PRACK = "accept (2xx waits for a PRACK)"
    REJECT = "reject"
    HANG_UP = "hang up"
    CANCEL = "cancel"
    REINVITE = "re-INVITE"
    SEND_REQUEST = "in-dialog request"
    # the peer's requests
    BYE_IN = "BYE received"
    CANCEL_IN = "CANCEL received"
    ACK_IN = "ACK received"
    REINVITE_IN = "re-INVITE received"
    UPDATE_IN = "UPDATE received"
    PRACK_IN = "PRACK received"
    REQUEST_IN = "INFO/REFER/NOTIFY received"
    # responses to our INVITE, and what the layers below report
    TRYING = "100"
    PROVISIONAL = "101-199"
    ANSWERED = "2xx"
    CHALLENGED = "401/407 (retried with credentials)"
    SESSION_TOO_SMALL = "422 (retried with Min-SE)"
    FAILED = "300-699"
    TIMED_OUT = "INVITE timeout"
    TRANSPORT_ERROR = "INVITE transport error"
    NO_ACK = "no ACK for our 2xx"
    NO_PRACK = "no PRACK for our reliable 1xx"
    DIALOG_GONE = "481 to our re-INVITE"


LOCAL = frozenset({Event.RING, Event.ACCEPT, Event.ACCEPT_AFTER_PRACK, Event.REJECT,
                   Event.HANG_UP, Event.CANCEL, Event.REINVITE, Event.SEND_REQUEST})


class Where(NamedTuple):
    """A session's role and state: what the table is keyed on, with the event."""
    role: Role
    state: SessionState

    @property
    def value(self) -> str:
        return f"{self.state.value} ({self.role.value})"


S, E = SessionState, Event
UAS, UAC = Role.UAS, Role.UAC
Row = tuple[str | None, SessionState]


def _rows(role: Role, states, event: Event, handler: str | None, following=None) -> dict:
    """The same row for several states; ``following=None`` keeps the state."""
    return {(Where(role, s), event): (handler, following or s) for s in states}


_UAS_UNANSWERED = (S.INCOMING, S.EARLY)
_UAS_LIVE = (S.INCOMING, S.EARLY, S.WAIT_ACK, S.CONFIRMED)
_UAC_DIALOG = (S.EARLY, S.CONFIRMED)
_UAC_UNANSWERED = (S.CALLING, S.EARLY)

#: ``(Where(role, state), event) -> (handler, state the handler runs in)``.  The session
#: moves to the row's state *before* the handler runs, so a listener called from a handler
#: sees the new state; a handler that ends the session moves it on to TERMINATED itself.
TABLE: dict[tuple[Where, Event], Row] = {
    # -- UAS: answering the INVITE (13.3.1) --------------------------------------------
    **_rows(UAS, _UAS_UNANSWERED, E.RING, "_send_provisional", S.EARLY),
    **_rows(UAS, _UAS_UNANSWERED, E.ACCEPT, "_send_2xx_to_invite", S.WAIT_ACK),
    **_rows(UAS, (S.EARLY,), E.ACCEPT_AFTER_PRACK, "_queue_accept"),
    **_rows(UAS, _UAS_UNANSWERED, E.REJECT, "_send_rejection", S.TERMINATED),
    **_rows(UAS, _UAS_UNANSWERED, E.HANG_UP, "_hang_up_unanswered", S.TERMINATED),
    **_rows(UAS, (S.WAIT_ACK,), E.HANG_UP, "_bye_after_ack"),  # 15: not before the ACK
    **_rows(UAS, (S.CONFIRMED,), E.HANG_UP, "_send_bye", S.TERMINATED),
    **_rows(UAS, (S.TERMINATED,), E.HANG_UP, None),  # a hang-up may cross the peer's BYE
    **_rows(UAS, (S.CONFIRMED,), E.REINVITE, "_send_reinvite"),
    **_rows(UAS, (S.WAIT_ACK,), E.REINVITE, "_invite_in_progress"),  # 14.1: False
    **_rows(UAS, _UAS_LIVE, E.SEND_REQUEST, "_send_request"),
    # the peer's requests
    **_rows(UAS, _UAS_UNANSWERED, E.CANCEL_IN, "_on_cancel", S.TERMINATED),
    **_rows(UAS, (S.WAIT_ACK, S.CONFIRMED, S.TERMINATED), E.CANCEL_IN, None),  # 9.2: too late
    **_rows(UAS, (S.WAIT_ACK,), E.ACK_IN, "_on_ack", S.CONFIRMED),
    **_rows(UAS, (S.CONFIRMED,), E.ACK_IN, "_on_reinvite_ack"),
    **_rows(UAS, _UAS_UNANSWERED, E.BYE_IN, "_on_early_bye", S.TERMINATED),  # 15.1.2
    **_rows(UAS, (S.WAIT_ACK, S.CONFIRMED), E.BYE_IN, "_on_bye", S.TERMINATED),
    **_rows(UAS, _UAS_UNANSWERED + (S.WAIT_ACK,), E.REINVITE_IN, "_answer_500_retry"),  # 14.2
    **_rows(UAS, (S.CONFIRMED,), E.REINVITE_IN, "_on_reinvite"),
    **_rows(UAS, _UAS_LIVE, E.UPDATE_IN, "_on_update"),
    **_rows(UAS, _UAS_LIVE, E.PRACK_IN, "_on_prack"),
    **_rows(UAS, _UAS_LIVE, E.REQUEST_IN, "_to_listener"),
    **{(Where(UAS, S.TERMINATED), e): ("_answer_481", S.TERMINATED)
       for e in (E.BYE_IN, E.REINVITE_IN, E.UPDATE_IN, E.PRACK_IN, E.REQUEST_IN)},
    # the layers below
    **_rows(UAS, (S.EARLY,), E.NO_PRACK, "_on_no_prack", S.TERMINATED),
    **_rows(UAS, (S.WAIT_ACK, S.CONFIRMED), E.NO_ACK, "_on_no_ack", S.TERMINATED),
    **_rows(UAS, (S.TERMINATED,), E.NO_ACK, None),

    # -- UAC: our INVITE (13.2) -------------------------------------------------------
    **_rows(UAC, _UAC_UNANSWERED, E.TRYING, "_on_trying"),
    **_rows(UAC, _UAC_UNANSWERED, E.PROVISIONAL, "_on_provisional", S.EARLY),
    **_rows(UAC, _UAC_UNANSWERED, E.ANSWERED, "_on_answered", S.CONFIRMED),
    **_rows(UAC, _UAC_UNANSWERED, E.CHALLENGED, "_retry_with_credentials"),
    **_rows(UAC, _UAC_UNANSWERED, E.SESSION_TOO_SMALL, "_retry_with_min_se"),
    **_rows(UAC, _UAC_UNANSWERED, E.FAILED, "_on_failed", S.TERMINATED),
    **_rows(UAC, _UAC_UNANSWERED, E.TIMED_OUT, "_on_timeout", S.TERMINATED),
    **_rows(UAC, _UAC_UNANSWERED, E.TRANSPORT_ERROR, "_on_transport_error", S.TERMINATED),
    **_rows(UAC, _UAC_UNANSWERED, E.CANCEL, "_cancel"),
    # 9.1: too late once the final response came (it may have crossed the cancel)
    **_rows(UAC, (S.CONFIRMED, S.TERMINATED), E.CANCEL, None),
    **_rows(UAC, _UAC_UNANSWERED, E.HANG_UP, "_cancel"),  # unanswered: CANCEL (9.1)
    **_rows(UAC, (S.CONFIRMED,), E.HANG_UP, "_send_bye", S.TERMINATED),
    **_rows(UAC, (S.TERMINATED,), E.HANG_UP, None),  # a hang-up may cross the peer's BYE
    **_rows(UAC, (S.CONFIRMED,), E.REINVITE, "_send_reinvite"),
    **_rows(UAC, _UAC_DIALOG, E.SEND_REQUEST, "_send_request"),
    # the peer's requests (none reach CALLING: there is no dialog to match yet)
    **_rows(UAC, (S.CONFIRMED,), E.ACK_IN, "_on_reinvite_ack"),
    **_rows(UAC, _UAC_DIALOG, E.BYE_IN, "_on_bye", S.TERMINATED),
    **_rows(UAC, (S.EARLY,), E.REINVITE_IN, "_answer_491"),  # 14.2: ours is pending
    **_rows(UAC, (S.CONFIRMED,), E.REINVITE_IN, "_on_reinvite"),
    **_rows(UAC, _UAC_DIALOG, E.UPDATE_IN, "_on_update"),
    **_rows(UAC, _UAC_DIALOG, E.REQUEST_IN, "_to_listener"),
    **{(Where(UAC, s), e): ("_answer_481", s)
       for s in (S.CALLING, S.EARLY, S.CONFIRMED, S.TERMINATED) for e in (E.PRACK_IN,)},
    **{(Where(UAC, s), e): ("_answer_481", s) for s in (S.CALLING, S.TERMINATED)
       for e in (E.BYE_IN, E.REINVITE_IN, E.UPDATE_IN, E.REQUEST_IN)},
    **_rows(UAC, (S.CONFIRMED,), E.NO_ACK, "_on_no_ack", S.TERMINATED),
    **_rows(UAC, (S.TERMINATED,), E.NO_ACK, None),

    # -- both: the peer answered our re-INVITE 481 (12.2.1.2) --------------------------
    **_rows(UAS, (S.CONFIRMED,), E.DIALOG_GONE, "_on_dialog_gone", S.TERMINATED),
    **_rows(UAC, (S.CONFIRMED,), E.DIALOG_GONE, "_on_dialog_gone", S.TERMINATED),
    **_rows(UAS, (S.TERMINATED,), E.DIALOG_GONE, None),
    **_rows(UAC, (S.TERMINATED,), E.DIALOG_GONE, None),
}


def transition(role: Role, state: SessionState, event: Event) -> Row:
    """The row for ``event`` in ``state``; :class:`SessionError` for our own misuse,
    :class:`PeerMisuse` for the peer's (or a lower layer's)."""
    error = SessionError if event in LOCAL else PeerMisuse
    return next_state(TABLE, Where(role, state), event, what="INVITE session", error=error)
