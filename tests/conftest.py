"""Shared fixtures: real loopback servers, a private TLS CA, and process counters.

This module deliberately does not import steadyws, so the servers can be
exercised on their own.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme
from helpers import ThreadCounts, open_fd_count, thread_counts
from servers import EchoServer, MisbehavingServer


@pytest.fixture(scope="module")
def ws_server() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    return trustme.CA()


def server_tls_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def wss_server(tls_ca: trustme.CA) -> Iterator[EchoServer]:
    server = EchoServer(ssl_context=server_tls_context(tls_ca))
    yield server
    server.close()


@pytest.fixture(scope="module")
def bad_tls_server(tls_ca: trustme.CA) -> Iterator[MisbehavingServer]:
    """The misbehaving server behind TLS (wss://)."""
    server = MisbehavingServer(ssl_context=server_tls_context(tls_ca))
    yield server
    server.close()


@pytest.fixture(scope="session")
def ca_file(tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def bad_server() -> Iterator[MisbehavingServer]:
    server = MisbehavingServer()
    yield server
    server.close()


@pytest.fixture
def fd_count() -> Callable[[], int]:
    """Callable returning the number of open file descriptors of this process."""
    return open_fd_count


@pytest.fixture
def thread_count() -> Callable[[], ThreadCounts]:
    """Callable returning (Python threads, OS threads) of this process."""
    return thread_counts


@pytest.fixture(scope="module")
def external_echo() -> Iterator[str]:
    """The benchmark's server in its own process, so its threads are not counted as ours."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "bench" / "floodserver.py")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    yield f"ws://127.0.0.1:{port}/echo"
    proc.terminate()
    proc.wait(5)
