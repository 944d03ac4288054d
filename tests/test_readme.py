"""The README's examples run as they are: each block after an ``<!-- example -->`` marker."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"<!-- example(?P<kind>: pytest)? -->\n```python\n(?P<code>.*?)\n```", re.S)


def examples() -> list[tuple[str, str, str]]:
    text = README.read_text()
    found = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        found.append((f"README.md:{line}", match["kind"] or "", match["code"]))
    return found


def test_the_readme_has_examples() -> None:
    kinds = [kind for _, kind, _ in examples()]
    assert len(kinds) >= 5 and ": pytest" in kinds


@pytest.mark.parametrize(("where", "kind", "code"), examples(), ids=[w for w, _, _ in examples()])
def test_readme_example(where: str, kind: str, code: str, tmp_path: Path) -> None:
    """Run in a fresh interpreter, as a user would: a script, or a pytest module."""
    if kind:
        script = tmp_path / "test_example.py"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(script)]
    else:
        script = tmp_path / "example.py"
        command = [sys.executable, str(script)]
    script.write_text(code + "\n")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, f"{where} failed:\n{result.stdout}\n{result.stderr}"
