"""The ``media_relay:`` key of config/extensions.yaml."""
from __future__ import annotations

import pytest

from ivr.config.extensions import parse_extensions
from ivr.config.media_relay import MediaRelaySettings, parse_ng_address


def relay(text):
    config, errors = parse_extensions(text, "ext.yaml")
    assert not errors, errors
    return config.media_relay


def errors_of(text):
    config, errors = parse_extensions(text, "ext.yaml")
    assert config is None
    return [str(e) for e in errors]


def test_default_is_the_in_process_relay():
    assert relay("realm: x\n") == MediaRelaySettings("inprocess", None, None, 1.0)
    assert relay("media_relay: {engine: inprocess}\n").engine == "inprocess"


def test_rtpengine():
    assert relay("media_relay: {engine: rtpengine, ng: 127.0.0.1:2223}\n") == \
        MediaRelaySettings("rtpengine", "127.0.0.1", 2223, 1.0)
    assert relay("media_relay:\n  engine: rtpengine\n  ng: '[::1]:2223'\n  timeout: 0.5\n") == \
        MediaRelaySettings("rtpengine", "::1", 2223, 0.5)


@pytest.mark.parametrize("text, message", [
    ("media_relay: {engine: rtpengine}\n", "ext.yaml:1:14: media_relay engine rtpengine needs ng"),
    ("media_relay: {engine: kurento, ng: 127.0.0.1:1}\n",
     "ext.yaml:1:23: media_relay engine must be one of inprocess, rtpengine, not 'kurento'"),
    ("media_relay:\n  engine: rtpengine\n  ng: localhost:2223\n",
     "ext.yaml:3:7: media_relay ng 'localhost:2223' must be an IP address and a port"),
    ("media_relay: {engine: rtpengine, ng: 127.0.0.1:70000}\n", "ext.yaml:1:38: media_relay ng"),
    ("media_relay: {engine: rtpengine, ng: 127.0.0.1}\n", "ext.yaml:1:38: media_relay ng"),
    ("media_relay: {engine: rtpengine, ng: 127.0.0.1:2223, timeout: 0}\n",
     "ext.yaml:1:63: media_relay timeout must be a number of seconds from 0.05 to 30"),
    ("media_relay: {engine: rtpengine, ng: 127.0.0.1:2223, timeout: soon}\n",
     "ext.yaml:1:63: media_relay timeout"),
    ("media_relay: {engine: rtpengine, ng: 127.0.0.1:2223, port: 3}\n",
     "ext.yaml:1:54: unknown key 'port' in media_relay"),
    ("media_relay: {ng: 127.0.0.1:2223}\n",
     "ext.yaml:1:15: media_relay ng is only used with engine: rtpengine"),
    ("media_relay: rtpengine\n", "ext.yaml:1:14: media_relay must be a mapping"),
])
def test_mistakes_have_their_line_and_column(text, message):
    assert any(e.startswith(message) for e in errors_of(text)), errors_of(text)


def test_ng_addresses():
    assert parse_ng_address("10.0.0.1:22222") == ("10.0.0.1", 22222)
    assert parse_ng_address("[2001:db8::1]:2223") == ("2001:db8::1", 2223)
    for bad in ("999.1.1.1:1", "1.2.3.4:0", "1.2.3.4:", ":2223", "[zz]:1", "1.2.3.4:2223x"):
        assert parse_ng_address(bad) is None
