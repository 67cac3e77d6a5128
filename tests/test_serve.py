"""``archs4x.datasets.serve_http``: byte ranges as S3 serves them, nothing outside the folder;
and a process that read a remote file exits cleanly."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import requests

import archs4x
from archs4x.datasets import serve_http


def test_ranges_validators_and_the_folder_boundary(tmp_path):
    (tmp_path / "inner").mkdir()
    data = bytes(range(256)) * 40
    (tmp_path / "inner" / "f.bin").write_bytes(data)
    (tmp_path / "secret").write_bytes(b"no")
    with serve_http(tmp_path / "inner") as base:
        whole = requests.get(base + "f.bin", timeout=10)
        assert whole.status_code == 200 and whole.content == data
        part = requests.get(base + "f.bin", headers={"Range": "bytes=10-19"}, timeout=10)
        assert part.status_code == 206 and part.content == data[10:20]
        assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
        tail = requests.get(base + "f.bin", headers={"Range": "bytes=-5"}, timeout=10)
        assert tail.content == data[-5:]
        etag = whole.headers["ETag"]
        same = requests.get(base + "f.bin", headers={"Range": "bytes=0-0", "If-Range": etag})
        assert same.status_code == 206 and same.content == data[:1]
        other = requests.get(base + "f.bin", headers={"Range": "bytes=0-0", "If-Range": '"x"'})
        assert other.status_code == 200 and other.content == data  # changed: the whole file
        beyond = requests.get(base + "f.bin", headers={"Range": f"bytes={len(data)}-"})
        assert beyond.status_code == 416
        for escape in ["../secret", "%2e%2e/secret", "..%2fsecret", "nothere"]:
            assert requests.get(base + escape, timeout=10).status_code == 404


def test_a_remote_read_equals_h5py_on_the_file():
    path = archs4x.datasets.example_file()
    with serve_http(path.parent) as base:
        ds = archs4x.open_dataset(base + path.name)
        got = ds.isel(sample=[3, 0, 250]).counts.values
    with h5py.File(path) as f:
        want = f["data/expression"][:, [0, 3, 250]][:, [1, 0, 2]]  # h5py wants sorted indices
    np.testing.assert_array_equal(got, want)


def test_a_process_that_read_a_remote_file_exits_cleanly():
    """HDF5 closes files left open after Python finalizes: a file opened on a Python file
    object (remote) then crashed the process at exit (SIGSEGV, status -11)."""
    code = (
        "import archs4x\n"
        "p = archs4x.datasets.example_file()\n"
        "with archs4x.datasets.serve_http(p.parent) as base:\n"
        "    ds = archs4x.open_dataset(base + p.name)\n"
        "    print(int(ds.isel(sample=[0, 1]).counts.sum()))\n"
    )
    for _ in range(2):
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120)  # fmt: skip
        assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
        assert int(run.stdout) > 0
