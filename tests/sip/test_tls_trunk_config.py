"""``transport: tls`` and ``ca_file`` for trunks in config/extensions.yaml."""
from __future__ import annotations

import datetime

from cryptography.hazmat.primitives import serialization

from ivr.config.extensions import load_extensions, parse_extensions
from ivr.sip.tls import self_signed


def trunk_yaml(extra: str, address: str = "sip.carrier.example") -> str:
    return f"trunks:\n  carrier:\n    address: {address}\n{extra}"


def test_tls_trunk_defaults_to_port_5061_and_the_system_cas():
    cfg, errors = parse_extensions(trunk_yaml("    transport: TLS\n"), "x.yaml")
    assert errors == []
    trunk = cfg.trunks["carrier"]
    assert (trunk.transport, trunk.port, trunk.ca_file) == ("tls", 5061, None)
    cfg, _ = parse_extensions(trunk_yaml("    transport: tls\n", "h.example:5071"), "x.yaml")
    assert cfg.trunks["carrier"].port == 5071
    cfg, _ = parse_extensions(trunk_yaml("    transport: tcp\n"), "x.yaml")
    assert cfg.trunks["carrier"].port == 5060


def test_ca_file_is_read_relative_to_the_config_file(tmp_path):
    _, cert = self_signed("sip.carrier.example", datetime.datetime.now(datetime.timezone.utc))
    (tmp_path / "carrier-ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path = tmp_path / "extensions.yaml"
    path.write_text(trunk_yaml("    transport: tls\n    ca_file: carrier-ca.pem\n"))
    cfg, errors = load_extensions(path)
    assert errors == []
    assert cfg.trunks["carrier"].ca_file == str(tmp_path / "carrier-ca.pem")


def test_bad_transport_and_ca_file_are_errors_with_their_line(tmp_path):
    _, errors = parse_extensions(trunk_yaml("    transport: dtls\n"), "x.yaml")
    assert [str(e) for e in errors] == [
        "x.yaml:4:16: trunk 'carrier' transport must be udp, tcp or tls"]
    (tmp_path / "bad.pem").write_text("hello")
    path = tmp_path / "extensions.yaml"
    path.write_text(trunk_yaml("    transport: tls\n    ca_file: bad.pem\n"))
    _, errors = load_extensions(path)
    assert [str(e) for e in errors] == [
        f"{path}:5:14: trunk 'carrier' ca_file {tmp_path / 'bad.pem'}: no PEM certificate in it"]
    path.write_text(trunk_yaml("    transport: tls\n    ca_file: missing.pem\n"))
    _, errors = load_extensions(path)
    assert "missing.pem: cannot read: No such file or directory" in str(errors[0])
    path.write_text(trunk_yaml("    transport: udp\n    ca_file: bad.pem\n"))
    _, errors = load_extensions(path)
    assert "ca_file is for transport: tls" in str(errors[0])
