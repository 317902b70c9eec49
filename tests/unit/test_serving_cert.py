"""The serving certificate: self-signed by default, from files when given, rotated files
served to new connections without a restart. Checked through real TLS handshakes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509

from rollouts.server.tls import ServingCert, load_serving_cert, self_signed_pem


@pytest.fixture
async def serve() -> AsyncIterator[list[asyncio.Server]]:
    servers: list[asyncio.Server] = []
    yield servers
    for s in servers:
        s.close()
        await s.wait_closed()


async def presented(servers: list[asyncio.Server], cert: ServingCert) -> bytes:
    """The certificate (DER) a new connection is shown."""
    if not servers:
        async def hello(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.close()
        servers.append(await asyncio.start_server(hello, "127.0.0.1", 0, ssl=cert.context))
    port = servers[0].sockets[0].getsockname()[1]
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    _r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client)
    der = w.get_extra_info("ssl_object").getpeercert(binary_form=True)
    w.close()
    return bytes(der)


def _write(d: Path, pem: tuple[bytes, bytes]) -> None:
    """As the kubelet updates a Secret volume: new files swapped in."""
    for name, data in zip(("tls.crt", "tls.key"), pem, strict=True):
        (d / f".{name}.new").write_bytes(data)
        os.replace(d / f".{name}.new", d / name)


async def test_self_signed_by_default_for_loopback_and_this_host(
        serve: list[asyncio.Server]) -> None:
    cert = load_serving_cert(None, None, "10.1.2.3")
    der = await presented(serve, cert)
    assert hashlib.sha256(der).hexdigest() == cert.fingerprint and cert.source == "self-signed"
    sans = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    names = {str(n.value) for n in sans}
    assert {"localhost", "127.0.0.1", "10.1.2.3"} <= names
    # and a client that pins it verifies it for 127.0.0.1
    pem = ssl.DER_cert_to_PEM_cert(der)
    pinned = ssl.create_default_context(cadata=pem)
    port = serve[0].sockets[0].getsockname()[1]
    _r, w = await asyncio.open_connection("127.0.0.1", port, ssl=pinned,
                                          server_hostname="127.0.0.1")
    w.close()


async def test_files_are_served_and_a_rotation_is_picked_up(
        tmp_path: Path, serve: list[asyncio.Server]) -> None:
    first = self_signed_pem(["127.0.0.1"])
    _write(tmp_path, first)
    cert = load_serving_cert(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"), "127.0.0.1")
    assert ssl.DER_cert_to_PEM_cert(await presented(serve, cert)).strip() == first[0].decode().strip()
    assert not cert.reload_if_changed()  # nothing changed

    second = self_signed_pem(["127.0.0.1"])
    _write(tmp_path, second)
    assert cert.reload_if_changed()
    der = await presented(serve, cert)
    assert ssl.DER_cert_to_PEM_cert(der).strip() == second[0].decode().strip()
    assert hashlib.sha256(der).hexdigest() == cert.fingerprint

    # a broken pair (the key of another certificate) is not loaded: still the second one
    _write(tmp_path, (self_signed_pem(["127.0.0.1"])[0], first[1]))
    assert not cert.reload_if_changed()
    assert ssl.DER_cert_to_PEM_cert(await presented(serve, cert)).strip() == \
        second[0].decode().strip()


def test_bad_files_are_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="go together"):
        load_serving_cert(str(tmp_path / "tls.crt"), None, "127.0.0.1")
    with pytest.raises(ValueError, match="cannot load the TLS certificate"):
        load_serving_cert(str(tmp_path / "missing.crt"), str(tmp_path / "missing.key"), "")
    (tmp_path / "tls.crt").write_text("not a certificate")
    (tmp_path / "tls.key").write_text("not a key")
    with pytest.raises(ValueError, match="cannot load the TLS certificate"):
        load_serving_cert(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"), "")
