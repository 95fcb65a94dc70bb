"""``media_encryption`` (required | optional | off) per extension, per trunk and for
everyone else, and the ``allow_insecure_srtp_keys`` override: validated at load with the
admin's line and column; ``optional`` when absent."""
from __future__ import annotations

from ivr.config.extensions import parse_extensions

HA1 = "ha1_sha256: " + "a" * 64 + ", ha1_md5: " + "b" * 32


def test_policies_are_read_per_extension_trunk_and_default():
    config, errors = parse_extensions(f"""\
media_encryption: off
extensions:
  "2001": {{{HA1}, media_encryption: required}}
  "2002": {{{HA1}}}
trunks:
  carrier: {{address: sip.example.com, transport: tls, media_encryption: required}}
  legacy: {{address: 192.0.2.1, media_encryption: off}}
""")
    assert errors == []
    assert config.media_encryption == "off"
    assert config.extensions["2001"].media_encryption == "required"
    assert config.extensions["2002"].media_encryption == "optional"
    assert config.trunks["carrier"].media_encryption == "required"
    assert config.trunks["legacy"].media_encryption == "off"
    assert config.allow_insecure_srtp_keys is False


def test_the_defaults_are_optional_and_no_insecure_keys():
    config, errors = parse_extensions("realm: ivr.local\n")
    assert errors == []
    assert config.media_encryption == "optional" and not config.allow_insecure_srtp_keys


def test_bad_values_are_errors_with_line_and_column():
    config, errors = parse_extensions(f"""\
media_encryption: always
allow_insecure_srtp_keys: sometimes
extensions:
  "2001": {{{HA1}, media_encryption: yes}}
""", "ext.yaml")
    assert config is None
    assert [str(e) for e in errors] == [
        "ext.yaml:1:19: media_encryption must be required, optional or off",
        "ext.yaml:2:27: allow_insecure_srtp_keys must be true or false",
        "ext.yaml:4:151: extension '2001' media_encryption must be required, optional or off",
    ]


def test_a_plain_trunk_cannot_require_srtp_without_the_override():
    text = "trunks:\n  carrier: {address: 192.0.2.1, transport: udp, media_encryption: required}\n"
    config, errors = parse_extensions(text, "ext.yaml")
    assert config is None
    (error,) = errors
    assert str(error).startswith("ext.yaml:2:67: trunk 'carrier': media_encryption required "
                                 "needs transport: tls")
    config, errors = parse_extensions("allow_insecure_srtp_keys: true\n" + text)
    assert errors == [] and config.allow_insecure_srtp_keys
    assert config.trunks["carrier"].media_encryption == "required"
