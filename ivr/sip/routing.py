"""Where a request for a SIP URI goes (RFC 3263 without DNS NAPTR/SRV: targets are
addresses or names the OS resolves; trunks and outbound proxies are configured)."""
from __future__ import annotations

from .transport import Destination
from .uri import SipUri


def destination_for(uri: SipUri) -> Destination:
    """Where to send a request for ``uri``: its maddr or host and its port (5060), UDP
    unless transport=tcp."""
    transport = {"tcp": "TCP", "tls": "TLS"}.get(uri.transport, "UDP")  # sips: is tls
    port = uri.port or (5061 if transport == "TLS" else 5060)
    host = uri.param("maddr") or uri.host_no_brackets
    return Destination(transport, host, port)


def host_for_uri(host: str) -> str:
    """``host`` as it appears in a URI or Via: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
