"""Hatchling build hook: compiles the Go engine into the wheel.

`pip install .` and `./build.sh` both come here. The wheel is tagged
py3-none-linux_<arch>: the package is pure Python over ctypes, so any
CPython 3 can use it, but the shared library makes it platform-specific.
`./build.sh` then has auditwheel verify the library against the manylinux
policy it was built for and retag the wheel (manylinux_2_17: built with
`zig cc` for glibc 2.17).

Cross builds: STEADYWS_GOARCH (amd64 or arm64) picks the target, and CC the
C compiler for it (build.sh passes a `zig cc -target ...` wrapper).

Before anything is compiled, the toolchain is checked (check_toolchain):
a missing Go, a Go older than go.mod's, cgo turned off or no C compiler
each stop the build with one line that says what is needed, instead of a
traceback.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sysconfig
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

HOW = "see 'Build from source' in the README"
PLATFORMS = {"amd64": "linux_x86_64", "arm64": "linux_aarch64"}  # GOARCH -> wheel platform tag


class ToolchainError(Exception):
    """What the build needs and does not find, in one line."""


def required_go(root: Path) -> tuple[int, ...]:
    """The Go version go.mod's `go` line asks for."""
    match = re.search(r"^go (\d+(?:\.\d+)*)\s*$", (root / "go.mod").read_text(), re.MULTILINE)
    if match is None:
        raise ToolchainError("go.mod has no go line")
    return tuple(int(part) for part in match.group(1).split("."))


def check_toolchain(root: Path, env: Mapping[str, str]) -> None:
    """Raise ToolchainError unless Go (as new as go.mod's), cgo and a C compiler are there."""
    want = required_go(root)
    want_text = ".".join(map(str, want))
    go = shutil.which("go", path=env.get("PATH"))
    if go is None:
        raise ToolchainError(
            f"building steadyws from source needs Go {want_text} or newer on PATH (no `go` found); {HOW}"
        )
    out = subprocess.run([go, "version"], env=env, capture_output=True, text=True, check=False).stdout
    found = re.search(r"go(\d+(?:\.\d+)*)", out)
    have = tuple(int(part) for part in found.group(1).split(".")) if found else ()
    if have < want:
        raise ToolchainError(
            f"building steadyws from source needs Go {want_text} or newer; `go version` says: {out.strip()}; {HOW}"
        )
    if env.get("CGO_ENABLED", "1") == "0":
        raise ToolchainError(f"building steadyws from source needs cgo, but CGO_ENABLED=0 is set; {HOW}")
    cc = subprocess.run([go, "env", "CC"], env=env, capture_output=True, text=True, check=False).stdout.strip()
    words = shlex.split(cc) if cc else []
    if not words or shutil.which(words[0], path=env.get("PATH")) is None:
        raise ToolchainError(
            f"building steadyws from source needs a C compiler for cgo (`go env CC` is {cc or 'empty'!r}, "
            f"not found); {HOW}"
        )


def platform_tag(goarch: str | None) -> str:
    if goarch is None:
        return sysconfig.get_platform().replace("-", "_").replace(".", "_")
    try:
        return PLATFORMS[goarch]
    except KeyError:
        raise ToolchainError(f"STEADYWS_GOARCH must be one of {', '.join(PLATFORMS)}, not {goarch!r}") from None


class GoLibraryHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        env = dict(os.environ)
        goarch = env.get("STEADYWS_GOARCH")
        try:
            check_toolchain(root, env)
            tag = platform_tag(goarch)
        except ToolchainError as exc:
            raise SystemExit(f"error: {exc}") from None  # one line, no traceback
        env["CGO_ENABLED"] = "1"
        if goarch is not None:
            env["GOARCH"] = goarch
        out = root / "build" / "lib" / (goarch or "host") / "libsteadyws.so"
        subprocess.run(
            ["go", "build", "-buildmode=c-shared", "-trimpath", "-o", str(out), "./capi"],
            cwd=root,
            env=env,
            check=True,
        )
        build_data["pure_python"] = False
        build_data["tag"] = "py3-none-" + tag
        build_data["force_include"][str(out)] = "steadyws/libsteadyws.so"
        build_data["force_include"][str(out.with_suffix(".h"))] = "steadyws/libsteadyws.h"
        build_data["force_include"][str(root / "capi" / "sws_abi.h")] = "steadyws/sws_abi.h"
