"""Where a request for a SIP URI goes (RFC 3263 without DNS NAPTR/SRV: targets are
addresses or names the OS resolves; trunks and outbound proxies are configured)."""
from __future__ import annotations

from .transport import Destination
from .uri import SipUri

DEFAULT_PORTS = {"TLS": 5061, "WS": 80, "WSS": 443}


def destination_for(uri: SipUri) -> Destination:
    """Where to send a request for ``uri``: its maddr or host and its port (5060; 5061
    for TLS, 80/443 for WebSocket, RFC 7118 5.2), UDP unless ``transport`` says
    tcp/tls/ws/wss.  (A WebSocket peer is reached over its own connection: the host is
    how the transport finds it, often a browser's ``.invalid`` name.)"""
    transport = {"tcp": "TCP", "tls": "TLS", "ws": "WS", "wss": "WSS"}.get(
        uri.transport, "UDP")  # sips: is tls
    port = uri.port or DEFAULT_PORTS.get(transport, 5060)
    host = uri.param("maddr") or uri.host_no_brackets
    return Destination(transport, host, port)


def host_for_uri(host: str) -> str:
    """``host`` as it appears in a URI or Via: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
