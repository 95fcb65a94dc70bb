"""What this user agent implements, as it tells its peers (Allow, Accept, Supported,
User-Agent).  Shared by the UA core and the INVITE session."""
from __future__ import annotations

from .validate import EXTENSIONS

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK, INFO, UPDATE, REGISTER, REFER, NOTIFY"
ACCEPT = "application/sdp, application/dtmf-relay, application/dtmf"
#: Option tags we do (RFC 3262 reliable provisionals, RFC 4028 session timers): a
#: Require naming only these is accepted, anything else gets 420.
SUPPORTED = ", ".join(sorted(EXTENSIONS))
USER_AGENT = "ivr/0.1"
