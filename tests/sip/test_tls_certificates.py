"""Certificates for ``ivr serve --sips``: the self-signed one made once in --data, given
ones loaded and checked, and a bad file a clear start-up error naming it."""
from __future__ import annotations

import datetime
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from twisted.logger import formatEvent, globalLogPublisher

from ivr.sip.tls import (ClientTrust, TlsFileError, load_identity, self_signed,
                         server_identity, tls_settings)
from tests.test_cli import serve
from tests.test_startup_errors import GOOD_PLAN

NOW = datetime.datetime(2025, 6, 1, tzinfo=datetime.timezone.utc)


@pytest.fixture
def logged():
    events = []
    globalLogPublisher.addObserver(events.append)
    yield lambda: [formatEvent(e) for e in events if e.get("log_namespace") == "ivr.sip.tls"]
    globalLogPublisher.removeObserver(events.append)


def write_pair(directory, name="sip.example.com", now=NOW, days=30):
    key, cert = self_signed(name, now, days=days)
    cert_path, key_path = directory / "c.pem", directory / "k.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_self_signed_certificate_is_made_once_for_the_name_and_kept_private(tmp_path, logged):
    first = server_identity(data_dir=tmp_path, name="192.0.2.10", now=NOW)
    assert first.created and first.cert_path == str(tmp_path / "tls" / "cert.pem")
    for f in ("cert.pem", "key.pem"):
        assert stat.S_IMODE((tmp_path / "tls" / f).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700
    assert first.names() == ["192.0.2.10"]
    fp = first.certificate.fingerprint(hashes.SHA256()).hex(":").upper()
    assert first.fingerprint == fp and len(fp) == 95
    [created, summary] = logged()
    assert created.startswith("created a self-signed TLS certificate for 192.0.2.10 in "
                              f"{tmp_path / 'tls' / 'cert.pem'}")
    assert fp in created and fp in summary
    again = server_identity(data_dir=tmp_path, name="192.0.2.10", now=NOW)
    assert not again.created and again.fingerprint == fp  # the same one, not a new one


def test_a_dns_name_goes_in_subject_alt_name(tmp_path):
    identity = server_identity(data_dir=tmp_path, name="pbx.example.com", now=NOW)
    assert identity.names() == ["pbx.example.com"]
    assert identity.certificate.extensions.get_extension_for_class(
        x509.BasicConstraints).value.ca  # a phone can import it as its own CA


def test_given_certificate_and_key_are_used(tmp_path, logged):
    cert_path, key_path = write_pair(tmp_path)
    identity = server_identity(cert_file=cert_path, key_file=key_path, data_dir=tmp_path,
                               name="sip.example.com", now=NOW)
    assert not identity.created and identity.cert_path == str(cert_path)
    assert not (tmp_path / "tls").exists()
    assert not any("warn" in line or "expired" in line for line in logged())


def test_expired_certificate_is_a_warning_not_a_refusal(tmp_path, logged):
    cert_path, key_path = write_pair(tmp_path, now=NOW - datetime.timedelta(days=100))
    identity = server_identity(cert_file=cert_path, key_file=key_path, data_dir=tmp_path,
                               name="sip.example.com", now=NOW)
    assert identity.cert_path == str(cert_path)
    [warning] = [line for line in logged() if "expired on" in line]
    assert warning.startswith(f"TLS certificate {cert_path} expired on ")


def test_certificate_for_another_name_is_a_warning(tmp_path, logged):
    cert_path, key_path = write_pair(tmp_path, name="other.example.com")
    server_identity(cert_file=cert_path, key_file=key_path, data_dir=tmp_path,
                    name="sip.example.com", now=NOW)
    assert any("is for other.example.com, not for sip.example.com" in line for line in logged())


@pytest.mark.parametrize("which, content, message", [
    ("cert", b"hello", "no PEM certificate in it"),
    ("key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
     "not a PEM private key"),
    ("cert", None, "cannot read: No such file or directory"),
    ("key", None, "cannot read: No such file or directory"),
])
def test_bad_certificate_or_key_file_is_named(tmp_path, which, content, message):
    cert_path, key_path = write_pair(tmp_path)
    bad = cert_path if which == "cert" else key_path
    if content is None:
        bad.unlink()
    else:
        bad.write_bytes(content)
    with pytest.raises(TlsFileError) as info:
        load_identity(cert_path, key_path)
    assert info.value.path == str(bad)
    assert str(info.value).startswith(f"{bad}: {message}")


def test_key_of_another_certificate_and_encrypted_key_are_refused(tmp_path):
    cert_path, _ = write_pair(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, other_key = write_pair(other)
    with pytest.raises(TlsFileError, match="does not belong to the certificate"):
        load_identity(cert_path, other_key)
    key, _ = self_signed("x", NOW)
    other_key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    with pytest.raises(TlsFileError, match="encrypted"):
        load_identity(cert_path, other_key)


def test_cert_without_key_and_files_without_sips_are_refused(tmp_path):
    cert_path, _ = write_pair(tmp_path)
    with pytest.raises(TlsFileError, match="go together"):
        tls_settings(("127.0.0.1", 0), cert_path, None, tmp_path, "127.0.0.1")
    with pytest.raises(TlsFileError, match="need --sips"):
        tls_settings(None, cert_path, None, tmp_path, "127.0.0.1")
    assert tls_settings(None, None, None, tmp_path, "127.0.0.1").listen is None


def test_bad_ca_file_is_refused_when_trusted_not_on_the_first_call(tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(TlsFileError) as info:
        ClientTrust().add("trunk.example.com", 5061, bad)
    assert info.value.path == str(bad)


def _dirs(tmp_path):
    plans, config = tmp_path / "plans", tmp_path / "config"
    plans.mkdir()
    config.mkdir()
    (plans / "a.yaml").write_text(GOOD_PLAN)
    return ["--sip", "127.0.0.1:0", "--http", "127.0.0.1:0", "--dialplans", str(plans),
            "--config", str(config)]


def test_serve_with_a_bad_certificate_stops_naming_the_file(tmp_path):
    cert_path, key_path = write_pair(tmp_path)
    cert_path.write_text("garbage")
    r = serve(tmp_path, *_dirs(tmp_path), "--sips", "127.0.0.1:0", "--tls-cert", str(cert_path),
              "--tls-key", str(key_path))
    assert r.returncode == 2, r.stderr
    assert f"{cert_path}: no PEM certificate in it" in r.stderr
    assert f"not starting: 1 error(s) in {cert_path}" in r.stderr
    assert "Traceback" not in r.stderr


def test_serve_with_a_missing_key_stops_naming_the_file(tmp_path):
    cert_path, key_path = write_pair(tmp_path)
    missing = tmp_path / "nope.pem"
    r = serve(tmp_path, *_dirs(tmp_path), "--sips", "127.0.0.1:0", "--tls-cert", str(cert_path),
              "--tls-key", str(missing))
    assert r.returncode == 2, r.stderr
    assert f"{missing}: cannot read" in r.stderr
    assert "Traceback" not in r.stderr
