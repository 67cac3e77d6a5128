"""Remote opens say what happened: "cannot connect" is not "not found"."""

from __future__ import annotations

import socket

import pytest

import archs4x

from ._http import FileServer


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("port", [1, None])
def test_refused_connection_says_cannot_connect(port):
    url = f"http://127.0.0.1:{port or _closed_port()}/x.h5"
    with pytest.raises(ConnectionError, match=r"cannot connect to the server of .*connection "
                       "refused") as info:  # fmt: skip
        archs4x.open_dataset(url)
    assert not isinstance(info.value, FileNotFoundError)
    assert "No such remote" not in str(info.value)


def test_missing_file_on_a_live_server_says_not_found(tmp_path):
    with FileServer(tmp_path) as srv:
        with pytest.raises(FileNotFoundError, match="No such remote ARCHS4 file") as info:
            archs4x.open_dataset(srv.url("missing.h5"))
    assert not isinstance(info.value, ConnectionError)
    assert "cannot connect" not in str(info.value)
