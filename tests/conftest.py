"""Shared fixtures: real files in the exact ARCHS4 layout, written by archs4x.datasets."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

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
