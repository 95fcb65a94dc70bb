"""ICE-lite (RFC 8445 2.5, RFC 5245 lite) for one media stream: STUN binding checks in,
answers and a nominated address out, plus consent freshness (RFC 7675).  Pure.

We are always the lite, controlled agent with one host candidate (the RTP port): the peer
(a browser, baresip's ``ice`` module) sends connectivity checks, STUN Binding requests,
to that port; we answer each valid one with a success response carrying XOR-MAPPED-ADDRESS
(where it came from), MESSAGE-INTEGRITY keyed with our ``a=ice-pwd`` and FINGERPRINT.  A
check carrying USE-CANDIDATE nominates its source address: media goes there only, and a
later nomination from another address (the peer's network changed) moves it.  The STUN
codec and its integrity and fingerprint arithmetic are aioice's (``aioice.stun``).

A request is valid when it parses (a bad FINGERPRINT fails parsing), is a Binding request
and carries USERNAME ``OURUFRAG:THEIRUFRAG`` and MESSAGE-INTEGRITY that checks with our
password.  RFC 5389 10.1.2: without USERNAME or MESSAGE-INTEGRITY the answer is 400; a
wrong USERNAME or a failed integrity check is 401, sent without MESSAGE-INTEGRITY.
Anything else that is not a Binding request (responses, indications, other methods,
garbage) is dropped and counted.

Consent freshness: the peer keeps checking (every few seconds) while it wants the media;
:meth:`IceLiteAgent.consent_expired` is true once no valid request has arrived for
``consent_timeout`` (30 s, RFC 7675 5.1) since the agent started or since the last one.
The owner reads the time and passes it in: this module reads no clock.

RFC 7983 demultiplexing of the one port is :func:`packet_kind` (first byte 0-3 STUN,
20-63 DTLS, 128-191 RTP/RTCP).
"""
from __future__ import annotations

import enum
import secrets
import struct
from dataclasses import dataclass

from aioice import stun

__all__ = ["IceCredentials", "IceLiteAgent", "SendStun", "Nominated", "PacketKind",
           "packet_kind", "CONSENT_TIMEOUT"]

CONSENT_TIMEOUT = 30.0  # RFC 7675 5.1


class PacketKind(enum.Enum):
    STUN = "stun"
    DTLS = "dtls"
    RTP = "rtp"     # RTP or RTCP (RFC 5761 tells them apart)
    OTHER = "other"


def packet_kind(data: bytes) -> PacketKind:
    """RFC 7983 section 7: what a datagram on the shared port is, from its first byte."""
    if not data:
        return PacketKind.OTHER
    b = data[0]
    if b <= 3:
        return PacketKind.STUN
    if 20 <= b <= 63:
        return PacketKind.DTLS
    if 128 <= b <= 191:
        return PacketKind.RTP
    return PacketKind.OTHER


@dataclass(frozen=True)
class IceCredentials:
    """``a=ice-ufrag`` / ``a=ice-pwd`` (RFC 8839 5.4: ufrag >= 4, pwd >= 22 ice-chars)."""

    ufrag: str
    pwd: str

    @classmethod
    def new(cls) -> "IceCredentials":
        # token_urlsafe uses [A-Za-z0-9_-]; ice-char is [A-Za-z0-9+/]: map the two others
        def chars(n: int) -> str:
            return secrets.token_urlsafe(n).replace("-", "+").replace("_", "/")[:n]
        return cls(chars(8), chars(24))

    def __repr__(self) -> str:  # never the password
        return f"IceCredentials(ufrag={self.ufrag!r})"


@dataclass(frozen=True)
class SendStun:
    """Send ``data`` to ``addr`` from the RTP port."""

    data: bytes
    addr: tuple[str, int]


@dataclass(frozen=True)
class Nominated:
    """The peer nominated ``addr``: media goes there from now on."""

    addr: tuple[str, int]


class IceLiteAgent:
    """The lite, controlled side of ICE for one stream (see the module docstring)."""

    def __init__(self, local: IceCredentials, remote_ufrag: str | None = None, *,
                 now: float, consent_timeout: float = CONSENT_TIMEOUT) -> None:
        self.local = local
        self.remote_ufrag = remote_ufrag
        self.consent_timeout = consent_timeout
        self._key = local.pwd.encode("utf-8")
        self.nominated: tuple[str, int] | None = None
        self.checked: tuple[str, int] | None = None  # source of the last valid check
        self._last_valid = now
        self.counters = dict(stun_requests=0, stun_bad=0, stun_unauthorized=0,
                             stun_dropped=0, nominations=0)

    def receive(self, data: bytes, addr: tuple[str, int], now: float) -> list:
        """A STUN datagram from ``addr``: the actions it calls for (SendStun, Nominated)."""
        addr = (addr[0], addr[1])
        try:
            message = stun.parse_message(data)
        except (ValueError, struct.error, IndexError, KeyError):
            self.counters["stun_dropped"] += 1  # not STUN, damaged, or a bad FINGERPRINT
            return []
        if (message.message_method != stun.Method.BINDING
                or message.message_class != stun.Class.REQUEST):
            self.counters["stun_dropped"] += 1
            return []
        username = message.attributes.get("USERNAME")
        if username is None or "MESSAGE-INTEGRITY" not in message.attributes:
            self.counters["stun_bad"] += 1
            return [self._error(message, addr, 400, "Bad Request")]
        ours, _, theirs = username.partition(":")
        if (ours != self.local.ufrag or not theirs
                or (self.remote_ufrag is not None and theirs != self.remote_ufrag)
                or not message.check_message_integrity(self._key)):
            self.counters["stun_unauthorized"] += 1
            return [self._error(message, addr, 401, "Unauthorized")]
        self.counters["stun_requests"] += 1
        self._last_valid = now
        self.checked = addr
        response = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE,
                                transaction_id=message.transaction_id)
        response.attributes["XOR-MAPPED-ADDRESS"] = addr
        response.add_message_integrity(self._key)  # and FINGERPRINT
        actions: list = [SendStun(bytes(response), addr)]
        if "USE-CANDIDATE" in message.attributes and addr != self.nominated:
            self.nominated = addr
            self.counters["nominations"] += 1
            actions.append(Nominated(addr))
        return actions

    def _error(self, request, addr, code: int, reason: str) -> SendStun:
        response = stun.Message(stun.Method.BINDING, stun.Class.ERROR,
                                transaction_id=request.transaction_id)
        response.attributes["ERROR-CODE"] = (code, reason)
        response.add_fingerprint()
        return SendStun(bytes(response), addr)

    def consent_expired(self, now: float) -> bool:
        """No valid check for ``consent_timeout`` seconds (RFC 7675): the media is gone."""
        return now - self._last_valid >= self.consent_timeout
