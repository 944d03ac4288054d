"""`python -m steadyws URL` sends stdin lines, prints what it receives, and exits on EOF."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from servers import EchoServer, tagged

EXIT_WITHIN = 10.0  # seconds after stdin reaches EOF


def run_cli(url: str, stdin: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI with ``stdin`` (then EOF); fail if it is still running after EXIT_WITHIN."""
    with subprocess.Popen(
        [sys.executable, "-m", "steadyws", url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    ) as proc:
        try:
            out, err = proc.communicate(stdin, timeout=EXIT_WITHIN)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"CLI still running {EXIT_WITHIN}s after stdin EOF\nstdout: {out}\nstderr: {err}")
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_cli_echo_and_clean_exit(ws_server: EchoServer, tmp_path: Path) -> None:
    """Lines go out, echoes are printed, and EOF on stdin closes the connection (1000) and exits 0."""
    target = tagged("/record-close")
    result = run_cli(ws_server.url(target), "hello\nworld\n", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "hello" in result.stdout
    assert "world" in result.stdout
    assert ws_server.close_event(target).code == 1000


def test_cli_prints_what_the_server_sends(ws_server: EchoServer, tmp_path: Path) -> None:
    """What is printed comes from the server (which upper-cases), not a local copy of stdin."""
    result = run_cli(ws_server.url("/shout"), "hello\nworld\n", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "HELLO" in result.stdout
    assert "WORLD" in result.stdout
