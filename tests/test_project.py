"""The project's promises about itself: CI runs the README's test command, and its rules."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)


def test_readme_opens_with_two_commands():
    cmds = _readme_commands()
    assert len(cmds) == 2
    assert "archs4x demo" in cmds[0]
    assert "pytest" in cmds[1]


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    test_cmd = _readme_commands()[1].strip()
    assert test_cmd in [line.strip() for line in ci]


def test_ci_checks_lint_format_types_and_skips():
    """.ci/run lints, checks the format and types, then runs the suite under CI's rules."""
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    test_line = ci.index(_readme_commands()[1].strip())
    for step in ("ruff check .", "ruff format --check .", "python -m mypy"):
        assert any(line.split("#")[0].strip() == step for line in ci[:test_line]), step
    exports = " ".join(line for line in ci[:test_line] if line.startswith("export "))
    assert "ARCHS4X_CI=1" in exports and "ARCHS4X_HYPOTHESIS_PROFILE=ci" in exports


def _tests_named_in(text: str) -> set[tuple[str, str]]:
    return set(re.findall(r"`(?:tests/)?(test_\w+\.py)::(test_\w+)`", text))


def test_tests_readme_names_only_existing_tests():
    """tests/README.md maps README claims to tests: every test it names exists."""
    text = (ROOT / "tests" / "README.md").read_text()
    named = _tests_named_in(text)
    assert len(named) > 100
    missing = []
    for file, name in sorted(named):
        path = ROOT / "tests" / file
        tree = ast.parse(path.read_text()) if path.exists() else ast.Module(body=[])
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        if name not in defined:
            missing.append(f"{file}::{name}")
    assert not missing, f"tests/README.md names tests that do not exist: {missing}"


def test_allowed_skips_are_documented():
    from .conftest import ALLOWED_SKIPS

    text = (ROOT / "tests" / "README.md").read_text()
    table = text.split("### Allowed skips", 1)[1].split("\n## ", 1)[0]
    for pattern, reason in ALLOWED_SKIPS.items():
        assert reason.strip() and f"`{pattern}`" in table, pattern
    assert ALLOWED_SKIPS or "(none)" in table


@pytest.mark.slow
def test_a_skip_fails_the_run_in_ci(tmp_path):
    """End to end: pytest with tests/conftest.py and ARCHS4X_CI=1 on one pass, one skip."""
    (tmp_path / "test_demo.py").write_text(
        "import pytest\n\ndef test_runs():\n    pass\n\n"
        "def test_skips():\n    pytest.skip('no reason CI accepts')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-q", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=ROOT, env={**os.environ, "ARCHS4X_CI": "1"}, capture_output=True, text=True,
        check=False, timeout=300,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert "1 passed, 1 skipped" in out, out
    assert proc.returncode == 1, out  # pytest alone would exit 0
    assert "test_demo.py::test_skips: no reason CI accepts" in out


def _report(nodeid: str, xfail: bool = False) -> pytest.TestReport:
    report = pytest.TestReport(
        nodeid, (nodeid.split("::")[0], 0, nodeid), {}, "skipped",
        (nodeid.split("::")[0], 3, "Skipped: why"), "call",
    )  # fmt: skip
    if xfail:
        report.wasxfail = "known bug"
    return report


def test_skip_guard_allows_only_the_allow_list():
    from .conftest import SkipGuard

    guard = SkipGuard({"test_a.py::test_allowed*": "a reason"})
    for report in (_report("test_a.py::test_allowed[1]"), _report("test_a.py::test_other"),
                   _report("test_b.py::test_x", xfail=True)):  # fmt: skip
        guard.pytest_runtest_logreport(report)
    assert guard.unexpected == [
        ("test_a.py::test_other", "why (test_a.py:3)"),
        ("test_b.py::test_x", "xfail: known bug"),
    ]
    session = types.SimpleNamespace(exitstatus=pytest.ExitCode.OK)
    guard.pytest_sessionfinish(session)
    assert session.exitstatus == pytest.ExitCode.TESTS_FAILED
    allowed = SkipGuard({"test_a.py::*": "a reason"})
    allowed.pytest_runtest_logreport(_report("test_a.py::test_other"))
    session = types.SimpleNamespace(exitstatus=pytest.ExitCode.OK)
    allowed.pytest_sessionfinish(session)
    assert session.exitstatus == pytest.ExitCode.OK


def test_skip_guard_is_on_exactly_in_ci(request):
    in_ci = os.environ.get("ARCHS4X_CI") == "1"
    is_worker = hasattr(request.config, "workerinput")  # xdist: the controller judges
    registered = request.config.pluginmanager.has_plugin("archs4x-skip-guard")
    assert registered == (in_ci and not is_worker)


def test_py_typed_is_shipped():
    """PEP 561: the package says it is typed, and the marker is in the wheel."""
    assert (ROOT / "archs4x" / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["archs4x"]
    assert config["tool"]["mypy"]["files"] == ["archs4x"]


def test_readme_benchmark_table_is_generated_from_the_results():
    """The README's figures are the results files' figures: `benchmarks/report.py --write`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("report", ROOT / "benchmarks" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    rendered = report.render()
    assert report.readme_section() == rendered, "run: python benchmarks/report.py --write"
    results = {p.name for p in (ROOT / "benchmarks" / "results").glob("*.json")}
    assert len(results) >= 10 and report.USED == results, results - report.USED
