"""The serving certificate: from files (a mounted ``kubernetes.io/tls`` Secret) or, when
none is given, a self-signed one made at start, as kube-rbac-proxy and controller-runtime
do. Bearer tokens are never sent over plain HTTP unless the user asks for it.

Certificate files are watched: a rotated pair is served to new connections without a
restart. A generated key never touches the disk: the PEM is handed to OpenSSL through an
anonymous in-memory file where the platform has one (the pod's root filesystem is
read-only anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import socket
import ssl
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

log = logging.getLogger("rollouts.server")


@dataclass
class ServingCert:
    context: ssl.SSLContext
    fingerprint: str  # SHA-256 of the leaf certificate (DER), for pinning
    source: str  # the certificate file, or "self-signed"
    files: tuple[str, str] | None = None  # (cert, key) to watch for rotation
    _stamp: tuple[object, ...] = ()

    def reload_if_changed(self) -> bool:
        """Loads rotated files into the same context (new connections get the new
        certificate; cert-manager and the kubelet swap a Secret's files atomically). A
        broken pair keeps the certificate being served and is logged."""
        if self.files is None:
            return False
        stamp = _stamp(*self.files)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            cert_pem, key_pem = (Path(f).read_bytes() for f in self.files)
            fingerprint = _fingerprint(_first_pem(cert_pem))
            # tried on a scratch context first: a pair that fails half-way would leave
            # the live context with the new certificate and the old key
            with _pem_paths(cert_pem, key_pem) as (cert, key):
                server_context().load_cert_chain(cert, key)
                self.context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError, ValueError) as e:
            log.warning("rotated TLS certificate %s not loaded, still serving the previous "
                        "one: %s", self.files[0], e)
            return False
        self.fingerprint = fingerprint
        log.info("serving the rotated TLS certificate %s (sha256 %s)", self.files[0], fingerprint)
        return True

    async def watch(self, interval: float = 30.0) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()


def _stamp(*paths: str) -> tuple[object, ...]:
    out: list[object] = []
    for p in paths:
        try:
            st = os.stat(p)  # follows the Secret volume's symlinks
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def _first_pem(pem: bytes) -> bytes:
    end = pem.find(b"-----END CERTIFICATE-----")
    if end < 0:
        raise ValueError("no PEM certificate in the file")
    return pem[:end + len(b"-----END CERTIFICATE-----")]


def server_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def serving_names(listen_host: str) -> list[str]:
    """Names a client may use to reach us: the listen address when it is one, this host's
    name, its pod IP ($POD_IP), and loopback."""
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    for extra in (listen_host, os.environ.get("POD_IP", "")):
        if extra and extra not in ("0.0.0.0", "::", "[::]"):
            names.append(extra.strip("[]"))
    return list(dict.fromkeys(n for n in names if n))


def self_signed_pem(names: Sequence[str], *, days: int = 365,
                    now: datetime | None = None) -> tuple[bytes, bytes]:
    """(certificate, private key) in PEM: ECDSA P-256, the names as subjectAltNames."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for n in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rollouts-controller")])
    start = (now or datetime.now(UTC)) - timedelta(minutes=5)  # tolerate clients' clock skew
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


@contextlib.contextmanager
def _pem_paths(cert_pem: bytes, key_pem: bytes) -> Iterator[tuple[str, str]]:
    """Paths OpenSSL can read the PEMs from, gone when the block ends."""
    if hasattr(os, "memfd_create"):
        fds = [os.memfd_create("rollouts-tls-cert"), os.memfd_create("rollouts-tls-key")]
        try:
            for fd, data in zip(fds, (cert_pem, key_pem), strict=True):
                os.write(fd, data)
            yield f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}"
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="rollouts-tls-") as d:  # private (0700)
        cert, key = Path(d, "tls.crt"), Path(d, "tls.key")
        cert.write_bytes(cert_pem)
        key.touch(0o600)
        key.write_bytes(key_pem)
        yield str(cert), str(key)


def _fingerprint(cert_pem: bytes) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert_pem.decode())
    return hashlib.sha256(der).hexdigest()


def load_serving_cert(cert_file: str | None, key_file: str | None,
                      listen_host: str) -> ServingCert:
    """The certificate files when given (both or neither), else a fresh self-signed one."""
    ctx = server_context()
    if cert_file and key_file:
        stamp = _stamp(cert_file, key_file)
        try:
            ctx.load_cert_chain(cert_file, key_file)
            fingerprint = _fingerprint(_first_pem(Path(cert_file).read_bytes()))
        except (OSError, ssl.SSLError, ValueError) as e:
            raise ValueError(f"cannot load the TLS certificate {cert_file} / key {key_file}: "
                             f"{e}") from e
        return ServingCert(ctx, fingerprint, cert_file, (cert_file, key_file), stamp)
    if cert_file or key_file:
        raise ValueError("--tls-cert-file and --tls-private-key-file go together")
    names = serving_names(listen_host)
    cert_pem, key_pem = self_signed_pem(names)
    with _pem_paths(cert_pem, key_pem) as (cert, key):
        ctx.load_cert_chain(cert, key)
    return ServingCert(ctx, _fingerprint(cert_pem), "self-signed")
