"""``align.load``: reads from ENA over HTTP (a local server stands in for ENA)."""

from __future__ import annotations

import hashlib
import http.server
import os
import stat
import threading
import urllib.parse

import pytest

from archs4x import align
from archs4x.align import UnknownAccessionError
from archs4x.download import ChecksumError
from tests._http import FileServer


class EnaApi:
    """``/filereport?accession=...`` answering from a dict of TSV rows, like ENA's portal API."""

    def __init__(self, rows: dict[str, list[dict]]):
        self.rows = rows
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                u = urllib.parse.urlparse(self.path)
                q = urllib.parse.parse_qs(u.query)
                if u.path != "/filereport" or q.get("result") != ["read_run"]:
                    self.send_response(400)
                    self.end_headers()
                    return
                fields = q["fields"][0].split(",")
                lines = ["\t".join(fields)]
                for row in api.rows.get(q["accession"][0], []):
                    lines.append("\t".join(row.get(f, "") for f in fields))
                body = ("\n".join(lines) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def ena(tmp_path):
    files = tmp_path / "ena"
    run = files / "vol1" / "fastq" / "SRR1"
    run.mkdir(parents=True)
    payload = {}
    for name in ["SRR1.fastq.gz", "SRR1_1.fastq.gz", "SRR1_2.fastq.gz", "ERR7.fastq.gz"]:
        data = os.urandom(50_000)
        payload[name] = data
        (run / name).write_bytes(data)
    with FileServer(files) as fs:
        host = f"127.0.0.1:{fs.port}/vol1/fastq/SRR1"

        def row(run_acc, names, md5=None):
            return {
                "run_accession": run_acc,
                "fastq_ftp": ";".join(f"{host}/{n}" for n in names),
                "fastq_bytes": ";".join(str(len(payload[n])) for n in names),
                "fastq_md5": ";".join(md5 or hashlib.md5(payload[n]).hexdigest() for n in names),
            }

        rows = {
            "SRR1": [row("SRR1", ["SRR1.fastq.gz", "SRR1_1.fastq.gz", "SRR1_2.fastq.gz"])],
            "ERR7": [row("ERR7", ["ERR7.fastq.gz"], md5="0" * 32)],  # wrong checksum
            "SRR666": [{"run_accession": "SRR666", "fastq_ftp": f"{host}/..%2F..%2Fescape.fq"}],
            "SRR5": [{"run_accession": "SRR5", "fastq_ftp": ""}],
        }
        api = EnaApi(rows)
        try:
            yield api, fs, payload
        finally:
            api.close()


def test_load_from_ena_skips_orphans_and_resumes(ena, tmp_path):
    api, fs, payload = ena
    fs.behaviour.drop_after, fs.behaviour.drops = 10_000, 1
    out = tmp_path / "out"
    got = align.load(["SRR1"], out, method="ena", ena_url=api.url, scheme="http")
    assert [p.name for p in got["SRR1"]] == ["SRR1_1.fastq.gz", "SRR1_2.fastq.gz"]
    assert all(p.read_bytes() == payload[p.name] for p in got["SRR1"])
    assert any(r[2] == "bytes=10000-" for r in fs.stats.requests)
    assert not (out / "SRR1.fastq.gz").exists() and not list(out.glob("*.part"))
    fs.stats.reset()
    again = align.load("SRR1", out, method="ena", ena_url=api.url, scheme="http")
    assert again == got and fs.stats.gets == 0  # already complete: nothing downloaded
    with_orphan = align.load(
        "SRR1", out, method="ena", ena_url=api.url, scheme="http", orphans=True
    )
    assert len(with_orphan["SRR1"]) == 3


def test_load_errors(ena, tmp_path):
    api, _, _ = ena
    kw = dict(method="ena", ena_url=api.url, scheme="http")
    with pytest.raises(UnknownAccessionError, match="unknown accession 'SRR404'"):
        align.load(["SRR404"], tmp_path, **kw)
    with pytest.raises(UnknownAccessionError, match="has no FASTQ files"):
        align.load(["SRR5"], tmp_path, **kw)
    with pytest.raises(ValueError, match="unsafe file name"):
        align.load(["SRR666"], tmp_path / "o", **kw)
    assert not (tmp_path / "escape.fq").exists()
    with pytest.raises(ChecksumError, match="MD5"):
        align.load(["ERR7"], tmp_path / "o", **kw)
    assert not list((tmp_path / "o").glob("ERR7*"))
    with pytest.raises(ValueError, match="not an SRA/ENA accession"):
        align.load(["../etc"], tmp_path, **kw)


def test_fasterq_dump_is_used_when_present(tmp_path):
    # sra-toolkit is not installed here: a stand-in script with fasterq-dump's interface
    # (it writes what fasterq-dump --split-3 writes) checks the arguments we pass.
    fake = tmp_path / "fasterq-dump"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "$@" > "$(dirname "$0")/args"\n'
        "for last; do :; done\n"
        'while [ "$1" != "-O" ]; do shift; done; out="$2"\n'
        'printf "@r\\nA\\n+\\nI\\n" > "$out/${last}_1.fastq"\n'
        'printf "@r\\nA\\n+\\nI\\n" > "$out/${last}_2.fastq"\n'
        'printf "@o\\nA\\n+\\nI\\n" > "$out/${last}.fastq"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    got = align.load(["SRR9"], tmp_path / "out", fasterq_dump=str(fake))
    assert [p.name for p in got["SRR9"]] == ["SRR9_1.fastq", "SRR9_2.fastq"]
    args = (tmp_path / "args").read_text().split()
    assert args[:2] == ["--split-3", "--skip-technical"] and args[-1] == "SRR9"
    with pytest.raises(FileNotFoundError, match="sra-toolkit"):
        align.load(["SRR9"], tmp_path, method="fasterq-dump", fasterq_dump="/no/fasterq-dump")
