"""`python -m steadyws demo`: the feed survives every fault, plain lines off a terminal, one live line on one."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

FAULTS = ("TCP reset", "blackhole", "burst", "503 with Retry-After", "close 1001")


def test_demo_default_run_recovers_from_every_fault(tmp_path: Path) -> None:
    """The README's command: 20 s, every fault noticed and recovered from, a summary, exit 0."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "steadyws", "demo"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert 19 < time.monotonic() - started < 40
    assert result.stderr == ""
    out = result.stdout
    assert "\r" not in out and "\x1b" not in out  # plain lines when stdout is not a terminal
    summary = out.split("what the server did", 1)[1]
    for fault in FAULTS:
        row = next(line for line in summary.splitlines() if line.startswith(fault))
        if fault != "burst":  # a burst disconnects nobody
            *_, noticed, back = (float(v) for v in re.findall(r"(\d+\.\d+) s", row))
            assert noticed < 3 and back < 8, row  # heartbeat: 0.5 s + 0.5 s; margins for a loaded machine
    assert "blackhole" in summary and re.search(r"high-water 2,000", summary)
    received = int(re.search(r"([\d,]+) messages received", summary).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert received > 20_000


def test_demo_on_a_terminal_rewrites_one_line(tmp_path: Path) -> None:
    primary, secondary = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "steadyws", "demo", "--seconds", "3"], stdout=secondary, stderr=secondary, cwd=tmp_path
    ) as proc:
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(30) == 0
    os.close(primary)
    out = b"".join(chunks).decode()
    assert "\r\x1b[K" in out and out.count("\r\x1b[K") > 5  # the status line, rewritten in place
    assert "TCP reset" in out and "what the server did" in out


def test_demo_rejects_bad_seconds(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "steadyws", "demo", "--seconds", "0"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 2 and "--seconds" in result.stderr
