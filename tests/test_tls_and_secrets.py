"""TLS options beyond the defaults, concurrent senders, and secrets kept out of sight."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import steadyws
import trustme
from conftest import server_tls_context
from servers import EchoServer


@pytest.fixture(scope="module")
def mtls_server(tls_ca: trustme.CA) -> Iterator[EchoServer]:
    """A wss echo server that requires a client certificate issued by the test CA."""
    context = server_tls_context(tls_ca)
    context.verify_mode = ssl.CERT_REQUIRED
    tls_ca.configure_trust(context)
    server = EchoServer(ssl_context=context)
    yield server
    server.close()


def test_client_certificate_is_presented(
    mtls_server: EchoServer, tls_ca: trustme.CA, ca_file: str, tmp_path: Path
) -> None:
    """cert_file and key_file authenticate the client to a server that requires it (mutual TLS)."""
    pem = tmp_path / "client.pem"
    tls_ca.issue_cert("client@example").private_key_and_cert_chain_pem.write_to_path(str(pem))
    with steadyws.connect(mtls_server.url("/echo"), ca_file=ca_file, cert_file=str(pem), key_file=str(pem)) as ws:
        ws.send("with a client certificate")
        assert ws.recv(timeout=5) == "with a client certificate"


def test_missing_client_certificate_fails(mtls_server: EchoServer, ca_file: str) -> None:
    """Without a client certificate, a server that requires one is not reached."""
    with pytest.raises(steadyws.WebSocketError):
        with steadyws.connect(mtls_server.url("/echo"), ca_file=ca_file, open_timeout=5) as ws:
            ws.send("x")
            ws.recv(timeout=5)


def test_cert_file_without_key_file_is_refused(wss_server: EchoServer, tmp_path: Path) -> None:
    """cert_file alone is a ValueError naming the parameter, before any I/O."""
    with pytest.raises(ValueError, match="cert_file"):
        steadyws.connect(wss_server.url("/echo"), cert_file=str(tmp_path / "c.pem"))


def test_insecure_skip_verify_is_explicit(wss_server: EchoServer) -> None:
    """An untrusted certificate is accepted only with insecure_skip_verify=True."""
    with pytest.raises(steadyws.TLSError):
        steadyws.connect(wss_server.url("/echo"))
    with steadyws.connect(wss_server.url("/echo"), insecure_skip_verify=True) as ws:
        ws.send("unverified")
        assert ws.recv(timeout=5) == "unverified"


def test_concurrent_senders_never_interleave_frames(ws_server: EchoServer) -> None:
    """8 threads sending at once: every message arrives whole (frames are written under one lock)."""
    threads, per_thread = 8, 200
    with steadyws.connect(ws_server.url("/echo"), max_queue=threads * per_thread) as ws:

        def sender(t: int) -> None:
            for i in range(per_thread):
                ws.send(f"{t}:{i}:" + "x" * (i * 37 % 3000))

        workers = [threading.Thread(target=sender, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        got = [ws.recv(timeout=10) for _ in range(threads * per_thread)]
    assert isinstance(got[0], str)
    seen = {tuple(str(m).split(":")[:2]) for m in got}
    assert len(seen) == threads * per_thread
    for m in got:
        t, i, pad = str(m).split(":")
        assert pad == "x" * (int(i) * 37 % 3000)


def test_secrets_stay_out_of_repr_logs_and_errors(ws_server: EchoServer, caplog: pytest.LogCaptureFixture) -> None:
    """URL passwords, query values and header values never appear in reprs, logs or exception messages."""
    caplog.set_level(logging.DEBUG, logger="steadyws")
    port = ws_server.url("/").split(":")[2].split("/")[0]
    url = f"ws://trader:hunter2@127.0.0.1:{port}/echo?apikey=s3cr3t"
    with steadyws.connect(url, headers={"X-API-KEY": "k3y-value"}) as ws:
        text = repr(ws)
    refused = "ws://trader:hunter2@127.0.0.1:1/?apikey=s3cr3t"
    with pytest.raises(steadyws.ConnectionRefused) as err:
        steadyws.connect(refused, headers={"X-API-KEY": "k3y-value"})
    text += str(err.value) + caplog.text
    for secret in ("hunter2", "s3cr3t", "k3y-value"):
        assert secret not in text
    assert "***" in text


def fingerprint(pem: bytes) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.decode())).hexdigest()


@pytest.fixture(scope="module")
def expired_server(tls_ca: trustme.CA) -> Iterator[EchoServer]:
    """A wss echo server whose certificate (from the trusted test CA) expired yesterday."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    yesterday = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    leaf = tls_ca.issue_cert("127.0.0.1", not_before=yesterday - datetime.timedelta(days=30), not_after=yesterday)
    leaf.configure_cert(context)
    server = EchoServer(ssl_context=context)
    yield server
    server.close()


def self_signed_context(tmp_path: Path) -> ssl.SSLContext:
    """A server context whose certificate, for 127.0.0.1, is signed by its own key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    pem = tmp_path / "self-signed.pem"
    pem.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pem))
    return context


def test_self_signed_certificate_is_refused(tmp_path: Path) -> None:
    """A self-signed certificate, right host and dates, fails verification with a TLSError that says why."""
    server = EchoServer(ssl_context=self_signed_context(tmp_path))
    try:
        with pytest.raises(steadyws.TLSError, match="unknown authority"):
            steadyws.connect(server.url("/echo"))
    finally:
        server.close()


def test_expired_certificate_is_refused(expired_server: EchoServer, ca_file: str) -> None:
    """An expired certificate fails verification with a TLSError that says so."""
    with pytest.raises(steadyws.TLSError, match="expired|not valid"):
        steadyws.connect(expired_server.url("/echo"), ca_file=ca_file)


def test_certificate_pinning(wss_server: EchoServer, tls_ca: trustme.CA, ca_file: str) -> None:
    """pin_sha256 accepts only the pinned leaf, on top of chain verification (and instead of it when insecure)."""
    context = ssl.create_default_context()
    tls_ca.configure_trust(context)
    with socket.create_connection(("127.0.0.1", int(wss_server.url("/").split(":")[2].split("/")[0]))) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            leaf = ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True) or b"").encode()
    pin = fingerprint(leaf)
    colons = ":".join(pin[i : i + 2] for i in range(0, 64, 2)).upper()
    with steadyws.connect(wss_server.url("/echo"), ca_file=ca_file, pin_sha256=[colons]) as ws:
        ws.send("pinned")
        assert ws.recv(timeout=5) == "pinned"
    with pytest.raises(steadyws.TLSError, match="pinned"):
        steadyws.connect(wss_server.url("/echo"), ca_file=ca_file, pin_sha256=["00" * 32])
    with steadyws.connect(wss_server.url("/echo"), insecure_skip_verify=True, pin_sha256=[pin]) as ws:
        assert ws.state == "open"
    with pytest.raises(steadyws.TLSError):
        steadyws.connect(wss_server.url("/echo"), insecure_skip_verify=True, pin_sha256=["11" * 32])
    with pytest.raises(ValueError, match="pin_sha256"):
        steadyws.connect(wss_server.url("/echo"), pin_sha256=["not-hex"])
