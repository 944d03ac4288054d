"""Building from source explains itself: `pip install .` without Go, with a
Go older than go.mod's, with cgo off or without a C compiler stops with one
line that says what is needed, and where the README tells how to get it.

These run pip for real on this source tree. With build isolation (what a
user gets) pip fetches hatchling first; the other cases reuse the hatchling
of the test virtualenv (--no-build-isolation), so each takes about a second.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GO = shutil.which("go")  # ./build.sh test built the wheel with it
README_HINT = "see 'Build from source' in the README"


def required_go() -> str:
    match = re.search(r"^go (\S+)$", (ROOT / "go.mod").read_text(), re.MULTILINE)
    assert match is not None
    return match.group(1)


def pip_install(tmp_path: Path, path_dirs: list[Path], *, isolated: bool = False, **env: str) -> str:
    """`pip install` of the source tree into a scratch target, with only ``path_dirs`` on PATH; its output.
    It must fail: the toolchain check stops it before anything is compiled."""
    args = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(tmp_path / "target"), str(ROOT)]
    if not isolated:
        args.insert(4, "--no-build-isolation")
    environ = {k: v for k, v in os.environ.items() if k not in ("CC", "CGO_ENABLED", "GOROOT")}
    environ.update(env, PATH=os.pathsep.join(map(str, path_dirs)), PIP_DISABLE_PIP_VERSION_CHECK="1")
    done = subprocess.run(args, env=environ, capture_output=True, text=True, timeout=170, check=False)
    out = done.stdout + done.stderr
    assert done.returncode != 0, f"pip install succeeded without a usable toolchain:\n{out}"
    assert not (tmp_path / "target" / "steadyws").exists()
    assert "Traceback" not in out, out
    return out


def the_line(out: str) -> str:
    """The one line of ours in pip's output."""
    ours = [line.strip() for line in out.splitlines() if "building steadyws from source needs" in line]
    assert len(ours) == 1, out
    assert ours[0].startswith("error: ") and ours[0].endswith(README_HINT), ours[0]
    return ours[0]


def fake_go(tmp_path: Path, version: str) -> Path:
    """A bin folder whose `go` says it is ``version`` and passes everything else to the real go."""
    assert GO is not None
    bin_dir = tmp_path / "fake-go"
    bin_dir.mkdir()
    script = bin_dir / "go"
    script.write_text(
        f'#!/bin/sh\nif [ "$1" = version ]; then echo "go version go{version} linux/amd64"; exit 0; fi\n'
        f'exec {GO} "$@"\n'
    )
    script.chmod(0o755)
    return bin_dir


def only_go(tmp_path: Path) -> Path:
    """A bin folder with the real go and nothing else (no C compiler)."""
    assert GO is not None
    bin_dir = tmp_path / "only-go"
    bin_dir.mkdir()
    (bin_dir / "go").symlink_to(GO)
    return bin_dir


def test_without_go_pip_install_says_go_is_needed(tmp_path: Path) -> None:
    """The user's path: build isolation, no go on PATH at all."""
    empty = tmp_path / "empty"
    empty.mkdir()
    line = the_line(pip_install(tmp_path, [empty], isolated=True))
    assert f"needs Go {required_go()} or newer on PATH (no `go` found)" in line


def test_an_older_go_is_named_with_the_version_needed(tmp_path: Path) -> None:
    assert GO is not None
    line = the_line(pip_install(tmp_path, [fake_go(tmp_path, "1.21.0"), Path(GO).parent]))
    assert f"needs Go {required_go()} or newer" in line
    assert "go version go1.21.0" in line


def test_cgo_turned_off_is_named(tmp_path: Path) -> None:
    line = the_line(pip_install(tmp_path, [only_go(tmp_path)], CGO_ENABLED="0"))
    assert "needs cgo, but CGO_ENABLED=0 is set" in line


def test_a_missing_c_compiler_is_named(tmp_path: Path) -> None:
    line = the_line(pip_install(tmp_path, [only_go(tmp_path)]))
    assert "needs a C compiler for cgo (`go env CC` is 'gcc', not found)" in line


def test_the_readme_asks_for_the_go_of_go_mod() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"Go {required_go()}" in readme
    assert "## Build from source" in readme
    assert not re.search(r"Go 1\.(?!26\.8)\d+(\.\d+)?\+", readme), "the README names another Go version"
