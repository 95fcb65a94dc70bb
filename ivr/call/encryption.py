"""Which SRTP policy and SIP transport a call leg has, and how its record names them.

A leg's ``media_encryption`` policy (``required | optional | off``, see
:class:`ivr.sdp.crypto.MediaEncryption`) is the authenticated extension's for its own
calls, the trunk's for calls from or to a trunk, the extension's for calls we place to it,
else the server's default (``MediaContext.media_encryption``).  Keys (SDES ``a=crypto``)
are offered and accepted only when the leg's SIP hop is TLS, unless the server allows them
over plain hops (``MediaContext.allow_insecure_srtp_keys``, logged on every use).
"""
from __future__ import annotations

#: How the CDR names a leg's SIP transport (``Source.transport`` / ``Destination.transport``).
TRANSPORTS = {"UDP": "udp", "TCP": "tcp", "TLS": "tls", "WS": "ws", "WSS": "wss"}
#: The transports that carry SIP inside TLS (where SDES keys may travel).
SECURE = frozenset({"tls", "wss"})


def sip_transport(where) -> str | None:
    """``udp``, ``tcp`` or ``tls`` for a Source or Destination (None: not known yet)."""
    return TRANSPORTS.get(getattr(where, "transport", None) or "")


def inbound_policy(session, default: str) -> str:
    """The policy of a leg whose INVITE we received: its authenticated extension's, the
    trunk's it came from, else ``default``."""
    caller = getattr(session, "caller", None)
    for party in (getattr(caller, "extension", None), getattr(caller, "trunk", None)):
        policy = getattr(party, "media_encryption", None)
        if policy:
            return policy
    return default


def outbound_policy(directory, target: str, dest) -> str | None:
    """The policy of a leg we place to ``target`` (sent to ``dest``): the extension's when
    it is one, the trunk's whose address ``dest`` is; None: the server's default."""
    if directory is None:
        return None
    extension = directory.extensions.get(target.strip())
    if extension is not None:
        return extension.media_encryption
    if dest is not None:
        for trunk in directory.trunks.values():
            if (trunk.host, trunk.port) == (dest.host, dest.port):
                return trunk.media_encryption
    return None


def describe(keys) -> str:
    """The CDR's ``media_encryption``: ``srtp:<suite>`` (``ivr.sdp.crypto.SrtpKeys``) or
    ``none``."""
    return f"srtp:{keys.suite}" if keys is not None else "none"
