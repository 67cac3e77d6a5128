"""``align.load``: reads from ENA over HTTP (a local server stands in for ENA)."""

from __future__ import annotations

import hashlib
import http.server
import os
import random
import shutil
import subprocess
import threading
import urllib.parse

import pytest

from archs4x import align
from archs4x.align import UnknownAccessionError
from archs4x.download import ChecksumError
from archs4x.errors import DownloadError
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


def _sra_tools() -> dict[str, str]:
    """The sra-toolkit binaries; skip without them, except in CI (.ci/run installs them)."""
    tools = {t: shutil.which(t) for t in ("latf-load", "kar", "fasterq-dump")}
    missing = [t for t, path in tools.items() if path is None]
    if missing:
        msg = f"sra-toolkit is not installed (apt-get install sra-toolkit): no {missing}"
        if os.environ.get("ARCHS4X_CI") == "1":
            pytest.fail(msg + " and ARCHS4X_CI=1")
        pytest.skip(msg)
    return {t: str(p) for t, p in tools.items()}


def _records(path) -> list[tuple[str, str, str]]:
    """(name, sequence, quality) of every record of a FASTQ file."""
    lines = path.read_text().splitlines()
    assert len(lines) % 4 == 0
    return [(lines[i][1:], lines[i + 1], lines[i + 3]) for i in range(0, len(lines), 4)]


def _make_sra(tools, fastqs, run: str, where) -> None:
    """A real ``.sra`` archive of ``fastqs``, where ``prefetch`` would put it
    (``where/RUN/RUN.sra``): latf-load builds the table, kar packs it."""
    table = where / f"{run}.vdb"
    subprocess.run([tools["latf-load"], "--output", str(table), "--quality", "PHRED_33",
                    "--platform", "ILLUMINA", *map(str, fastqs)],
                   check=True, capture_output=True)  # fmt: skip
    (where / run).mkdir()
    subprocess.run([tools["kar"], "--create", str(where / run / f"{run}.sra"),
                    "--directory", str(table)], check=True, capture_output=True)  # fmt: skip


def _write_reads(paths, n: int, length: int, seed: int) -> None:
    """Random reads with varied Phred+33 qualities; mates share a name (``r7/1``, ``r7/2``)."""
    rng = random.Random(seed)
    for mate, path in enumerate(paths, 1):
        suffix = f"/{mate}" if len(paths) == 2 else ""
        with open(path, "w") as f:
            for i in range(n):
                seq = "".join(rng.choice("ACGT") for _ in range(length))
                qual = "".join(chr(33 + rng.randrange(2, 41)) for _ in range(length))
                f.write(f"@r{i}{suffix}\n{seq}\n+\n{qual}\n")


@pytest.mark.parametrize("paired", [False, True])
def test_real_fasterq_dump_returns_the_reads_whole(tmp_path, monkeypatch, paired):
    """The real fasterq-dump, on a real .sra archive built from known reads: every read
    comes back, sequence and quality intact, mates in order (single- and paired-end)."""
    tools = _sra_tools()
    src = tmp_path / "src"
    src.mkdir()
    fastqs = [src / "r_1.fastq", src / "r_2.fastq"] if paired else [src / "r.fastq"]
    _write_reads(fastqs, n=257, length=63, seed=5)
    run = "SRR9900002" if paired else "SRR9900001"
    work = tmp_path / "work"
    work.mkdir()
    _make_sra(tools, fastqs, run, work)
    monkeypatch.chdir(work)  # where prefetch leaves runs; "out" is relative on purpose
    got = align.load([run], "out", method="fasterq-dump")
    names = [f"{run}_1.fastq", f"{run}_2.fastq"] if paired else [f"{run}.fastq"]
    assert [p.name for p in got[run]] == names
    assert all(p.is_absolute() and p.parent == work / "out" for p in got[run])
    for original, dumped in zip(fastqs, got[run], strict=True):
        want, have = _records(original), _records(dumped)
        assert len(have) == len(want) == 257
        assert [(s, q) for _, s, q in have] == [(s, q) for _, s, q in want]
        # fasterq-dump names reads "<run>.<n> <original name> length=<len>"
        assert [n.split()[0] for n, _, _ in have] == [f"{run}.{i}" for i in range(1, 258)]
        assert [n.split()[1] for n, _, _ in have] == [f"r{i}" for i in range(257)]
    again = align.load(run, "out", method="fasterq-dump")  # already there: not dumped again
    assert again == got


def test_failing_fasterq_dump_raises_with_its_stderr(tmp_path, monkeypatch):
    tools = _sra_tools()
    (tmp_path / "SRR9900003").mkdir()
    (tmp_path / "SRR9900003" / "SRR9900003.sra").write_text("not an SRA archive\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DownloadError, match=r"fasterq-dump failed for SRR9900003 \(exit status"
                       r" \d+\):.*SRR9900003"):  # fmt: skip
        align.load(["SRR9900003"], "out", fasterq_dump=tools["fasterq-dump"])
    assert not any((tmp_path / "out").glob("*.fastq"))
    with pytest.raises(FileNotFoundError, match="sra-toolkit"):
        align.load(["SRR9"], tmp_path, method="fasterq-dump", fasterq_dump="/no/fasterq-dump")
