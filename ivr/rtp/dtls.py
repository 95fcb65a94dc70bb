"""DTLS-SRTP (RFC 5763, RFC 5764) for one media stream: the handshake over memory BIOs,
the peer's certificate checked against the SDP's ``a=fingerprint``, and the SRTP keys
exported from it.  Datagrams in, datagrams and keys out; the DTLS is pyOpenSSL's.

Roles (RFC 5763 5): ``a=setup:active`` is the DTLS client, ``passive`` the server.  We
answer ``passive`` to an ``actpass`` offer, so the browser connects; an offer that says
``passive`` makes us ``active`` (we send the ClientHello from :meth:`DtlsEndpoint.start`).

Certificates are self-signed (the fingerprint in the signalling is the trust):
:class:`DtlsCertificate` makes a P-256 one, its SDP fingerprint is
``sha-256 AB:CD:...``.  The peer must present a certificate (we ask for it as the server),
and its fingerprint, in the hash the SDP named (sha-1, sha-224, sha-256, sha-384 or
sha-512), must match: a mismatch fails the handshake with an alert and no keys are made.

Keys (RFC 5764 4.2): ``EXTRACTOR-dtls_srtp`` gives client key | server key | client salt |
server salt for the negotiated ``use_srtp`` profile (SRTP_AES128_CM_SHA1_80); the client
sends with the client's key and salt.  :attr:`DtlsEndpoint.keys` is a :class:`DtlsSrtpKeys`
(suite, local_key, remote_key), which ``SrtpContext.from_keys`` takes.

Retransmission: :meth:`DtlsEndpoint.timeout` is how long until the handshake wants
:meth:`DtlsEndpoint.handle_timeout` (OpenSSL's DTLSv1_get_timeout: 1 s doubling to 60 s);
the owner schedules it on its reactor.  OpenSSL keeps the deadline itself, in real time.

Outgoing bytes are cut into datagrams of whole DTLS records no larger than ``mtu``.
Application data after the handshake (a data channel) is not supported and is discarded.
No Twisted, no socket, no clock read here.
"""
from __future__ import annotations

import datetime
import enum
import struct
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

__all__ = ["DtlsCertificate", "DtlsEndpoint", "DtlsRole", "DtlsState", "DtlsSrtpKeys",
           "DtlsError", "FingerprintMismatch", "fingerprint", "parse_fingerprint", "HASHES", "SRTP_PROFILES"]

#: SDP hash function name (RFC 8122) -> cryptography hash
HASHES = {"sha-1": hashes.SHA1, "sha-224": hashes.SHA224, "sha-256": hashes.SHA256,
          "sha-384": hashes.SHA384, "sha-512": hashes.SHA512}
#: use_srtp profile -> (SRTP suite name as ivr.rtp.srtp knows it, key length, salt length)
SRTP_PROFILES = {b"SRTP_AES128_CM_SHA1_80": ("AES_CM_128_HMAC_SHA1_80", 16, 14)}
_RECORD_HEADER = struct.Struct("!B2s6sH")  # type, version, epoch+sequence, length
DEFAULT_MTU = 1200


class DtlsError(Exception):
    """The peer's handshake failed (bad message, alert, no common profile)."""


class FingerprintMismatch(DtlsError):
    """The peer's certificate is not the one the SDP's a=fingerprint named."""


class DtlsRole(enum.Enum):
    CLIENT = "active"
    SERVER = "passive"


class DtlsState(enum.Enum):
    NEW = "new"
    HANDSHAKING = "handshaking"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True)
class DtlsSrtpKeys:
    suite: str
    local_key: bytes   # master key + salt we send with
    remote_key: bytes  # the peer's

    def __repr__(self) -> str:  # never the keys
        return f"DtlsSrtpKeys({self.suite})"


def fingerprint(cert: x509.Certificate, algorithm: str = "sha-256") -> str:
    """``AB:CD:...`` (upper-case hex) of the DER certificate."""
    digest = cert.fingerprint(HASHES[algorithm]())
    return ":".join(f"{b:02X}" for b in digest)


class DtlsCertificate:
    """Our key and self-signed certificate; made once per server, shared by every stream."""

    def __init__(self, key, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert

    @classmethod
    def generate(cls, now: datetime.datetime, days: int = 30) -> "DtlsCertificate":
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ivr-webrtc")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=days))
                .sign(key, hashes.SHA256()))
        return cls(key, cert)

    @property
    def sdp_fingerprint(self) -> str:
        """The ``a=fingerprint`` value: ``sha-256 AB:CD:...``."""
        return f"sha-256 {fingerprint(self.cert)}"


def parse_fingerprint(value: str) -> tuple[str, str]:
    """``a=fingerprint`` value -> (hash name, upper-case hex with colons); ValueError if bad."""
    parts = value.split()
    if len(parts) != 2 or parts[0].lower() not in HASHES:
        raise ValueError(f"unusable a=fingerprint {value!r}")
    algorithm, digest = parts[0].lower(), parts[1].upper()
    octets = digest.split(":")
    size = HASHES[algorithm].digest_size
    if len(octets) != size or not all(len(o) == 2 and all(c in "0123456789ABCDEF" for c in o)
                                      for o in octets):
        raise ValueError(f"unusable a=fingerprint {value!r}")
    return algorithm, digest


class DtlsEndpoint:
    """One DTLS-SRTP association (see the module docstring)."""

    def __init__(self, certificate: DtlsCertificate, role: DtlsRole,
                 remote_fingerprint: tuple[str, str], mtu: int = DEFAULT_MTU) -> None:
        self.role = role
        self.remote_fingerprint = remote_fingerprint
        self.mtu = mtu
        self.state = DtlsState.NEW
        self.keys: DtlsSrtpKeys | None = None
        self.error: DtlsError | None = None
        self._mismatch = False
        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.set_options(SSL.OP_NO_QUERY_MTU)
        ctx.use_certificate(certificate.cert)
        ctx.use_privatekey(certificate.key)
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verify)
        ctx.set_tlsext_use_srtp(b":".join(SRTP_PROFILES))
        conn = SSL.Connection(ctx, None)  # memory BIOs
        conn.set_ciphertext_mtu(mtu)
        if role is DtlsRole.CLIENT:
            conn.set_connect_state()
        else:
            conn.set_accept_state()
        self._conn = conn

    # ------------------------------------------------------------------ verification
    def _verify(self, conn, cert, errno, depth, ok) -> bool:
        if depth != 0:
            return True  # only the peer's own certificate is pinned
        algorithm, expected = self.remote_fingerprint
        if fingerprint(cert.to_cryptography(), algorithm) != expected:
            self._mismatch = True
            return False
        return True  # self-signed is expected: the fingerprint is the trust

    # ------------------------------------------------------------------ driving
    def start(self) -> list[bytes]:
        """Begin the handshake: the client's ClientHello; nothing for the server."""
        if self.state is not DtlsState.NEW:
            return []
        self.state = DtlsState.HANDSHAKING
        if self.role is DtlsRole.CLIENT:
            self._handshake()
        return self._outgoing()

    def receive(self, data: bytes) -> list[bytes]:
        """A DTLS datagram from the peer: the datagrams to send back."""
        if self.state in (DtlsState.FAILED, DtlsState.CLOSED):
            return []
        if self.state is DtlsState.NEW:
            self.state = DtlsState.HANDSHAKING
        self._conn.bio_write(data)
        if self.state is DtlsState.HANDSHAKING:
            self._handshake()
        else:
            self._read_application()
        return self._outgoing()

    def timeout(self) -> float | None:
        """Seconds until :meth:`handle_timeout` is due (None: no retransmission pending)."""
        if self.state is not DtlsState.HANDSHAKING:
            return None
        return self._conn.DTLSv1_get_timeout()

    def handle_timeout(self) -> list[bytes]:
        """Retransmit the last flight if its timer ran out; the datagrams to send."""
        if self.state is not DtlsState.HANDSHAKING:
            return []
        try:
            self._conn.DTLSv1_handle_timeout()
        except SSL.Error as e:
            self._fail(DtlsError(f"DTLS retransmission failed: {e}"))
        return self._outgoing()

    def close(self) -> list[bytes]:
        """Send close_notify (when connected) and stop."""
        if self.state is DtlsState.CONNECTED:
            try:
                self._conn.shutdown()
            except SSL.Error:
                pass
        self.state = DtlsState.CLOSED
        return self._outgoing()

    # ------------------------------------------------------------------ internals
    def _handshake(self) -> None:
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            return
        except SSL.Error as e:
            if self._mismatch:
                self._fail(FingerprintMismatch(
                    "the peer's DTLS certificate does not match the SDP a=fingerprint"))
            else:
                self._fail(DtlsError(f"DTLS handshake failed: {e}"))
            return
        self._connected()

    def _connected(self) -> None:
        conn = self._conn
        peer = conn.get_peer_certificate()
        algorithm, expected = self.remote_fingerprint
        if peer is None or fingerprint(peer.to_cryptography(), algorithm) != expected:
            self._fail(FingerprintMismatch(
                "the peer's DTLS certificate does not match the SDP a=fingerprint"))
            return
        profile = conn.get_selected_srtp_profile()
        if profile not in SRTP_PROFILES:
            self._fail(DtlsError("the peer negotiated no SRTP profile (use_srtp) we run"))
            return
        suite, key_len, salt_len = SRTP_PROFILES[profile]
        material = conn.export_keying_material(b"EXTRACTOR-dtls_srtp", 2 * (key_len + salt_len))
        client_key, rest = material[:key_len], material[key_len:]
        server_key, rest = rest[:key_len], rest[key_len:]
        client_salt, server_salt = rest[:salt_len], rest[salt_len:]
        client, server = client_key + client_salt, server_key + server_salt
        if self.role is DtlsRole.CLIENT:
            self.keys = DtlsSrtpKeys(suite, client, server)
        else:
            self.keys = DtlsSrtpKeys(suite, server, client)
        self.state = DtlsState.CONNECTED

    def _read_application(self) -> None:
        try:
            while self._conn.recv(65536):
                pass  # no data channels: application data is discarded
        except SSL.WantReadError:
            pass
        except SSL.ZeroReturnError:
            self.state = DtlsState.CLOSED
        except SSL.Error:
            pass  # a damaged or replayed record is dropped, the association stays

    def _fail(self, error: DtlsError) -> None:
        self.error = error
        self.state = DtlsState.FAILED

    def _outgoing(self) -> list[bytes]:
        """What OpenSSL wrote, cut into datagrams of whole records up to ``mtu`` bytes."""
        pending = b""
        while True:
            try:
                chunk = self._conn.bio_read(65536)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            pending += chunk
        datagrams: list[bytes] = []
        current = b""
        pos = 0
        while pos + _RECORD_HEADER.size <= len(pending):
            length = _RECORD_HEADER.unpack_from(pending, pos)[3]
            record = pending[pos:pos + _RECORD_HEADER.size + length]
            pos += len(record)
            if current and len(current) + len(record) > self.mtu:
                datagrams.append(current)
                current = b""
            current += record
        if current:
            datagrams.append(current)
        return datagrams
