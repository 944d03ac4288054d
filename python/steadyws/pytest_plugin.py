"""The pytest plugin of steadyws (registered through the ``pytest11`` entry
point): the ``steadyws_server`` fixture, a fresh :class:`steadyws.testing.Server`
per test, stopped at teardown."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import Server


@pytest.fixture
def steadyws_server() -> Iterator[Server]:
    """A steadyws test server on loopback: reset, blackhole, refuse, flood, close on command."""
    with Server() as server:
        yield server
