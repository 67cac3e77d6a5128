"""The console script, run as a user runs it: in a subprocess."""

from __future__ import annotations

import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from archs4x.cli import commands

EXE = shutil.which("archs4x") or ""


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [EXE, *args] if EXE else [sys.executable, "-m", "archs4x", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def test_help_lists_every_subcommand():
    out = run("--help").stdout
    for name in commands():
        assert name in out
    assert "examples:" in out


@pytest.mark.parametrize("name", commands())
def test_every_subcommand_has_help_with_an_example(name):
    out = run(name, "--help").stdout
    assert "usage: archs4x" in out
    assert "example" in out.lower()


def test_demo():
    out = run("demo").stdout
    assert "opened lazily" in out
    assert "'gene': 4500, 'sample': 400" in out
    assert "MYOD1" in out


def test_ls(gene_file):
    out = run("ls", str(gene_file)).stdout
    assert "expression" in out and "(4500, 400)" in out and "geo_accession" in out


def test_errors_are_one_clear_line(tmp_path):
    proc = run("ls", str(tmp_path / "missing.h5"), check=False)
    assert proc.returncode == 1
    assert "missing.h5" in proc.stderr and "Traceback" not in proc.stderr
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"nope" * 100)
    proc = run("ls", str(bad), check=False)
    assert proc.returncode == 1 and "not a readable HDF5 file" in proc.stderr


def test_index(tmp_path, small_file):
    import shutil

    p = shutil.copy(small_file, tmp_path / "i.h5")
    r = run("index", str(p), "--quiet")
    assert r.returncode == 0, r.stderr
    table = np.load(r.stdout.strip())
    with h5py.File(p) as f:
        info = f["data/expression"].id.get_chunk_info_by_coord((2000, 17))
    assert (int(table["offset"][1, 17]), int(table["size"][1, 17])) == (info.byte_offset, info.size)


def test_python_dash_m():
    proc = subprocess.run([sys.executable, "-m", "archs4x", "--version"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0 and "archs4x" in proc.stdout


def test_top_level_help_has_an_example_per_subcommand():
    out = run("--help").stdout
    examples = out.split("examples:", 1)[1]
    for name in commands():
        assert f"archs4x {name}" in examples, name


def test_a_closed_pipe_ends_quietly():
    """``archs4x demo | head -1``: the reader goes away; exit 0, nothing on stderr."""
    cmd = [EXE] if EXE else [sys.executable, "-m", "archs4x"]
    proc = subprocess.Popen([*cmd, "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # what head does after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    assert first.startswith(b"archs4x demo") and err == ""
