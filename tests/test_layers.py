"""The shape of the package: layers that import one way, no cycles, nothing done at import."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import archs4x

PACKAGE = Path(archs4x.__file__).parent

#: Layers from the bottom up; a module may import only from its own layer or lower ones.
LAYERS = [
    ("vocabulary", ("archs4x._options", "archs4x.errors", "archs4x.dims", "archs4x.progress")),
    ("storage", ("archs4x.storage",)),
    ("backends", ("archs4x.backends",)),
    ("query", ("archs4x.query",)),
    ("compute", ("archs4x.compute",)),
    ("write", ("archs4x.write",)),
    ("analysis", ("archs4x.analysis", "archs4x.embedding")),
    ("accessor", ("archs4x.accessor",)),
    ("fronts", ("archs4x.align", "archs4x.compat", "archs4x.cli", "archs4x.datasets",
                "archs4x.demo", "archs4x.listing", "archs4x.catalog", "archs4x.download",
                "archs4x.__main__", "archs4x")),
]  # fmt: skip


def layer_of(module: str) -> int:
    best = None
    for level, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (level, len(prefix))
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


def modules() -> list[str]:
    names = ["archs4x"]
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="archs4x."):
        names.append(info.name)
    return sorted(names)


def imports_of(module: str) -> list[tuple[str, bool]]:
    """archs4x modules imported by ``module``: (name, at module level)."""
    spec_path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not spec_path.exists():
        spec_path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    tree = ast.parse(spec_path.read_text())
    is_package = spec_path.name == "__init__.py"
    out = []
    top_level = set(map(id, tree.body))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                root = ".".join(base + ([node.module] if node.module else []))
            else:
                root = node.module or ""
            names = [root] + [f"{root}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name == "archs4x" or name.startswith("archs4x."):
                # the longest prefix that is a module of the package
                while name not in ALL and "." in name:
                    name = name.rsplit(".", 1)[0]
                if name in ALL and name != module:
                    out.append((name, id(node) in top_level))
    return out


ALL = set(modules())


def test_every_module_imports():
    import importlib

    for name in sorted(ALL - {"archs4x.__main__"}):  # __main__ runs the CLI
        importlib.import_module(name)


def test_no_module_imports_a_higher_layer():
    wrong = []
    for module in sorted(ALL):
        for target, _ in imports_of(module):
            if layer_of(target) > layer_of(module):
                wrong.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} "
                             f"({LAYERS[layer_of(target)][0]})")  # fmt: skip
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph = {m: sorted({t for t, _ in imports_of(m)}) for m in ALL}
    # a package imports its submodules; a submodule importing a sibling through the
    # package is not a cycle of ideas, so edges into a package's own __init__ are skipped
    seen, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append([*stack[stack.index(node) :], node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for target in graph[node]:
            if node.startswith(target + "."):  # a module importing its own package
                continue
            if target.startswith(node + "."):  # a package importing its own submodules
                continue
            visit(target)
        stack.pop()

    for module in sorted(ALL):
        visit(module)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


_SNAPSHOT = """
import json, sys, warnings
import dask, fsspec, fsspec.caching
# the third-party libraries archs4x uses set warning filters of their own when imported:
# import them first, so that only archs4x's own import is compared
import dask.array, distributed, h5py, numcodecs, numpy, pandas, pyarrow, pyarrow.compute
import requests, scipy.special, scipy.stats, tqdm, urllib3, xarray, zarr, flox, deflate
def state():
    return {
        "dask": json.dumps(dask.config.config, sort_keys=True, default=repr),
        "fsspec_caches": sorted(map(str, fsspec.caching.caches)),
        "fsspec_known": sorted(fsspec.available_protocols()),
        "warnings": repr(warnings.filters),
        "threads": __import__("threading").active_count(),
    }
before = state()
import archs4x
after = state()
print(json.dumps({k: before[k] == after[k] for k in before}))
"""


def test_import_changes_no_global_state():
    out = subprocess.run([sys.executable, "-c", _SNAPSHOT], capture_output=True, text=True,
                         check=True)  # fmt: skip
    unchanged = json.loads(out.stdout)
    assert all(unchanged.values()), unchanged


@pytest.mark.parametrize("name", ["ChunkReader", "LocalFile", "open_source"])
def test_storage_has_no_xarray(name):
    """The storage layer works without importing xarray."""
    code = f"import sys; from archs4x.storage import {name}; print('xarray' in sys.modules)"
    # archs4x/__init__ imports everything; import the subpackage without the package
    code = ("import sys, types, importlib.util, pathlib; "
            f"pkg = types.ModuleType('archs4x'); pkg.__path__ = [{str(PACKAGE)!r}]; "
            "sys.modules['archs4x'] = pkg; " + code)  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
