"""Example and synthetic files in the exact ARCHS4 v2 layout.

:func:`write_archs4_file` writes a file the way ARCHS4 does: ``data/expression`` as
uint32 genes x samples with chunks ``(2000, 1)``, ``maxshape=(genes, None)`` and deflate;
``meta/genes`` (or ``meta/transcripts``), ``meta/samples`` with all 29 GEO fields as
variable-length UTF-8 strings (``singlecellprobability`` as float64) and ``meta/info``
scalars.  The content is synthetic but shaped like the real thing: zero-inflated,
heavy-tailed negative-binomial counts, ~3% duplicated gene symbols, samples in series
(some in several), single-cell probabilities, and a little double-encoded text.

Files are written in sample blocks with pre-compressed chunks (``write_direct_chunk``),
so a 67,186 x 100,000 benchmark file streams in bounded memory.  Output is
deterministic for a given seed and shape.  :func:`example_file` caches the small
file the demo, doctests, notebooks and tests use.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import h5py
import numpy as np

from .._options import cache_dir

__all__ = [
    "MITO_SYMBOLS",
    "SAMPLE_FIELDS",
    "TOUR_SAMPLES",
    "TOUR_SERIES",
    "example_file",
    "planted_characteristics",
    "planted_expression",
    "write_archs4_file",
]

GENERATOR_VERSION = 3

SAMPLE_FIELDS = (
    "channel_count", "characteristics_ch1", "contact_address", "contact_city",
    "contact_country", "contact_institute", "contact_name", "contact_zip",
    "data_processing", "extract_protocol_ch1", "geo_accession", "instrument_model",
    "last_update_date", "library_selection", "library_source", "library_strategy",
    "molecule_ch1", "organism_ch1", "platform_id", "relation", "sample", "series_id",
    "singlecellprobability", "source_name_ch1", "status", "submission_date",
    "taxid_ch1", "title", "type",
)  # fmt: skip

VERSIONS = ("2.1.2", "2.2", "2.5", "2.6")

_SPECIES = {
    "human": dict(gene="ENSG", tx="ENST", organism="Homo sapiens", taxid="9606",
                  upper=True, platforms=("GPL16791", "GPL20301", "GPL24676", "GPL18573")),
    "mouse": dict(gene="ENSMUSG", tx="ENSMUST", organism="Mus musculus", taxid="10090",
                  upper=False, platforms=("GPL17021", "GPL19057", "GPL24247", "GPL21103")),
}  # fmt: skip

_KNOWN_SYMBOLS = (
    "ACTB", "GAPDH", "MYOD1", "MYOG", "DES", "ALB", "APOA1", "CD3E", "CD19", "PTPRC",
    "EPCAM", "KRT18", "VIM", "SOX2", "POU5F1", "NANOG", "TP53", "MKI67", "PAX7", "TTN",
    "INS", "GCG", "CD34", "COL1A1", "XIST", "RPL13A", "HBB", "LYZ", "MYH7", "NEUROD1",
)  # fmt: skip
#: The 13 mitochondrial protein-coding genes, given to rows of files written with
#: ``poor_samples`` (``qc``'s ``mito_fraction`` reads symbols starting ``MT-``).
MITO_SYMBOLS = ("MT-ND1", "MT-ND2", "MT-CO1", "MT-CO2", "MT-ATP8", "MT-ATP6", "MT-CO3",
                "MT-ND3", "MT-ND4L", "MT-ND4", "MT-ND5", "MT-ND6", "MT-CYB")  # fmt: skip
_BIOTYPES = ("protein_coding", "lncRNA", "processed_pseudogene", "misc_RNA", "snRNA",
             "miRNA", "unprocessed_pseudogene", "TEC")  # fmt: skip
_BIOTYPE_P = (0.58, 0.25, 0.07, 0.03, 0.03, 0.02, 0.01, 0.01)
# Rows of _KNOWN_SYMBOLS expressed only in a tissue (index into _TISSUES below).
_TISSUE_MARKERS = {
    0: (2, 3, 4, 18), 1: (5, 6), 2: (7, 9, 27), 3: (29, 13), 4: (10, 11), 6: (28, 19),
    7: (23,), 8: (10, 11), 9: (20, 21), 10: (22, 26), 11: (14, 15), 12: (17,), 14: (29,),
}  # fmt: skip

_TISSUES = (
    ("skeletal muscle myoblast", "myoblast", "muscle"), ("liver", "hepatocyte", "liver"),
    ("peripheral blood", "T cell", "blood"), ("brain cortex", "neuron", "brain"),
    ("lung", "alveolar epithelial cell", "lung"), ("kidney", "podocyte", "kidney"),
    ("heart left ventricle", "cardiomyocyte", "heart"), ("skin", "fibroblast", "skin"),
    ("colon", "epithelial cell", "colon"), ("pancreatic islet", "beta cell", "pancreas"),
    ("bone marrow", "hematopoietic stem cell", "bone marrow"),
    ("embryonic stem cells", "ES cell", "ESC"), ("breast tumor", "cancer cell", "breast"),
    ("adipose tissue", "adipocyte", "adipose"), ("retina", "photoreceptor", "eye"),
)  # fmt: skip
_TREATMENTS = ("none", "DMSO", "5 μM dexamethasone", "10 ng/ml TNF-α", "LPS 100 ng/ml",
               "siRNA control", "shRNA knockdown", "hypoxia 1% O₂", "IFN-γ 20 ng/ml")  # fmt: skip
_PROTOCOLS = (
    "Total RNA was extracted with TRIzol according to the manufacturer’s instructions.",
    "RNA was isolated using the RNeasy Mini Kit (Qiagen); libraries were prepared with "
    "the TruSeq Stranded mRNA kit.",
    "Single cells were captured on the 10x Genomics Chromium platform and libraries built "
    "with the Single Cell 3′ v3 chemistry.",
    "PolyA RNA was selected with oligo-dT beads; cDNA was synthesised with SuperScript II.",
    "Nuclei were isolated and processed with the SMART-Seq v4 Ultra Low Input kit.",
)  # fmt: skip
_INSTRUMENTS = ("Illumina HiSeq 2500", "Illumina NovaSeq 6000", "Illumina NextSeq 500",
                "Illumina HiSeq 4000", "Illumina HiSeq 2000")  # fmt: skip
_CITIES = (("New York", "USA", "10029"), ("Boston", "USA", "02115"), ("London", "UK", "WC1E"),
           ("München", "Germany", "80336"), ("Zürich", "Switzerland", "8057"),
           ("Shanghai", "China", "200031"), ("São Paulo", "Brazil", "01246"),
           ("Kyoto", "Japan", "606-8501"))  # fmt: skip
_INSTITUTES = ("Icahn School of Medicine at Mount Sinai", "Broad Institute",
               "University College London", "Max-Planck-Institut für Biochemie",
               "ETH Zürich", "Chinese Academy of Sciences", "Universidade de São Paulo",
               "Kyoto University")  # fmt: skip
_NAMES = ("Alexander,,Lachmann", "Maria,,Gonzalez", "Wei,,Zhang", "Jürgen,,Müller",
          "Aoife,,O'Brien", "Søren,,Nielsen", "Priya,,Patel", "Yuki,,Tanaka")  # fmt: skip
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _double_encode(s: str) -> str:
    """Reproduce the upstream defect: UTF-8 bytes read as Latin-1."""
    return s.encode("utf-8").decode("latin-1")


def _date(day: np.ndarray) -> list[str]:
    # day counts from 2010-01-01 in 28-day months: plausible strings, cheap to build.
    years = 2010 + day // 336
    months = (day // 28) % 12
    days = day % 28 + 1
    return [f"{_MONTHS[m]} {d:02d} {y}" for m, d, y in zip(months, days, years, strict=True)]


def _day(year: int, month: int, day: int) -> int:
    """The inverse of :func:`_date` (``day`` at most 28)."""
    return (year - 2010) * 336 + (month - 1) * 28 + day - 1


# --------------------------------------------------------------------------------------
# characteristics_ch1: "key: value" pairs the way GEO submitters write them
# --------------------------------------------------------------------------------------
#: How submitters spell each key (every variant maps to the key on the left in
#: :data:`archs4x.query.characteristics.SYNONYMS`).  A series uses one spelling.
_KEY_VARIANTS = {
    "tissue": ("tissue", "Tissue", "organ", "tissue type", "tissue_type", "Tissue Type",
               "tissues"),
    "cell_type": ("cell type", "Cell type", "cell_type", "celltype", "cell types",
                  "Cell Type"),
    "cell_line": ("cell line", "cell_line", "Cell line", "cell-line", "cellline"),
    "sex": ("sex", "Sex", "gender", "Gender"),
    "age": ("age", "Age", "age (years)", "age (yrs)"),
    "disease": ("disease state", "disease", "diagnosis"),
    "donor": ("donor", "individual", "patient id"),
    "genotype": ("genotype", "genotype/variation", "Genotype"),
    "treatment": ("treatment", "Treatment", "treatments", "agent"),
    "time": ("time", "time point", "timepoint"),
}  # fmt: skip
_MOUSE_AGE_KEYS = ("age", "Age", "age (weeks)")
#: Share of series that report each key.
_KEY_SHARE = {
    "tissue": 0.8,
    "cell_type": 0.6,
    "cell_line": 0.25,
    "sex": 0.45,
    "age": 0.35,
    "disease": 0.2,
    "donor": 0.2,
    "genotype": 0.2,
    "treatment": 0.5,
    "time": 0.15,
}
_CELL_LINES = {
    "human": ("HSMM", "HepG2", "Jurkat", "SH-SY5Y", "A549", "HEK293", "AC16", "BJ", "Caco-2",
              "EndoC-βH1", "K562", "H9", "MCF-7", "SGBS", "ARPE-19"),
    "mouse": ("C2C12", "Hepa1-6", "EL4", "Neuro-2a", "LA-4", "mIMCD-3", "HL-1", "NIH/3T3",
              "CT26", "MIN6", "32D", "E14", "4T1", "3T3-L1", "661W"),
}  # fmt: skip
# One per entry of _TREATMENTS: commas and units inside values, as submitters write them.
_TREATMENT_TEXT = ("none", "DMSO", "dexamethasone, 5 μM, 24 h", "TNF-α, 10 ng/ml, 6 h",
                   "LPS 100 ng/ml, 2 h", "siRNA control", "shRNA knockdown of MYOD1",
                   "hypoxia (1% O₂), 48 h", "IFN-γ 20 ng/ml")  # fmt: skip
_GENOTYPES = ("wild type", "Cre:ERT2", "MYOD1 -/-", "TP53 R175H, heterozygous",
              "shRNA: scrambled")  # fmt: skip
_TIMES = ("0 h", "6 h", "24 h", "day 3", "ZT 12:00")
_MISSING_TEXT = ("NA", "unknown", "N/A", "not available", "")
_WEEK = 7 / 365.25


def _series_uniform(series: np.ndarray, salt: int) -> np.ndarray:
    """A uniform number in [0, 1) per series and salt (splitmix64): one style per series."""
    with np.errstate(over="ignore"):
        x = np.asarray(series, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        x = x + np.uint64(salt) * np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _disease(tissue: int, u: float) -> str:
    if tissue == 12:
        return "breast cancer, ER-positive" if u < 0.5 else "breast cancer, triple-negative"
    if tissue == 9 and u < 0.4:
        return "type 2 diabetes"
    return "healthy" if u < 0.7 else "control"


def _characteristics(lat: _SampleLatents, species: str) -> tuple[list[str], list[dict]]:
    """``characteristics_ch1`` text of every sample, and the truth planted in it.

    The truth of a sample maps each key written to its value (``None`` when written as a
    missing value such as "NA"); ages are in years; a key written twice maps to its
    values joined by ``"; "``.
    """
    n = lat.n
    keys = list(_KEY_VARIANTS)
    share = {k: _series_uniform(lat.series, 11 + i) for i, k in enumerate(keys)}
    spelling = {k: _series_uniform(lat.series, 41 + i) for i, k in enumerate(keys)}
    style = _series_uniform(lat.series, 97)  # how ages / sexes are written in a series
    u = lat.ch_u
    texts, truths = [], []
    for i in range(n):
        if i in lat.tour_characteristics:
            tour_text, tour_truth = lat.tour_characteristics[i]
            texts.append(_double_encode(tour_text) if lat.mojibake[i] else tour_text)
            truths.append(dict(tour_truth))
            continue
        t = int(lat.tissue[i])
        pairs: list[tuple[str, str, str, object]] = []  # key, spelling, written, truth

        def add(key: str, value: str, truth: object, spellings=None, i=i, pairs=pairs) -> None:
            variants = spellings or _KEY_VARIANTS[key]
            pairs.append((key, variants[int(spelling[key][i] * len(variants))], value, truth))

        def maybe_missing(value: str, truth: object, j: int, i=i) -> tuple[str, object]:
            if u[i, j] < 0.07:
                return _MISSING_TEXT[int(u[i, j] / 0.07 * len(_MISSING_TEXT))], None
            return value, truth

        present = {k for k in keys if share[k][i] < _KEY_SHARE[k]}
        if t == 11:  # embryonic stem cells: a cell line, no donor sex or age
            present -= {"sex", "age", "donor", "disease"}
        if not present:
            present = {"tissue"}
        if "tissue" in present:
            add("tissue", _TISSUES[t][2], _TISSUES[t][2])
        if "cell_type" in present:
            add("cell_type", _TISSUES[t][1], _TISSUES[t][1])
        if "cell_line" in present:
            line = _CELL_LINES[species][t]
            add("cell_line", line, line)
        if "sex" in present:
            sex = "female" if u[i, 1] < 0.5 else "male"
            sex = sex.capitalize() if style[i] < 0.3 else sex
            add("sex", *maybe_missing(sex, sex, 0))
        if "age" in present:
            if species == "human":
                years = int(18 + u[i, 2] * 67)
                form = int(style[i] * 5)
                name_i = int(spelling["age"][i] * len(_KEY_VARIANTS["age"]))
                if name_i >= 2:  # "age (years)": the unit is in the key
                    value = str(years)
                else:
                    value = (f"{years} years", f"{years} yrs", f"{years}y",
                             f"{years} years old", str(years))[form]  # fmt: skip
                add("age", *maybe_missing(value, float(years), 3))
            else:
                weeks = int(4 + u[i, 2] * 20)
                name_i = int(spelling["age"][i] * len(_MOUSE_AGE_KEYS))
                value = str(weeks) if name_i == 2 else (
                    f"{weeks} weeks", f"{weeks} wk", f"{weeks}w", f"{weeks} weeks old")[
                    int(style[i] * 4)]  # fmt: skip
                add("age", *maybe_missing(value, weeks * _WEEK, 3), spellings=_MOUSE_AGE_KEYS)
        if "disease" in present:
            value = _disease(t, u[i, 4])
            add("disease", value, value)
        if "donor" in present:
            value = f"D{int(u[i, 4] * 40) + 1}" if style[i] < 0.5 else f"patient {i % 17 + 1}"
            add("donor", value, value)
        if "genotype" in present:
            value = _GENOTYPES[int(lat.series[i]) % len(_GENOTYPES)]
            add("genotype", value, value)
        if "treatment" in present:
            value = _TREATMENT_TEXT[lat.treatment[i]]
            add("treatment", value, value)
            if u[i, 5] < 0.05:  # the same key twice
                add("treatment", "24 h", "24 h")
        if "time" in present:
            value = _TIMES[int(u[i, 4] * len(_TIMES))]
            add("time", value, value)
        pairs = pairs[:6]
        truth: dict[str, object] = {}
        for key, _, _, planted in pairs:
            if key in truth and truth[key] is not None and planted is not None:
                truth[key] = f"{truth[key]}; {planted}"
            elif key not in truth:
                truth[key] = planted
        parts = [f"{name}: {value}".rstrip() if value else f"{name}:" for _, name, value, _ in
                 pairs]  # fmt: skip
        if u[i, 5] > 0.95 and len(parts) > 1:  # an empty pair
            parts.insert(1, "")
        text = ",".join(parts) + ("," if 0.93 < u[i, 5] <= 0.95 else "")
        texts.append(_double_encode(text) if lat.mojibake[i] else text)
        truths.append(truth)
    return texts, truths


# --------------------------------------------------------------------------------------
# archs4py's example samples and series, for the README's tour
# --------------------------------------------------------------------------------------
#: archs4py's example samples (the README's tour uses them); their metadata is synthetic.
TOUR_SAMPLES = ("GSM1158284", "GSM1482938", "GSM1562817")
# (series, tissue, title, submitted, characteristics, truth) of the first two
_TOUR_BULK: tuple[tuple[str, int, str, tuple[int, int, int], str, dict[str, object]], ...] = (
    ("GSE47501", 0, "HSMM myoblasts, growth medium, rep 1", (2013, 6, 3),
     "cell type: skeletal muscle myoblast,cell line: HSMM,treatment: growth medium, 20% FBS",
     {"cell_type": "skeletal muscle myoblast", "cell_line": "HSMM",
      "treatment": "growth medium, 20% FBS"}),
    ("GSE60412", 1, "liver biopsy, donor 12", (2014, 8, 13),
     "tissue: liver,Sex: female,age (years): 54,disease state: NAFLD",
     {"tissue": "liver", "sex": "female", "age": 54.0, "disease": "NAFLD"}),
)  # fmt: skip
#: GSE64016: single H1 human embryonic stem cells, unsynchronised and FUCCI-sorted.
TOUR_SERIES = "GSE64016"
_TOUR_PHASES = ("unsynchronized", "G1", "S", "G2/M")


def _tour(lat: _SampleLatents, n: int) -> None:
    """Place archs4py's example samples and GSE64016 in the last 14 samples of ``lat``."""
    start = n - 14
    # (position, gsm, series, tissue, single cell, title, submitted, characteristics, truth)
    rows: list[tuple[int, int, str, int, bool, str, tuple[int, int, int], str, dict[str, object]]]
    rows = []
    for k, (gse, tissue, title, date, text, truth) in enumerate(_TOUR_BULK):
        gsm = int(TOUR_SAMPLES[k][3:])
        rows.append((start + k, gsm, gse, tissue, False, title, date, text, truth))
    # GSE64016: GSM1562817 and 11 more: three unsynchronised cells, three of each phase
    for k in range(12):
        phase = _TOUR_PHASES[k // 3]
        title = f"{'H1' if k < 3 else phase.split('/')[0]}_Exp1.{k % 3 + 1:03d}"
        text = (f"cell line: H1,cell type: human embryonic stem cell,"
                f"cell cycle phase: {phase}")  # fmt: skip
        truth = {"cell_line": "H1", "cell_type": "human embryonic stem cell",
                 "cell_cycle_phase": phase}  # fmt: skip
        gsm = int(TOUR_SAMPLES[2][3:]) if k == 0 else 1599493 + k
        rows.append((start + 2 + k, gsm, TOUR_SERIES, 11, True, title, (2014, 12, 5),
                     text, truth))  # fmt: skip
    for pos, gsm, gse, tissue, sc, title, date, text, truth in rows:
        lat.gsm[pos] = gsm
        lat.series[pos] = int(gse[3:])
        lat.multi_series[pos] = False
        lat.tissue[pos] = tissue
        lat.single_cell[pos] = sc
        lat.scp[pos] = 0.93 + 0.005 * (pos % 10) if sc else 0.02 + 0.01 * (pos % 5)
        lat.day[pos] = _day(*date)
        lat.mojibake[pos] = False
        lat.titles[pos] = title
        lat.tour_characteristics[pos] = (text, truth)
        if sc:
            lat.sources[pos] = "H1 hESC"
            lat.protocols[pos] = ("Single cells were captured on the Fluidigm C1 system; "
                                  "cDNA was made with the SMARTer Ultra Low RNA kit.")  # fmt: skip
        lat.redraw.add(pos)


class _SampleLatents:
    """Per-sample hidden variables every metadata field is derived from."""

    def __init__(self, n: int, rng: np.random.Generator):
        self.n = n
        self.tissue = rng.integers(0, len(_TISSUES), n)
        self.treatment = rng.integers(0, len(_TREATMENTS), n)
        self.single_cell = rng.random(n) < 0.15
        # Series: consecutive runs of samples, sizes 1..~60.
        sizes = np.minimum(rng.geometric(1 / 12, size=n), 60)
        series_of_run = np.repeat(np.arange(sizes.size), sizes)[:n]
        self.series = 10_000 + series_of_run * 7
        self.multi_series = rng.random(n) < 0.04
        self.other_series = 10_000 + rng.integers(0, max(1, series_of_run.max() + 1), n) * 7 + 3
        self.lab = rng.integers(0, len(_INSTITUTES), n)
        self.day = rng.integers(0, 336 * 14, n)
        self.mojibake = rng.random(n) < 0.03
        self.scp = np.where(self.single_cell, rng.beta(8, 1.5, n), rng.beta(1, 14, n)).astype(
            np.float64
        )
        self.gsm = 1_000_000 + np.arange(n, dtype=np.int64) * 3 + rng.integers(0, 3, n)
        self.rep = np.arange(n) % 4 + 1
        # drawn last, so every variable above is what earlier generator versions drew
        self.ch_u = rng.random((n, 6))
        # what the counts of each sample were drawn from (before the tour moved some)
        self.counts_of = (self.single_cell.copy(), self.tissue.copy(), self.series.copy())
        self.titles: dict[int, str] = {}
        self.sources: dict[int, str] = {}
        self.protocols: dict[int, str] = {}
        self.tour_characteristics: dict[int, tuple[str, dict]] = {}
        self.redraw: set[int] = set()  # samples whose counts are drawn on their own


def _sample_field(name: str, lat: _SampleLatents, spec: dict, species: str):
    values = _sample_field_values(name, lat, spec, species)
    override = {"title": lat.titles, "source_name_ch1": lat.sources,
                "extract_protocol_ch1": lat.protocols}.get(name)  # fmt: skip
    if override:
        values = list(values)
        for pos, value in override.items():
            values[pos] = value
    return values


def _sample_field_values(name: str, lat: _SampleLatents, spec: dict, species: str):
    n = lat.n
    idx = range(n)
    if name == "geo_accession":
        return [f"GSM{g}" for g in lat.gsm]
    if name == "singlecellprobability":
        return lat.scp
    if name == "series_id":
        return [
            f"GSE{s},GSE{o}" if m else f"GSE{s}"
            for s, o, m in zip(lat.series, lat.other_series, lat.multi_series, strict=True)
        ]
    if name == "characteristics_ch1":
        return _characteristics(lat, species)[0]
    if name == "source_name_ch1":
        return [_TISSUES[t][0] for t in lat.tissue]
    if name == "title":
        return [
            f"{_TISSUES[t][1]}_{'sc' if sc else 'bulk'}_rep{r}"
            for t, sc, r in zip(lat.tissue, lat.single_cell, lat.rep, strict=True)
        ]
    if name == "extract_protocol_ch1":
        out = []
        for i in idx:
            p = _PROTOCOLS[2 + (i % 2) if lat.single_cell[i] else (lat.series[i] % 2) * 3]
            out.append(_double_encode(p) if lat.mojibake[i] else p)
        return out
    if name == "data_processing":
        return [f"kallisto quant; reads aligned to Ensembl {spec['gene']} release 107"] * n
    if name == "library_source":
        return ["transcriptomic single cell" if sc else "transcriptomic" for sc in lat.single_cell]
    if name == "library_strategy":
        return ["RNA-Seq"] * n
    if name == "library_selection":
        return ["cDNA"] * n
    if name == "molecule_ch1":
        return ["polyA RNA" if s % 3 else "total RNA" for s in lat.series]
    if name == "organism_ch1":
        return [spec["organism"]] * n
    if name == "taxid_ch1":
        return [spec["taxid"]] * n
    if name == "platform_id":
        return [spec["platforms"][s % len(spec["platforms"])] for s in lat.series]
    if name == "instrument_model":
        return [_INSTRUMENTS[s % len(_INSTRUMENTS)] for s in lat.series]
    if name == "channel_count":
        return ["1"] * n
    if name == "type":
        return ["SRA"] * n
    if name == "status":
        return [f"Public on {d}" for d in _date(lat.day + 30)]
    if name == "submission_date":
        return _date(lat.day)
    if name == "last_update_date":
        return _date(lat.day + 60)
    if name == "sample":
        return [f"SRX{g * 2 + 1}" for g in lat.gsm]
    if name == "relation":
        return [
            f"BioSample: https://www.ncbi.nlm.nih.gov/biosample/SAMN{g * 5},"
            f"SRA: https://www.ncbi.nlm.nih.gov/sra?term=SRX{g * 2 + 1}"
            for g in lat.gsm
        ]
    if name == "contact_name":
        return [_NAMES[b] for b in lat.lab]
    if name == "contact_institute":
        return [_INSTITUTES[b] for b in lat.lab]
    if name == "contact_address":
        return [f"{(b * 37) % 900 + 1} Research Avenue" for b in lat.lab]
    if name in ("contact_city", "contact_country", "contact_zip"):
        k = ("contact_city", "contact_country", "contact_zip").index(name)
        return [_CITIES[b][k] for b in lat.lab]
    raise KeyError(name)  # pragma: no cover


def _gene_table(n_genes: int, spec: dict, rng: np.random.Generator):
    ids = np.array([f"{spec['gene']}{i * 7 + 1:011d}" for i in range(n_genes)], dtype=object)
    base = [s if spec["upper"] else s.capitalize() for s in _KNOWN_SYMBOLS]
    symbols = np.array(
        [base[i] if i < len(base) else (f"GENE{i}" if spec["upper"] else f"Gene{i}")
         for i in range(n_genes)],
        dtype=object,
    )  # fmt: skip
    # ~3% of genes share a symbol with another gene (as Ensembl does).
    n_dup = min(round(0.03 * n_genes), max(0, n_genes - len(base)))
    candidates = np.arange(len(base), n_genes)
    dup_rows = rng.choice(candidates, size=n_dup, replace=False) if n_dup else np.array([], int)
    dup_source = rng.integers(0, max(1, n_genes), dup_rows.size)
    dup_source = np.where(dup_source == dup_rows, (dup_source + 1) % n_genes, dup_source)
    # never point at another duplicate, so each symbol group has one original row
    is_dup = np.zeros(n_genes, bool)
    is_dup[dup_rows] = True
    ok = ~is_dup[dup_source]
    dup_rows, dup_source = dup_rows[ok], dup_source[ok]
    symbols[dup_rows] = symbols[dup_source]
    biotypes = np.array(_BIOTYPES, dtype=object)[rng.choice(len(_BIOTYPES), n_genes, p=_BIOTYPE_P)]
    return ids, symbols, biotypes, dup_rows, dup_source


class _CountModel:
    """Zero-inflated negative-binomial counts with heavy-tailed gene means.

    On top of the gene means: marker genes expressed only in their tissue (MYOD1 in
    myoblasts, ALB in liver, ...), a program of ~2% of genes up in each tissue, and a
    batch effect per series, so that plots of real analyses (a gene across tissues, a
    PCA coloured by series) show structure.  These effects come from their own random
    stream, keyed by seed, tissue and series, so the metadata does not depend on them.
    """

    def __init__(self, n_genes: int, rng: np.random.Generator, dup_rows, dup_source, seed=0):
        log_mu = rng.normal(0.0, 2.2, n_genes)
        silent = rng.random(n_genes) < 0.18  # genes (almost) never expressed
        log_mu[silent] -= 9.0
        p = np.exp(log_mu)
        self.dup_rows = dup_rows
        self.dup_source = dup_source
        self.dup_identical = rng.random(dup_rows.size) < 0.8
        self.n_genes = n_genes
        self.seed = seed
        # Tissue effects, as a (n_genes, n_tissues) log-fold matrix on a few rows.
        n_known = min(n_genes, len(_KNOWN_SYMBOLS))
        fx = np.random.default_rng([seed, 4242, n_genes])
        rows, folds = [], []
        for t in range(len(_TISSUES)):
            program = fx.choice(n_genes, size=max(1, n_genes // 50), replace=False)
            rows.append(program)
            folds.append((t, fx.normal(1.2, 0.4, program.size)))
        self.programmes = rows  # each tissue's programme rows (planted_expression)
        self.effect_rows = np.unique(np.concatenate([*rows, np.arange(n_known)]))
        effect = np.zeros((self.effect_rows.size, len(_TISSUES)))
        pos = {int(g): i for i, g in enumerate(self.effect_rows)}
        for program, (t, f) in zip(rows, folds, strict=True):
            effect[[pos[int(g)] for g in program], t] += f
        for t, markers in _TISSUE_MARKERS.items():
            for g in markers:
                if g < n_known:
                    effect[pos[g], t] += np.log(40.0)
        marker_rows = sorted({g for m in _TISSUE_MARKERS.values() for g in m if g < n_known})
        p[marker_rows] = np.median(p) * 0.05  # off, unless their tissue turns them on
        self.p = p / p.sum()
        self.effect = effect

    def _series_effect(self, series: int) -> tuple[np.ndarray, np.ndarray]:
        sx = np.random.default_rng([self.seed, 77, int(series)])
        k = max(1, self.n_genes // 40)
        return sx.choice(self.n_genes, size=k, replace=False), sx.normal(0.0, 0.8, k)

    def block(self, rng: np.random.Generator, single_cell: np.ndarray, tissue: np.ndarray,
              series: np.ndarray, *, empty_share: float = 0.01,
              empty_out: list | None = None) -> np.ndarray:  # fmt: skip
        """Counts of a block of samples (features x samples).

        About ``empty_share`` of the samples get an empty library (no reads); their
        positions in the block are appended to ``empty_out`` when given.
        """
        n = single_cell.size
        lib = rng.lognormal(np.log(1.2e7), 0.9, n)
        lib[single_cell] = rng.lognormal(np.log(4e5), 1.0, int(single_cell.sum()))
        empty = rng.random(n) < empty_share
        lib[empty] = 0.0  # failed, empty libraries
        if empty_out is not None:
            empty_out.extend(np.flatnonzero(empty).tolist())
        log_fold = np.zeros((self.n_genes, n))
        log_fold[self.effect_rows] = self.effect[:, tissue]
        for s in np.unique(series):
            genes, fold = self._series_effect(s)
            cols = np.flatnonzero(series == s)
            log_fold[np.ix_(genes, cols)] += fold[:, None]
        w = self.p[:, None] * np.exp(log_fold)
        mean = w / w.sum(axis=0, keepdims=True) * lib[None, :]
        shape = 5.0
        lam = rng.gamma(shape, 1.0, size=mean.shape) * (mean / shape)
        counts = rng.poisson(lam)
        if single_cell.any():
            drop = rng.random((mean.shape[0], int(single_cell.sum()))) < 0.7
            sc = counts[:, single_cell]
            sc[drop] = 0
            counts[:, single_cell] = sc
        same = self.dup_rows[self.dup_identical]
        counts[same] = counts[self.dup_source[self.dup_identical]]
        return np.minimum(counts, np.iinfo(np.uint32).max).astype(np.uint32)


def _string_dataset(group: h5py.Group, name: str, values, kind: str) -> None:
    values = list(values)
    if kind == "fixed":
        enc = [v.encode("utf-8") for v in values]
        width = max((len(v) for v in enc), default=1) or 1
        group.create_dataset(name, data=np.array(enc, dtype=f"S{width}"))
    else:
        group.create_dataset(
            name, data=np.array(values, dtype=object), dtype=h5py.string_dtype("utf-8")
        )


def _compress_column(col: np.ndarray, chunk_rows: int, level: int, shuffle: bool) -> list[bytes]:
    import deflate

    n = col.size
    out = []
    for r0 in range(0, n, chunk_rows):
        piece = np.zeros(chunk_rows, dtype="<u4")
        piece[: min(chunk_rows, n - r0)] = col[r0 : r0 + chunk_rows]
        raw = piece.tobytes()
        if shuffle:
            raw = np.frombuffer(raw, np.uint8).reshape(-1, 4).T.tobytes()
        out.append(bytes(deflate.zlib_compress(raw, level)))
    return out


def write_archs4_file(
    path: str | os.PathLike,
    *,
    n_genes: int = 4_500,
    n_samples: int = 400,
    species: str = "human",
    level: str = "gene",
    version: str = "2.5",
    seed: int = 0,
    compression: str | None = "gzip",
    compression_opts: int = 4,
    shuffle: bool = False,
    string_kind: str = "vlen",
    chunk_rows: int = 2000,
    block_samples: int = 512,
    empty_libraries: bool = False,
    tour: bool = False,
    progress: Callable[[int, int], None] | None = None,
    poor_samples: float = 0.0,
) -> Path:
    """Write a synthetic file in the exact ARCHS4 layout and return its path.

    Parameters
    ----------
    path : path-like
        Where to write.  The file appears there only when complete (written to a
        temporary name in the same folder, then renamed).
    n_genes, n_samples : int
        Shape of ``data/expression`` (features x samples).
    species : {"human", "mouse"}
    level : {"gene", "transcript"}
        Transcript files keep their row ids in ``meta/transcripts``.
    version : {"2.1.2", "2.2", "2.5", "2.6"}
        Field names and optional read-count fields of that release.
    seed : int
        Output is a deterministic function of all arguments.
    compression : {"gzip", "lzf", None}
        ``"gzip"`` (deflate, what ARCHS4 uses) writes pre-compressed chunks directly;
        other filters go through h5py (useful to test the reader's fallback).
    shuffle : bool
        Add the shuffle filter before deflate.
    string_kind : {"vlen", "fixed"}
        Variable-length UTF-8 strings (ARCHS4) or fixed-length byte strings.
    block_samples : int
        Samples generated per block: memory is about ``n_genes * block_samples * 24``
        bytes whatever ``n_samples`` is.
    empty_libraries : bool, default False
        Give ~1% of the samples an empty library (no reads at all), as failed runs in
        ARCHS4 have; CPM and TMM are undefined for them.
    tour : bool, default False
        Put archs4py's example samples (:data:`TOUR_SAMPLES`) and series GSE64016
        (:data:`TOUR_SERIES`) in the last 14 samples (needs at least 30 samples).
    progress : callable, optional
        Called as ``progress(samples_done, n_samples)`` after each block.
    poor_samples : float, default 0
        If > 0: the 13 rows after the known symbols become the mitochondrial genes
        (:data:`MITO_SYMBOLS`), holding 2-8% of each library, and about this share of the
        bulk samples become poor (degraded) libraries: their other counts are thinned to
        3% (a low library, fewer genes detected) and 40-70% of what is left is
        mitochondrial.  :func:`planted_expression` names them.  With 0 (the default) the
        file is what it always was.

    Examples
    --------
    >>> import h5py, tempfile, os
    >>> p = write_archs4_file(os.path.join(tempfile.mkdtemp(), "x.h5"), n_genes=50, n_samples=8)
    >>> with h5py.File(p) as f:
    ...     print(f["data/expression"].shape, f["data/expression"].chunks, len(f["meta/samples"]))
    (50, 8) (50, 1) 29
    """
    if species not in _SPECIES:
        raise ValueError(f"species must be one of {sorted(_SPECIES)}, got {species!r}")
    if level not in ("gene", "transcript"):
        raise ValueError(f"level must be 'gene' or 'transcript', got {level!r}")
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
    if string_kind not in ("vlen", "fixed"):
        raise ValueError("string_kind must be 'vlen' or 'fixed'")
    spec = _SPECIES[species]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    (ids, symbols, biotypes), model, lat = _model(n_genes, n_samples, species, seed, tour)
    chunk_r = min(chunk_rows, n_genes)
    poor = _poor_plan(n_genes, n_samples, seed, poor_samples, lat) if poor_samples else None
    if poor is not None:
        symbols = symbols.copy()
        symbols[poor[0]] = [m if spec["upper"] else m.lower() for m in MITO_SYMBOLS]

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            dset = f.create_dataset(
                "data/expression",
                shape=(n_genes, n_samples),
                maxshape=(n_genes, None),
                dtype="<u4",
                chunks=(chunk_r, 1),
                compression=compression,
                compression_opts=compression_opts if compression == "gzip" else None,
                shuffle=shuffle,
            )
            direct = compression == "gzip"
            block_seeds = np.random.SeedSequence([seed, 7, n_genes, n_samples]).spawn(
                max(1, -(-n_samples // block_samples))
            )
            with ThreadPoolExecutor(max(2, os.cpu_count() or 2)) as pool:
                for b, s0 in enumerate(range(0, n_samples, block_samples)):
                    s1 = min(n_samples, s0 + block_samples)
                    empty: list[int] = []
                    block = model.block(np.random.default_rng(block_seeds[b]),
                                        *(v[s0:s1] for v in lat.counts_of),
                                        empty_out=empty)  # fmt: skip
                    redraw = {p for p in lat.redraw if s0 <= p < s1}
                    if not empty_libraries:
                        redraw.update(s0 + j for j in empty)
                    for p in sorted(redraw):  # drawn on their own: the others are unchanged
                        one = slice(p, p + 1)
                        block[:, p - s0] = model.block(
                            np.random.default_rng([seed, 13, n_genes, n_samples, p]),
                            lat.single_cell[one],
                            lat.tissue[one],
                            lat.series[one],
                            empty_share=0.0,
                        )[:, 0]
                    if poor is not None:
                        _plant_poor(block, s0, poor, seed, n_genes, n_samples)
                    if direct:
                        compress = partial(
                            _compress_column,
                            chunk_rows=chunk_r,
                            level=compression_opts,
                            shuffle=shuffle,
                        )
                        cols = pool.map(compress, block.T)
                        for j, pieces in enumerate(cols):
                            for k, data in enumerate(pieces):
                                dset.id.write_direct_chunk((k * chunk_r, s0 + j), data)
                    else:
                        dset[:, s0:s1] = block
                    del block
                    if progress is not None:
                        progress(s1, n_samples)

            _write_features(f, level, version, spec, ids, symbols, biotypes, string_kind)
            samples = f.create_group("meta/samples")
            for name in SAMPLE_FIELDS:
                values = _sample_field(name, lat, spec, species)
                if name == "singlecellprobability":
                    samples.create_dataset(name, data=values)
                else:
                    _string_dataset(samples, name, values, string_kind)
            if version in ("2.1.2", "2.2"):
                samples.create_dataset(
                    "readsaligned", data=np.round(lat.scp * 0 + 1e6 + lat.gsm % 9e6).astype("u4")
                )
            elif version == "2.6":
                samples.create_dataset("alignedreads", data=(1e6 + lat.gsm % 9e6).astype("f8"))
            info = f.create_group("meta/info")
            for key, val in (
                ("author", "archs4x synthetic example"),
                ("contact", "archs4x developers"),
                ("creation-date", "2026-11-24"),
                ("laboratory", "synthetic"),
                ("version", version),
            ):
                info.create_dataset(key, data=val, dtype=h5py.string_dtype("utf-8"))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _poor_plan(n_genes: int, n_samples: int, seed: int, share: float, lat: _SampleLatents):
    """``(mito rows, poor sample mask)`` of a file with poor samples (own random stream)."""
    first = len(_KNOWN_SYMBOLS)
    if n_genes < first + len(MITO_SYMBOLS):
        raise ValueError(f"poor_samples needs at least {first + len(MITO_SYMBOLS)} genes")
    if not 0 < share < 1:
        raise ValueError(f"poor_samples must be a share in (0, 1), got {share!r}")
    rows = np.arange(first, first + len(MITO_SYMBOLS))
    u = np.random.default_rng([seed, 31337, n_genes, n_samples]).random(n_samples)
    poor = (u < share) & ~lat.single_cell
    poor[sorted(lat.redraw)] = False  # the tour's samples stay as they are
    return rows, poor


def _plant_poor(block: np.ndarray, s0: int, plan, seed: int, n_genes: int,
                n_samples: int) -> None:  # fmt: skip
    """Mitochondrial counts for every sample of a block; degrade the poor ones (in place)."""
    rows, poor = plan
    rng = np.random.default_rng([seed, 31338, n_genes, n_samples, s0])
    n = block.shape[1]
    is_poor = poor[s0 : s0 + n]
    other = np.ones(block.shape[0], dtype=bool)
    other[rows] = False
    rest = block[other]
    thinned = rng.binomial(rest[:, is_poor], 0.03)
    rest[:, is_poor] = thinned
    block[other] = rest
    frac = np.where(is_poor, rng.uniform(0.4, 0.7, n), rng.uniform(0.02, 0.08, n))
    lib = rest.sum(axis=0, dtype=np.float64)
    total = np.round(lib * frac / (1 - frac))
    share = np.linspace(2.0, 1.0, rows.size)
    share /= share.sum()
    mito = rng.poisson(share[:, None] * total[None, :])
    block[rows] = np.minimum(mito, np.iinfo(np.uint32).max).astype(np.uint32)


def planted_expression(
    *,
    n_genes: int = 4_500,
    n_samples: int = 400,
    species: str = "human",
    seed: int = 0,
    tour: bool = True,
    poor_samples: float = 0.0,
) -> dict[str, object]:
    """The expression truth planted in a file :func:`write_archs4_file` writes with the
    same arguments.

    Returns a dict: ``"programmes"`` maps each tissue (its ``source_name_ch1``) to the
    Ensembl ids of the genes up in it (a programme of ~2% of the genes at a log-fold of
    about 1.2, and its marker genes at log(40), ``"markers"``); ``"tissue"`` maps each
    GSM id to its tissue; ``"poor"`` lists the GSM ids of the poor samples and
    ``"mito"`` the mitochondrial genes (both empty unless ``poor_samples``).  The
    mitochondrial rows are left out of the programmes (their counts are replaced).
    ``tour`` defaults to True, as :func:`example_file` sets it for human files.

    Examples
    --------
    >>> truth = planted_expression()
    >>> truth["markers"]["liver"]
    ['ENSG00000000036', 'ENSG00000000043']
    >>> len(truth["programmes"]["liver"]), truth["poor"]
    (92, [])
    """
    (ids, _, _), model, lat = _model(n_genes, n_samples, species, seed, tour)
    mito = np.zeros(0, dtype=np.int64)
    poor: list[str] = []
    if poor_samples:
        mito, mask = _poor_plan(n_genes, n_samples, seed, poor_samples, lat)
        poor = [f"GSM{g}" for g in lat.gsm[mask]]
    n_known = min(n_genes, len(_KNOWN_SYMBOLS))
    programmes, markers = {}, {}
    for t, (name, _, _) in enumerate(_TISSUES):
        marks = [g for g in _TISSUE_MARKERS.get(t, ()) if g < n_known]
        rows = sorted(set(model.programmes[t].tolist()) - set(mito.tolist()) | set(marks))
        programmes[name] = [str(ids[g]) for g in rows]
        markers[name] = [str(ids[g]) for g in marks]
    tissue_of = {f"GSM{g}": _TISSUES[int(t)][0] for g, t in zip(lat.gsm, lat.tissue, strict=True)}
    return {"programmes": programmes, "markers": markers, "tissue": tissue_of, "poor": poor,
            "mito": [str(ids[g]) for g in mito]}  # fmt: skip


def _model(n_genes: int, n_samples: int, species: str, seed: int, tour: bool):
    """``(gene table, count model, sample latents)`` of a file: every draw, in order."""
    if tour and n_samples < 30:
        raise ValueError(f"tour=True needs at least 30 samples, got {n_samples}")
    rng = np.random.default_rng([seed, n_genes, n_samples])
    ids, symbols, biotypes, dup_rows, dup_source = _gene_table(n_genes, _SPECIES[species], rng)
    model = _CountModel(n_genes, rng, dup_rows, dup_source, seed)
    lat = _SampleLatents(n_samples, rng)
    if tour:
        _tour(lat, n_samples)
    return (ids, symbols, biotypes), model, lat


def planted_characteristics(
    *,
    n_genes: int = 4_500,
    n_samples: int = 400,
    species: str = "human",
    seed: int = 0,
    tour: bool = False,
) -> dict[str, dict[str, object]]:
    """The truth planted in ``characteristics_ch1`` of a file :func:`write_archs4_file`
    writes with the same arguments: GSM id -> {key: value}.

    Keys are the canonical names of :data:`archs4x.query.characteristics.SYNONYMS`; a value
    is ``None`` where the submitter wrote a missing value ("NA", "unknown", ""); ages are
    numbers in years; a key written twice maps to its values joined by ``"; "``.  The
    truth is of the text as written (double-encoded samples have double-encoded values:
    open the file with ``repair_text=True`` to compare them).

    Examples
    --------
    >>> truth = planted_characteristics(tour=True)
    >>> truth["GSM1482938"]
    {'tissue': 'liver', 'sex': 'female', 'age': 54.0, 'disease': 'NAFLD'}
    >>> sorted({len(t) for t in truth.values()})
    [1, 2, 3, 4, 5, 6]
    """
    (_, _, _), _, lat = _model(n_genes, n_samples, species, seed, tour)
    _, truths = _characteristics(lat, species)
    return {f"GSM{g}": t for g, t in zip(lat.gsm, truths, strict=True)}


def _write_features(f, level, version, spec, ids, symbols, biotypes, kind) -> None:
    if level == "gene":
        g = f.create_group("meta/genes")
        id_name = "ensembl_gene" if version in ("2.5", "2.6") else "ensembl_gene_id"
        sym_name = "gene_symbol" if version == "2.1.2" else "symbol"
        _string_dataset(g, id_name, ids, kind)
        _string_dataset(g, sym_name, symbols, kind)
        _string_dataset(g, "biotype", biotypes, kind)
    else:
        t = f.create_group("meta/transcripts")
        n = len(ids)
        tx_ids = [f"{spec['tx']}{i * 5 + 2:011d}" for i in range(n)]
        # Transcripts of one gene are neighbours: ~3 transcripts per gene.
        gene_of = np.arange(n) // 3
        genes = [f"{spec['gene']}{g * 7 + 1:011d}" for g in gene_of]
        _string_dataset(t, "ensembl_id", tx_ids, kind)
        _string_dataset(t, "ensembl_gene", genes, kind)
        _string_dataset(t, "symbol", symbols[gene_of], kind)
        _string_dataset(t, "biotype", biotypes[gene_of], kind)


def example_file(
    level: str = "gene",
    *,
    species: str = "human",
    version: str = "2.5",
    n_genes: int = 4_500,
    n_samples: int = 400,
    seed: int = 0,
    empty_libraries: bool = False,
    poor_samples: float = 0.0,
) -> Path:
    """Return the path of a cached example file, writing it on first use.

    The default (4,500 genes x 400 samples, ~2 MB) is the embedded example data that
    the demo, doctests, notebooks and tests use.  Human example files of 30 samples or
    more hold archs4py's example samples and series GSE64016 (``tour=True`` of
    :func:`write_archs4_file`).  No sample has an empty library, so CPM and TMM compute,
    unless ``empty_libraries=True`` (the same file with ~1% of the libraries empty).
    ``poor_samples=0.05`` gives the file mitochondrial genes and ~5% poor samples (see
    :func:`write_archs4_file`; the analysis examples use it).

    Examples
    --------
    >>> p = example_file()
    >>> p.name
    'human_gene_v2.5_4500x400_s0_g3.h5'
    >>> example_file(empty_libraries=True).name
    'human_gene_v2.5_4500x400_s0_g3_empty.h5'
    """
    name = (f"{species}_{level}_v{version}_{n_genes}x{n_samples}_s{seed}_g{GENERATOR_VERSION}"
            f"{'_empty' if empty_libraries else ''}"
            f"{f'_poor{poor_samples:g}' if poor_samples else ''}.h5")  # fmt: skip
    path = cache_dir() / name
    if not path.exists():
        write_archs4_file(path, n_genes=n_genes, n_samples=n_samples, species=species,
                          level=level, version=version, seed=seed,
                          empty_libraries=empty_libraries, poor_samples=poor_samples,
                          tour=species == "human" and n_samples >= 30)  # fmt: skip
    return path
