"""The ``webrtc:`` key of ``config/extensions.yaml``: what anonymous browser callers may do.

An anonymous browser caller is an INVITE that arrives over SIP over WebSocket (``ws`` or
``wss``, RFC 7118) from someone who did not authenticate as an extension: the visitor of
the ``/demo/webrtc`` page or of a site embedding it.  Such a caller may only dial the
``targets`` listed here, at most ``calls_per_minute`` new calls per minute and
``max_concurrent_per_visitor`` calls at once from one source address, and never leaves
through a trunk (the policy itself is :mod:`ivr.call.visitors`).  Extensions that
register over WebSocket with digest authentication are not limited by any of this.

    webrtc:
      targets: ["+18005550100", "+15550000001", echo]
      calls_per_minute: 6
      max_concurrent_per_visitor: 2

Validated at load with the admin's line numbers, like every other key of the file; the
reader (``ivr.config.extensions._Reader``) is passed in, so this module imports nothing
from its caller.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

#: The bundled demo lines: the toll-free menu (dialplans/tollfree.yaml) and the echo
#: line, by number and by name (dialplans/echo.yaml).
DEFAULT_TARGETS = ("+18005550100", "+15550000001", "echo")
DEFAULT_CALLS_PER_MINUTE = 6
DEFAULT_MAX_CONCURRENT = 2
#: A target as a browser can dial it: a number (``+``, digits, separators) or a name.
TARGET_RE = re.compile(r"[A-Za-z0-9+*#._() -]{1,64}\Z")
KEYS = ("targets", "calls_per_minute", "max_concurrent_per_visitor")


@dataclass(frozen=True)
class WebrtcVisitorSettings:
    """What an anonymous browser caller may do (see the module docstring)."""
    targets: tuple[str, ...] = DEFAULT_TARGETS
    calls_per_minute: int = DEFAULT_CALLS_PER_MINUTE
    max_concurrent_per_visitor: int = DEFAULT_MAX_CONCURRENT


def parse_webrtc(reader, node) -> WebrtcVisitorSettings:
    """The settings under ``webrtc:`` (``node``), the defaults for what is absent; every
    mistake goes to ``reader.error(node, message)``."""
    fields = reader.mapping(node, "webrtc", KEYS)
    values: dict = {}
    if "targets" in fields:
        tnode = fields["targets"][1]
        targets = reader.strings(tnode, "webrtc targets", TARGET_RE)
        seen = set()
        for target in targets:
            if target.lower() in seen:
                reader.error(tnode, f"webrtc targets: {target!r} is listed twice")
            seen.add(target.lower())
        values["targets"] = targets  # an empty list: browser callers may call nothing
    if "calls_per_minute" in fields:
        values["calls_per_minute"] = reader.integer(
            fields["calls_per_minute"][1], "webrtc calls_per_minute", 1, 10000)
    if "max_concurrent_per_visitor" in fields:
        values["max_concurrent_per_visitor"] = reader.integer(
            fields["max_concurrent_per_visitor"][1], "webrtc max_concurrent_per_visitor",
            1, 1000)
    return WebrtcVisitorSettings(**{k: v for k, v in values.items() if v is not None})
