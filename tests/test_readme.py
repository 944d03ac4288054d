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


def test_the_options_table_is_the_engines() -> None:
    """The README's options table lists every option of the engine's table with its default, and the
    typed option list (steadyws.Options) has exactly those options."""
    import steadyws
    from steadyws import _abi

    text = README.read_text()
    rows = dict(re.findall(r"^\| `(\w+)`(?:, `\w+`)? \| (.+?) \|", text, re.M))
    pairs = re.findall(r"^\| `(\w+)`, `(\w+)` \|", text, re.M)
    for first, second in pairs:
        rows[second] = rows[first]
    public = {name: option for name, option in _abi.OPTIONS.items() if not option.internal}
    for name, option in public.items():
        assert name in rows, f"{name} is not in the README's options table"
        if option.default not in ("None",):
            assert rows[name] == f"`{option.default}`", (name, rows[name], option.default)
    assert set(steadyws.Options.__annotations__) == set(public)
