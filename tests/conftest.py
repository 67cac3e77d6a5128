"""Shared fixtures: real files in the exact ARCHS4 layout, written by archs4x.datasets.

Also the suite's CI rules (see tests/README.md): the Hypothesis profile named by
``ARCHS4X_HYPOTHESIS_PROFILE`` is loaded, and with ``ARCHS4X_CI=1`` a test that skips
(or xfails) without an entry in :data:`ALLOWED_SKIPS` fails the run.
"""

from __future__ import annotations

import fnmatch
import os

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from archs4x.datasets import example_file, write_archs4_file


@pytest.fixture(scope="session")
def gene_file():
    """The embedded example: 4,500 genes x 400 samples, gzip, chunks (2000, 1)."""
    return example_file()


@pytest.fixture(scope="session")
def transcript_file():
    return example_file("transcript", n_genes=3_000, n_samples=120)


@pytest.fixture(scope="session")
def small_file(tmp_path_factory):
    """A small file (2,500 genes x 60 samples) for tests that modify or copy files."""
    p = tmp_path_factory.mktemp("small") / "small_gene.h5"
    return write_archs4_file(p, n_genes=2_500, n_samples=60, seed=3)


@pytest.fixture(scope="session")
def gene_matrix(gene_file):
    """The full counts of the example file, read by h5py: the reference for reads."""
    with h5py.File(gene_file, "r") as f:
        return np.asarray(f["data/expression"][:])


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A real Dask cluster: ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1.

    Yields a connected ``distributed.Client``.
    """
    import os
    import shutil
    import subprocess
    import sys
    import time

    from distributed import Client

    tmp = tmp_path_factory.mktemp("cluster")
    sched_file = tmp / "scheduler.json"
    dask_cli = shutil.which("dask") or "dask"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [
        subprocess.Popen(
            [dask_cli, "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--dashboard-address", ":0", "--scheduler-file", str(sched_file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp,
        )
    ]  # fmt: skip
    deadline = time.monotonic() + 60
    while not sched_file.exists():
        if time.monotonic() > deadline or procs[0].poll() is not None:
            for p in procs:
                p.kill()
            pytest.fail("dask scheduler did not start")
        time.sleep(0.1)
    for i in range(2):
        procs.append(
            subprocess.Popen(
                [dask_cli, "worker", "--scheduler-file", str(sched_file), "--nthreads", "1",
                 "--nworkers", "1", "--memory-limit", "2GiB", "--host", "127.0.0.1",
                 "--name", f"w{i}", "--local-directory", str(tmp / f"w{i}")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp,
            )
        )  # fmt: skip
    client = Client(scheduler_file=str(sched_file), timeout=60, set_as_default=False)
    try:
        client.wait_for_workers(2, timeout=90)
        yield client
    finally:
        client.close()
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        del sys  # quiet linters about the unused import on some paths


# -- Hypothesis profiles -------------------------------------------------------------------
# "dev" is Hypothesis' default (100 examples for tests that do not set max_examples).
# "ci" (.ci/run) runs 4x as many: tests that set their own count scale it with
# tests._hypothesis.examples(n), so CI explores the property tests that matter more deeply.
settings.register_profile("dev", settings.get_profile("default"))
settings.register_profile(
    "ci",
    max_examples=400,
    deadline=None,  # a shared 2-core machine: timing is no property of the code
    print_blob=True,  # a failure prints the line that reproduces it
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("ARCHS4X_HYPOTHESIS_PROFILE", "dev"))


# -- CI: no unexplained skips ---------------------------------------------------------------
#: Skips CI accepts, as node-id patterns (fnmatch) -> why the skip is legitimate.  Every
#: other skip or xfail fails the run when ARCHS4X_CI=1 (tests/README.md lists these too).
ALLOWED_SKIPS: dict[str, str] = {}


class SkipGuard:
    """Turn skips and xfails outside :data:`ALLOWED_SKIPS` into a failed run."""

    def __init__(self, allowed: dict[str, str]) -> None:
        self.allowed = allowed
        self.unexpected: list[tuple[str, str]] = []

    def _record(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        if not report.skipped:
            return
        if any(fnmatch.fnmatchcase(report.nodeid, pattern) for pattern in self.allowed):
            return
        longrepr = report.longrepr
        if hasattr(report, "wasxfail"):
            reason = f"xfail: {report.wasxfail}"
        elif isinstance(longrepr, tuple) and len(longrepr) == 3:
            reason = f"{longrepr[2].removeprefix('Skipped: ')} ({longrepr[0]}:{longrepr[1]})"
        else:
            reason = str(longrepr).splitlines()[-1] if longrepr else "skipped"
        self.unexpected.append((report.nodeid or "<collection>", reason))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.unexpected and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.unexpected:
            return
        terminalreporter.section("skips not allowed in CI (ARCHS4X_CI=1)", red=True, bold=True)
        for nodeid, reason in self.unexpected:
            terminalreporter.line(f"{nodeid}: {reason}")
        terminalreporter.line(
            f"{len(self.unexpected)} unexpected skip(s): make the test run, or add it to "
            "ALLOWED_SKIPS in tests/conftest.py with the reason (and to tests/README.md)."
        )


def pytest_configure(config: pytest.Config) -> None:
    # xdist workers forward their reports to the controller, which judges them once.
    if os.environ.get("ARCHS4X_CI") == "1" and not hasattr(config, "workerinput"):
        config.pluginmanager.register(SkipGuard(ALLOWED_SKIPS), "archs4x-skip-guard")
