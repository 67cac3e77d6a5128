"""FASTQ pairing by name and read checks (pure Python, no kallisto needed)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archs4x.align.fastq import (
    FastqError,
    check_head,
    check_pair,
    count_records,
    find_samples,
    pair_files,
    split_name,
)

names = st.from_regex(r"[A-Za-z][A-Za-z0-9 .+-]{0,12}[A-Za-z]", fullmatch=True).filter(
    lambda s: split_name(s + ".fq")[1] is None
)
styles = st.sampled_from(
    [("_1", "_2"), ("_R1", "_R2"), (".1", ".2"), ("_R1_001", "_R2_001"), (".R1", ".R2")]
)
exts = st.sampled_from([".fastq", ".fq", ".fastq.gz", ".fq.gz", ".FASTQ.GZ"])


@settings(max_examples=60, deadline=None)
@given(name=names, style=styles, e1=exts, e2=exts, orphan=st.booleans())
def test_mates_pair_by_name(name, style, e1, e2, orphan):
    files = [f"d/{name}{style[1]}{e2}", f"d/{name}{style[0]}{e1}"]
    if orphan:
        files.append(f"d/{name}{e1}")
    (sample,) = pair_files(files)
    assert sample.name == name and sample.paired
    assert [f.name for f in sample.files] == [f"{name}{style[0]}{e1}", f"{name}{style[1]}{e2}"]


def test_single_end_and_lone_mate():
    with pytest.warns(UserWarning, match="has no mate 2"):
        got = pair_files(["a_1.fq", "b.fastq.gz", "run_10.fq"])
    assert [(s.name, s.paired) for s in got] == [("a", False), ("b", False), ("run_10", False)]


def test_ambiguous_names_raise():
    with pytest.raises(ValueError, match="two files for mate 1"):
        pair_files(["a_1.fq", "a_R1.fq.gz", "a_2.fq"])
    with pytest.raises(ValueError, match="not a FASTQ file name"):
        pair_files(["a.txt"])


def test_find_samples_of_a_folder(tmp_path):
    for n in ["S1_R1.fq.gz", "S1_R2.fq.gz", "S2.fastq", "readme.md"]:
        (tmp_path / n).write_bytes(b"")
    assert [(s.name, len(s.files)) for s in find_samples(tmp_path)] == [("S1", 2), ("S2", 1)]
    with pytest.raises(FileNotFoundError, match="no such folder"):
        find_samples(tmp_path / "S1_R1.fq.gz")  # not a folder
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no FASTQ files"):
        find_samples(empty)


REC = b"@r%d extra\nACGT\n+\nIIII\n"


def test_check_head_and_count(tmp_path):
    p = tmp_path / "x.fq.gz"
    p.write_bytes(gzip.compress(b"".join(REC % i for i in range(50))))
    assert check_head(p, n=10) == [b"r%d" % i for i in range(10)]
    assert count_records(p) == 50
    plain = tmp_path / "y.fq"
    plain.write_bytes(b"".join(REC % i for i in range(7)) + b"@r7\nAC")
    with pytest.raises(FastqError, match="not a whole number"):
        count_records(plain)
    empty = tmp_path / "e.fq"
    empty.write_bytes(b"")
    with pytest.raises(FastqError, match="empty FASTQ"):
        check_head(empty)
    bad_plus = tmp_path / "b.fq"
    bad_plus.write_bytes(b"@r1\nACGT\n-\nIIII\n")
    with pytest.raises(FastqError, match="is not '\\+'"):
        check_head(bad_plus)
    notgz = tmp_path / "z.fq.gz"
    notgz.write_bytes(b"\x1f\x8b" + b"\x00" * 30)
    with pytest.raises(FastqError, match="corrupt|cannot be read"):
        check_head(notgz)


def test_check_pair_strips_mate_suffix(tmp_path):
    a, b = tmp_path / "a_1.fq", tmp_path / "a_2.fq"
    a.write_bytes(b"@r1/1\nAC\n+\nII\n@r2/1\nAC\n+\nII\n")
    b.write_bytes(b"@r1/2\nAC\n+\nII\n@r2/2\nAC\n+\nII\n")
    check_pair(a, b)
    b.write_bytes(b"@r1/2\nAC\n+\nII\n")
    with pytest.raises(FastqError, match="different read counts"):
        check_pair(a, b)


def test_alignment_options_are_one_validated_definition(tmp_path):
    from archs4x import align

    reads = tmp_path / "s_1.fq"
    reads.write_text("@r1\nACGT\n+\nIIII\n")
    # a misspelt option fails before any reference download (species "human" would fetch)
    with pytest.raises(TypeError, match="unknown alignment option 'thread'.*threads"):
        align.fastq("human", reads, thread=2)
    with pytest.raises(TypeError, match="not both"):
        align.folder("human", tmp_path, options=align.QuantOptions(), threads=2)
    with pytest.raises(ValueError, match="check must be"):
        align.QuantOptions(check="some")
    with pytest.raises(TypeError, match="not one string"):
        align.QuantOptions(extra_args="--bias")
    opts = align.QuantOptions(threads="3", extra_args=["--bias"], tmp_dir="rel")
    assert (opts.threads, opts.extra_args) == (3, ("--bias",))
    assert opts.tmp_dir == str(Path("rel").absolute())
    assert align.QuantOptions(check=True).check == "full"


def test_alignment_options_refuse_truncated_or_infinite_values():
    from archs4x import align

    with pytest.raises(ValueError, match="threads must be a positive integer"):
        align.QuantOptions(threads=2.7)
    assert align.QuantOptions(threads=2.0).threads == 2
    for name in ("fragment_length", "sd"):
        with pytest.raises(ValueError, match=f"{name} must be a finite number > 0"):
            align.QuantOptions(**{name: float("inf")})
    assert align.QuantOptions(check=0).check is False
