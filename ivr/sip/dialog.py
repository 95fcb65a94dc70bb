"""SIP dialogs (RFC 3261 section 12): identity, sequence numbers, route set, target.

Pure: built from requests and responses, produces in-dialog requests.  The UA core adds
the Via (branch) and sends them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ..fsm import TransitionError, next_state
from .headers import Headers
from .message import Request, Response
from .uri import NameAddr, SipSyntaxError, parse_name_addr


class DialogState(Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogError(TransitionError):
    """Our own misuse of a dialog (an event the state does not allow)."""

    @classmethod
    def not_allowed(cls, what: str, state: DialogState, event: str) -> "DialogError":
        return cls(f"{event} not allowed in {state.name}")


# (state, event) -> next state.  Events: "provisional", "confirm", "terminate".
_TRANSITIONS: dict[tuple[DialogState, str], DialogState] = {
    (DialogState.EARLY, "provisional"): DialogState.EARLY,
    (DialogState.EARLY, "confirm"): DialogState.CONFIRMED,
    (DialogState.EARLY, "terminate"): DialogState.TERMINATED,
    (DialogState.CONFIRMED, "confirm"): DialogState.CONFIRMED,
    (DialogState.CONFIRMED, "terminate"): DialogState.TERMINATED,
    (DialogState.TERMINATED, "terminate"): DialogState.TERMINATED,
}


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str | None
    local_party: str  # the raw From (UAC) / To (UAS) value without tag
    remote_party: str
    local_seq: int
    remote_seq: int | None
    remote_target: str
    route_set: list[str] = field(default_factory=list)
    local_contact: str = ""
    state: DialogState = DialogState.EARLY
    # glare bookkeeping (RFC 3261 14.1): our re-INVITE awaits its final response
    outgoing_invite_pending: bool = False

    @property
    def id(self) -> tuple[str, str, str | None]:
        return (self.call_id, self.local_tag, self.remote_tag)

    def _event(self, event: str) -> None:
        self.state = next_state(_TRANSITIONS, self.state, event, what="dialog",
                                error=DialogError)

    def confirm(self) -> None:
        self._event("confirm")

    def terminate(self) -> None:
        self._event("terminate")

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_uas(cls, request: Request, local_tag: str, local_contact: str) -> "Dialog":
        """Dialog created by our 1xx/2xx to an incoming INVITE (12.1.1)."""
        contacts = request.contacts
        target = str(contacts[0].uri) if contacts else request.from_.uri.__str__()
        route_set = list(request.headers.get_all("Record-Route"))
        to = request.to
        return cls(
            call_id=request.call_id or "",
            local_tag=local_tag,
            remote_tag=request.from_.tag,
            local_party=str(NameAddr(to.uri, to.display)),
            remote_party=_without_tag(request.from_),
            local_seq=0,
            remote_seq=request.cseq[0],
            remote_target=target,
            route_set=route_set,
            local_contact=local_contact,
        )

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> "Dialog":
        """Dialog created by a 1xx-with-tag or 2xx to our INVITE (12.1.2)."""
        contacts = response.contacts
        target = str(contacts[0].uri) if contacts else request.uri
        # The route set is the Record-Route of the response, reversed.
        route_set = list(reversed(response.headers.get_all("Record-Route")))
        dialog = cls(
            call_id=request.call_id or "",
            local_tag=request.from_.tag or "",
            remote_tag=response.to.tag,
            local_party=_without_tag(request.from_),
            remote_party=_without_tag(response.to),
            local_seq=request.cseq[0],
            remote_seq=None,
            remote_target=target,
            route_set=route_set,
            local_contact=request.headers.get("Contact") or "",
        )
        if 200 <= response.status < 300:
            dialog.confirm()
        return dialog

    def update_from_response(self, response: Response) -> None:
        """A 2xx (or a target refresh) updates the remote target (12.2.1.2)."""
        contacts = response.contacts
        if contacts:
            self.remote_target = str(contacts[0].uri)
        if self.state is DialogState.EARLY:
            self.route_set = list(reversed(response.headers.get_all("Record-Route")))

    # -- in-dialog requests -----------------------------------------------------------
    def check_remote_seq(self, request: Request) -> bool:
        """12.2.2: a lower CSeq than the last one is out of order (answer 500)."""
        number = request.cseq[0]
        if request.method in ("ACK", "CANCEL"):
            return True
        if self.remote_seq is not None and number < self.remote_seq:
            return False
        self.remote_seq = number
        return True

    def target_refresh(self, request: Request) -> None:
        contacts = request.contacts
        if contacts:
            self.remote_target = str(contacts[0].uri)

    def create_request(self, method: str, body: bytes = b"", content_type: str | None = None,
                       extra: list[tuple[str, str]] | None = None, cseq: int | None = None) -> Request:
        """An in-dialog request (12.2.1.1).  ``cseq`` is given for ACK/CANCEL, which reuse
        the INVITE's number; anything else takes the next local sequence number."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        headers = Headers()
        uri = self.remote_target
        routes = list(self.route_set)
        first = _route_uri(routes[0]) if routes else None
        if first is not None and first.param("lr") is None:
            # Strict router (12.2.1.1): the first route becomes the Request-URI.
            uri = str(first)
            routes = routes[1:] + [f"<{self.remote_target}>"]
        for route in routes:
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", f"{self.local_party};tag={self.local_tag}")
        to = self.remote_party + (f";tag={self.remote_tag}" if self.remote_tag else "")
        headers.add("To", to)
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{cseq} {method}")
        if self.local_contact and method in ("INVITE", "UPDATE", "SUBSCRIBE", "REFER", "NOTIFY"):
            headers.add("Contact", self.local_contact)
        for name, value in extra or ():
            headers.add(name, value)
        if content_type and body:
            headers.add("Content-Type", content_type)
        return Request(method, uri, headers, body)


def _route_uri(route: str):
    """The URI of a Route value, or ``None`` when the peer's Record-Route does not parse
    (then it is passed on as it came, as a loose route)."""
    try:
        return parse_name_addr(route).uri
    except SipSyntaxError:
        return None


def _without_tag(addr: NameAddr) -> str:
    params = tuple((k, v) for k, v in addr.params if k.lower() != "tag")
    return str(NameAddr(addr.uri, addr.display, params))
