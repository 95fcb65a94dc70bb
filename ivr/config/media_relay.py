"""The ``media_relay:`` key of ``config/extensions.yaml``: who relays a bridge's media.

By default (no key, or ``engine: inprocess``) the server relays a bridged call's audio
itself (``ivr/call/bridge.py``, relay on arrival).  With ``engine: rtpengine`` a bridge of
two plain RTP legs in the same codec is handed to rtpengine, controlled over its ng
protocol at ``ng`` (see :mod:`ivr.call.media_relay`):

    media_relay:
      engine: rtpengine        # inprocess (the default) | rtpengine
      ng: 127.0.0.1:2223       # rtpengine's --listen-ng address (IPv4 or [v6], and a port)
      timeout: 1.0             # seconds to wait for an answer before keeping the in-process relay

Validated at load with the admin's line numbers; the reader (``ivr.config.extensions._Reader``)
is passed in, so this module imports nothing from its caller.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

ENGINES = ("inprocess", "rtpengine")
KEYS = ("engine", "ng", "timeout")
DEFAULT_TIMEOUT = 1.0
_HOST_PORT = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<v4>[0-9.]+)):(?P<port>[0-9]{1,5})\Z")


@dataclass(frozen=True)
class MediaRelaySettings:
    engine: str = "inprocess"
    ng_host: str | None = None
    ng_port: int | None = None
    timeout: float = DEFAULT_TIMEOUT


def parse_ng_address(text: str) -> tuple[str, int] | None:
    """``host:port`` (an IP address, IPv6 in brackets) or None when it is not one."""
    m = _HOST_PORT.match(text.strip())
    if m is None:
        return None
    host = m.group("v6") or m.group("v4")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    port = int(m.group("port"))
    return (host, port) if 1 <= port <= 65535 else None


def parse_media_relay(reader, node) -> MediaRelaySettings:
    """The settings under ``media_relay:``; every mistake goes to ``reader.error``."""
    fields = reader.mapping(node, "media_relay", KEYS)
    engine = "inprocess"
    if "engine" in fields:
        enode = fields["engine"][1]
        value = reader.string(enode, "media_relay engine")
        if value is not None and value not in ENGINES:
            reader.error(enode, f"media_relay engine must be one of {', '.join(ENGINES)}, "
                                f"not {value!r}")
        elif value is not None:
            engine = value
    address = None
    if "ng" in fields:
        nnode = fields["ng"][1]
        text = reader.string(nnode, "media_relay ng")
        if text is not None:
            address = parse_ng_address(text)
            if address is None:
                reader.error(nnode, f"media_relay ng {text!r} must be an IP address and a "
                                    "port, e.g. 127.0.0.1:2223")
    timeout = DEFAULT_TIMEOUT
    if "timeout" in fields:
        tnode = fields["timeout"][1]
        try:
            timeout = float(tnode.value) if getattr(tnode, "tag", "").endswith((":int", ":float")) \
                else None
        except (TypeError, ValueError):
            timeout = None
        if timeout is None or not 0.05 <= timeout <= 30:
            reader.error(tnode, "media_relay timeout must be a number of seconds from 0.05 to 30")
            timeout = DEFAULT_TIMEOUT
    if engine == "rtpengine" and "ng" not in fields:
        reader.error(node, "media_relay engine rtpengine needs ng: its control address "
                           "(e.g. 127.0.0.1:2223)")
    if engine == "inprocess" and "ng" in fields:
        reader.error(fields["ng"][0], "media_relay ng is only used with engine: rtpengine")
    if address is None:
        return MediaRelaySettings(engine if engine == "inprocess" else "inprocess",
                                  timeout=timeout)
    return MediaRelaySettings(engine, address[0], address[1], timeout)
