"""SIP over TLS (RFC 3261 26.2, RFC 5630): certificates, trust and connection options.

The cryptography is pyOpenSSL's (through Twisted's ``CertificateOptions`` and
``optionsForClientTLS``, with ``service_identity`` checking host names); certificates are
read and, when none is given, created with the ``cryptography`` package.  Nothing here
touches a socket: :mod:`.transport` runs the connections.

* The server side (:func:`server_identity`): ``--tls-cert``/``--tls-key`` (PEM), or a
  self-signed certificate for the advertised name, created once in ``DATA/tls``
  (``cert.pem``, ``key.pem``, both 0600) and kept.  A file that cannot be read or is not
  what it should be raises :class:`TlsFileError` naming it; an expired (or not yet valid)
  certificate is logged as a warning, not refused.
* Both sides speak TLS 1.2 or later with forward-secret AEAD cipher suites only
  (:data:`CIPHERS`).
* The client side (:class:`ClientTrust`): a server's certificate is verified against the
  system's CAs, or a destination's own ``ca_file``, and its host name (or IP address)
  checked; SNI names the host when it is a name.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.logger import Logger

log = Logger(namespace="ivr.sip.tls")

#: TLS 1.3's suites (always AEAD), then TLS 1.2's forward-secret AEAD suites only: no RSA
#: key exchange, no CBC, no SHA-1 MACs.
CIPHERS = ("TLS13-AES-256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES-128-GCM-SHA256:"
           "ECDH+AESGCM:ECDH+CHACHA20:DH+AESGCM:DH+CHACHA20:!aNULL:!eNULL:!MD5:!DSS")
DEFAULT_TLS_PORT = 5061  # RFC 3261 26.2: sips and SIP over TLS
SELF_SIGNED_DAYS = 3650


class TlsFileError(Exception):
    """A certificate, key or CA file that cannot be used; ``path`` names it."""

    def __init__(self, path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.message = message


@dataclass(frozen=True)
class ServerIdentity:
    """Our certificate (with any chain after it) and its private key."""

    chain: tuple[x509.Certificate, ...]
    key: object = field(repr=False)
    cert_path: str = ""
    created: bool = False  # made now by server_identity (self-signed)

    @property
    def certificate(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate, as phones show it (``AB:CD:...``)."""
        return self.certificate.fingerprint(hashes.SHA256()).hex(":").upper()

    def names(self) -> list[str]:
        """The DNS names and IP addresses the certificate is for."""
        try:
            san = self.certificate.extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return []
        return ([str(n) for n in san.get_values_for_type(x509.DNSName)]
                + [str(ip) for ip in san.get_values_for_type(x509.IPAddress)])


@dataclass(frozen=True)
class TlsSettings:
    """What the transport needs for TLS: where to listen (None: no listener; outbound
    TLS still works) with which identity, and whom to trust when connecting out."""

    listen: tuple[str, int] | None = None
    identity: ServerIdentity | None = None
    trust: "ClientTrust" = field(default_factory=lambda: ClientTrust())

    def server_options(self):
        return server_options(self.identity)


# -- loading and creating certificates --------------------------------------------------
def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsFileError(path, f"cannot read: {exc.strerror or exc}") from None


def load_certificates(path) -> tuple[x509.Certificate, ...]:
    """Every certificate of a PEM file (a chain or a CA bundle), at least one."""
    path = Path(path)
    data = _read(path)
    try:
        chain = tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        chain = ()
    if not chain:
        raise TlsFileError(path, "no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)")
    return chain


def load_private_key(path):
    path = Path(path)
    data = _read(path)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TlsFileError(path, "the private key is encrypted: give an unencrypted PEM key") from None
    except (ValueError, Exception):  # cryptography raises ValueError / UnsupportedAlgorithm
        raise TlsFileError(path, "not a PEM private key") from None


def _public_bytes(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def load_identity(cert_file, key_file) -> ServerIdentity:
    """The certificate chain and key given by ``--tls-cert``/``--tls-key``."""
    chain = load_certificates(cert_file)
    key = load_private_key(key_file)
    if _public_bytes(key.public_key()) != _public_bytes(chain[0].public_key()):
        raise TlsFileError(key_file, f"this key does not belong to the certificate in {cert_file}")
    return ServerIdentity(chain, key, str(cert_file))


def self_signed(name: str, now: datetime.datetime, days: int = SELF_SIGNED_DAYS):
    """A new P-256 key and a self-signed certificate for ``name`` (a host name or an IP
    address, put in subjectAltName, which is what clients check)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64] or "ivr")])
    try:
        alt = x509.IPAddress(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        alt = x509.DNSName(name)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            # Its own trust anchor (a phone imports it as its CA), as `openssl req -x509` makes.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    path.chmod(0o600)


def ensure_self_signed(directory, name: str, now: datetime.datetime) -> ServerIdentity:
    """``directory/cert.pem`` and ``key.pem``: loaded when they exist, else created for
    ``name`` (the directory 0700, both files 0600)."""
    directory = Path(directory)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    if cert_path.exists() or key_path.exists():
        return load_identity(cert_path, key_path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        key, cert = self_signed(name, now)
        _write_private(key_path, key.private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
        _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    except OSError as exc:
        raise TlsFileError(exc.filename or directory,
                           f"cannot create the self-signed certificate: {exc.strerror or exc}"
                           ) from None
    return ServerIdentity((cert,), key, str(cert_path), created=True)


def validity_problem(cert: x509.Certificate, now: datetime.datetime) -> str | None:
    """"expired on ..." / "not valid before ..." or None."""
    if now > cert.not_valid_after_utc:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    if now < cert.not_valid_before_utc:
        return f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
    return None


def server_identity(*, cert_file=None, key_file=None, data_dir, name: str,
                    now: datetime.datetime | None = None) -> ServerIdentity:
    """The identity ``ivr serve --sips`` presents, with what the admin should know logged:
    a certificate made now (and its fingerprint), an expired one, a name it is not for."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if (cert_file is None) != (key_file is None):
        given = cert_file or key_file
        raise TlsFileError(given, "--tls-cert and --tls-key go together: give both or neither")
    if cert_file is not None:
        identity = load_identity(cert_file, key_file)
    else:
        identity = ensure_self_signed(Path(data_dir) / "tls", name, now)
        if identity.created:
            log.info("created a self-signed TLS certificate for {name} in {path} "
                     "(SHA-256 fingerprint {fp}); phones must be told to trust it, or give "
                     "--tls-cert/--tls-key", name=name, path=identity.cert_path,
                     fp=identity.fingerprint)
    problem = validity_problem(identity.certificate, now)
    if problem:
        log.warn("TLS certificate {path} {problem}: phones and trunks will refuse it",
                 path=identity.cert_path, problem=problem)
    names = identity.names()
    if names and name.strip("[]") not in names:
        log.warn("TLS certificate {path} is for {names}, not for {name}: clients checking "
                 "the host name will refuse it", path=identity.cert_path,
                 names=", ".join(names), name=name)
    log.info("TLS certificate {path}, SHA-256 fingerprint {fp}", path=identity.cert_path,
             fp=identity.fingerprint)
    return identity


def tls_settings(listen: tuple[str, int] | None, cert_file, key_file, data_dir, name: str,
                 trusted=()) -> TlsSettings:
    """What ``ivr serve`` gives the transport: the ``--sips`` listener with its identity
    (none without ``--sips``) and, for each ``(host, port, ca_file)`` in ``trusted`` (the
    TLS trunks), whom to trust there.  Raises :class:`TlsFileError` naming a bad file."""
    if listen is None and (cert_file is not None or key_file is not None):
        raise TlsFileError(cert_file or key_file, "--tls-cert/--tls-key need --sips HOST:PORT")
    identity = None
    if listen is not None:
        identity = server_identity(cert_file=cert_file, key_file=key_file,
                                   data_dir=data_dir, name=name)
    trust = ClientTrust()
    for host, port, ca_file in trusted:
        trust.add(host, port, ca_file)
    return TlsSettings(listen, identity, trust)


# -- connection options (pyOpenSSL through Twisted) -------------------------------------
def _ciphers():
    from twisted.internet.ssl import AcceptableCiphers
    return AcceptableCiphers.fromOpenSSLCipherString(CIPHERS)


def server_options(identity: ServerIdentity):
    """A ``CertificateOptions`` (an ``IOpenSSLServerConnectionCreator``) for the listener."""
    from OpenSSL import crypto
    from twisted.internet.ssl import CertificateOptions, TLSVersion
    # pyOpenSSL takes cryptography's objects for the certificate and key (its own are
    # deprecated); the extra chain still wants its X509.
    return CertificateOptions(
        privateKey=identity.key, certificate=identity.chain[0],
        extraCertChain=[crypto.X509.from_cryptography(c) for c in identity.chain[1:]],
        raiseMinimumTo=TLSVersion.TLSv1_2, acceptableCiphers=_ciphers())


def _trust_root(ca_file):
    if ca_file is None:
        from twisted.internet.ssl import platformTrust
        return platformTrust()
    from twisted.internet.ssl import Certificate, trustRootFromCertificates
    pems = [c.public_bytes(serialization.Encoding.PEM) for c in load_certificates(ca_file)]
    return trustRootFromCertificates([Certificate.loadPEM(p) for p in pems])


class ClientTrust:
    """Whom we trust when we open a TLS connection: per destination ``(host, port)`` a
    ``ca_file`` (else the system's CAs) and the name to check (else the host)."""

    def __init__(self) -> None:
        self._destinations: dict[tuple[str, int], tuple[str | None, str | None]] = {}
        self._roots: dict[str | None, object] = {}
        self._creators: dict[tuple[str, str | None], object] = {}

    def add(self, host: str, port: int, ca_file=None, server_name: str | None = None) -> None:
        """Trust ``ca_file`` for ``host:port``.  The file is read now, so a bad one is an
        error at start (naming the file), not on the first call."""
        ca = None if ca_file is None else str(ca_file)
        if ca not in self._roots:
            self._roots[ca] = _trust_root(ca)
        self._destinations[(host, port)] = (ca, server_name)

    def creator(self, host: str, port: int):
        """The ``IOpenSSLClientConnectionCreator`` for a connection to ``host:port``."""
        ca, name = self._destinations.get((host, port), (None, None))
        name = (name or host).strip("[]")
        key = (name, ca)
        creator = self._creators.get(key)
        if creator is None:
            from twisted.internet.ssl import TLSVersion, optionsForClientTLS
            if ca not in self._roots:
                self._roots[ca] = _trust_root(ca)
            creator = optionsForClientTLS(
                name, trustRoot=self._roots[ca],
                extraCertificateOptions={"raiseMinimumTo": TLSVersion.TLSv1_2,
                                         "acceptableCiphers": _ciphers()})
            self._creators[key] = creator
        return creator


def describe_failure(reason) -> str:
    """A short, printable account of why a TLS connection failed (a ``Failure``)."""
    value = getattr(reason, "value", reason)
    try:
        from OpenSSL.SSL import Error as SslError
    except ImportError:  # pragma: no cover
        SslError = ()
    if isinstance(value, SslError):
        parts = []
        for item in value.args[0] if value.args and isinstance(value.args[0], list) else ():
            if isinstance(item, tuple) and item:
                parts.append(str(item[-1]))
        text = ", ".join(parts) or str(value)
    else:
        text = str(value) or type(value).__name__
    if "VerificationError" in type(value).__name__ or "doesn't match" in text:
        text = f"certificate name check failed: {text}"
    return "".join(ch if 32 <= ord(ch) < 127 else " " for ch in text)[:160]
