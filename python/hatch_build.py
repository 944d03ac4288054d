"""Hatchling build hook: compiles the Go engine into the wheel.

`pip install .` and `./build.sh` both come here. The wheel is tagged
py3-none-<platform>: the package is pure Python over ctypes, so any CPython 3
can use it, but the shared library makes it platform-specific.
"""

from __future__ import annotations

import os
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class GoLibraryHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        out = root / "build" / "lib" / "libsteadyws.so"
        env = dict(os.environ, CGO_ENABLED="1")
        subprocess.run(
            ["go", "build", "-buildmode=c-shared", "-trimpath", "-o", str(out), "./capi"],
            cwd=root,
            env=env,
            check=True,
        )
        build_data["pure_python"] = False
        build_data["tag"] = "py3-none-" + sysconfig.get_platform().replace("-", "_").replace(".", "_")
        build_data["force_include"][str(out)] = "steadyws/libsteadyws.so"
        build_data["force_include"][str(out.with_suffix(".h"))] = "steadyws/libsteadyws.h"
        build_data["force_include"][str(root / "capi" / "sws_abi.h")] = "steadyws/sws_abi.h"
