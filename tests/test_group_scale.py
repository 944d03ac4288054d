"""10,000 members in one Group, heartbeats on: under 1 GB of RSS and under
5% of one core while idle, every member heard from once.

The server runs in its own process (steadyws.testing.Server, told what to do
on stdin), so that the memory and CPU measured are the client's alone.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import IO

import pytest
import steadyws

MEMBERS = 10_000
PING = 20.0  # the default heartbeat

SERVER = textwrap.dedent(
    """
    import resource, sys
    from steadyws.testing import Server
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    with Server(max_clients=MAX_CLIENTS) as server:
        print(server.url, flush=True)
        for line in sys.stdin:
            if line.strip() == "send":
                server.send("to every member")
                print("sent", flush=True)
    """
).replace("MAX_CLIENTS", str(MEMBERS + 100))


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


@pytest.fixture
def many_fds() -> Iterator[None]:
    """Room for 10,000 sockets and more: the soft limit raised to the hard
    one, which must allow it (as on the machines this suite runs on)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard >= MEMBERS + 1000, f"RLIMIT_NOFILE hard limit {hard} is too low"
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def server() -> Iterator[tuple[str, IO[str], IO[str]]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        yield proc.stdout.readline().strip(), proc.stdin, proc.stdout
    finally:
        proc.stdin.close()
        proc.wait(30)


@pytest.mark.timeout(240)
def test_ten_thousand_members_idle(many_fds: None, server: tuple[str, IO[str], IO[str]]) -> None:
    """The promise of issue 10: 10,000 members, heartbeats on, under 1 GB and
    under 5% of one core over a whole ping interval; each member pings and
    each gets the server's broadcast, exactly once, through the group."""
    url, commands, answers = server
    rss_before = _rss()
    with steadyws.Group() as group:
        start = time.monotonic()
        members = [group.connect(url, reconnect=False, ping_interval=PING, ping_timeout=PING) for _ in range(MEMBERS)]
        opened = time.monotonic() - start
        assert len(group.members) == MEMBERS

        cpu0, t0 = _cpu(), time.monotonic()
        while time.monotonic() - t0 < PING + 1:  # every member pings once in the window
            assert group.recv_batch(timeout=PING + 1 - (time.monotonic() - t0)) == []
        idle_pct = 100 * (_cpu() - cpu0) / (time.monotonic() - t0)
        rss = _rss()
        pinged = sum(1 for ws in members if ws.stats()["pings_sent"] >= 1)

        commands.write("send\n")
        commands.flush()
        assert answers.readline().strip() == "sent"
        got: dict[int, int] = {}
        deadline = time.monotonic() + 60
        while len(got) < MEMBERS and time.monotonic() < deadline:
            for ws, message in group.recv_batch(max_messages=MEMBERS, timeout=1):
                assert message == "to every member"
                got[id(ws)] = got.get(id(ws), 0) + 1
        print(
            f"{MEMBERS} members opened in {opened:.1f} s; RSS {rss / 2**20:.0f} MiB "
            f"({(rss - rss_before) / 2**20:.0f} MiB for the members); idle CPU {idle_pct:.2f}% of a core"
        )
        assert pinged == MEMBERS, f"only {pinged} members pinged within {PING + 1} s"
        assert rss < 2**30, f"RSS {rss / 2**20:.0f} MiB"
        assert idle_pct < 5, f"idle CPU {idle_pct:.2f}% of a core"
        assert len(got) == MEMBERS and set(got.values()) == {1}, f"{len(got)} members got the broadcast"
        assert {id(ws) for ws in members} == set(got)
    assert group.members == []
