"""Every Python block of the README runs as written, on the example data.

Each ```python block is a user's copy-and-paste: it runs alone, in a fresh namespace, in an
empty working folder (files it writes land there).  Nothing in the README needs the
internet or a cluster of its own: the real-file and real-cluster variants are comments.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, code) of every ```python block."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_python_blocks_and_all_are_found():
    text = README.read_text(encoding="utf-8")
    assert len(BLOCKS) == text.count("```python") >= 10


@pytest.mark.filterwarnings("error::UserWarning")  # e.g. Zarr's, on a write that should not warn
@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"README.md:{n}" for n, _ in BLOCKS])
def test_readme_python_block_runs_as_written(line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(code, f"README.md:{line}", "exec"), namespace)
    # every block ends in something a reader can look at; that it ran is the claim
    assert namespace.keys() - {"__name__", "__builtins__"}
