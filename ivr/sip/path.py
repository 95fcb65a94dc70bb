"""RFC 3327 Path: the proxies a REGISTER came through, and the route set back to the phone.

A proxy in front of the registrar (Kamailio's ``add_path``, in front of a farm of nodes)
puts its own URI in a Path header of the REGISTER.  The registrar keeps those values with
the binding; a request to that phone then carries them as a pre-loaded Route set (RFC 3261
8.1.2) and goes to the first of them, so it reaches the phone through the proxy whichever
node sends it.  Pure: text in, values out.
"""
from __future__ import annotations

from .uri import SipSyntaxError, SipUri, parse_name_addr

#: The option tag (RFC 3327 4): a REGISTER whose Supported names it gets its Path back.
OPTION_TAG = "path"

_TRANSPORTS = {"tcp": "TCP", "tls": "TLS", "ws": "WS", "wss": "WSS"}


class BadPath(ValueError):
    """A Path value that is not a SIP URI (the REGISTER gets 400)."""


def path_of(request) -> tuple[str, ...]:
    """The request's Path values in order, each checked to name a SIP URI."""
    out = []
    for value in request.headers.get_all("Path"):
        try:
            uri = parse_name_addr(value).uri
        except SipSyntaxError:
            raise BadPath(value) from None
        if not isinstance(uri, SipUri):
            raise BadPath(value)
        out.append(value.strip())
    return tuple(out)


def wants_path_back(request) -> bool:
    """Whether the REGISTER says ``Supported: path`` (then the 200 echoes the Path)."""
    return OPTION_TAG in (t.strip().lower() for t in request.headers.get_all("Supported"))


def first_hop(route: str) -> tuple[str, str, int] | None:
    """(transport, host, port) a request with this Route value first goes to (as
    :func:`ivr.sip.routing.destination_for` for its URI; that module is not pure)."""
    try:
        uri = parse_name_addr(route).uri
    except SipSyntaxError:
        return None
    if not isinstance(uri, SipUri):
        return None
    transport = _TRANSPORTS.get(uri.transport, "UDP")
    port = uri.port or (5061 if transport == "TLS" else 5060)
    return transport, uri.param("maddr") or uri.host_no_brackets, port
