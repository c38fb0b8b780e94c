"""The house rules that keep the code readable, checked on the tracked sources.

Modules stay under 600 lines, functions of the index under 80, Numba kernels take at most 12
parameters (the tree travels as one struct), and every document a file cites is in the repo.
"""

import ast
import importlib
import os
import pkgutil
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from numba.core.registry import CPUDispatcher

import covertreex

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 600
MAX_INDEX_FUNCTION_LINES = 80
MAX_KERNEL_PARAMETERS = 12


def tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    return [ROOT / p for p in out]


def functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def too_long_modules(paths, limit=MAX_MODULE_LINES):
    return {p.name: n for p in paths if (n := len(p.read_text(encoding="utf-8").splitlines())) >= limit}


def too_long_functions(paths, limit=MAX_INDEX_FUNCTION_LINES):
    return [f"{p.name}:{f.lineno} {f.name} ({f.end_lineno - f.lineno + 1} lines)"
            for p in paths for f in functions(p) if f.end_lineno - f.lineno + 1 > limit]


def index_modules():
    for info in pkgutil.walk_packages(covertreex.__path__, "covertreex."):
        if info.name != "covertreex.distributed":  # optional; needs dask
            yield importlib.import_module(info.name)


def kernel_parameter_counts(modules):
    """{qualified name: parameters} of every Numba dispatcher in ``modules``, and of every
    function of their kernel modules (the templates that engine.specialise compiles)."""
    counts = {}
    for module in modules:
        for name, value in vars(module).items():
            if isinstance(value, CPUDispatcher):
                counts[f"{value.py_func.__module__}.{name}"] = value.py_func.__code__.co_argcount
            elif (module.__name__.endswith("_kernels") and hasattr(value, "__code__")
                  and getattr(value, "__module__", None) == module.__name__):
                counts[f"{module.__name__}.{name}"] = value.__code__.co_argcount
    return counts


def too_many_parameters(counts):
    return {k: v for k, v in counts.items() if v > MAX_KERNEL_PARAMETERS}


def test_every_tracked_module_has_under_600_lines():
    assert too_long_modules(tracked("*.py")) == {}


def test_no_function_of_the_index_has_more_than_80_lines():
    assert too_long_functions(tracked("covertreex/*.py")) == []


def test_no_numba_kernel_takes_more_than_12_parameters():
    counts = kernel_parameter_counts(index_modules())
    # The walk, the scans and the tile kernels must all have been found.
    for name in ("walk_block_kernel", "knn_pointwise", "scan_pointwise", "residual_tile_kernel",
                 "expand_frontier", "place_round"):
        assert any(key.endswith("." + name) for key in counts), name
    assert too_many_parameters(counts) == {}


def test_the_size_checks_catch_what_they_exist_to_catch(tmp_path):
    long_module = tmp_path / "long.py"
    long_module.write_text("x = 1\n" * MAX_MODULE_LINES)
    long_function = tmp_path / "func.py"
    long_function.write_text("def f():\n" + "    x = 1\n" * MAX_INDEX_FUNCTION_LINES)
    assert too_long_modules([long_module, long_function]) == {"long.py": 600}
    assert too_long_functions([long_module, long_function]) == ["func.py:1 f (81 lines)"]
    planted = types.ModuleType("planted_kernels")
    exec("from numba import njit\n"
         "@njit\n"
         "def wide(a, b, c, d, e, f, g, h, i, j, k, l, m):\n"
         "    return a\n"
         "def template(a, b, c, d, e, f, g, h, i, j, k, l, m):\n"
         "    return a\n", planted.__dict__)
    planted.template.__module__ = "planted_kernels"
    found = too_many_parameters(kernel_parameter_counts([planted]))
    assert set(found) == {"planted_kernels.wide", "planted_kernels.template"}


# Documents outside the repository that earlier files cited; readers of the repo cannot follow them.
# Spelled in pieces so that this file does not itself read as such a citation.
OUTSIDE = re.compile("|".join(["DESIGN" + s for s in (" section", " §")]
                              + ["ANCHORS", "shared" + "/spec", r"\.\./" + "shared", "/work/" + "shared"]))
DOC_CITE = re.compile(r"docs/([\w.-]+\.md)(?:, \"([^\"]+)\")?")


def cited_problems(paths):
    problems = []
    for path in paths:
        text = path.read_text(encoding="utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            where = f"{os.path.relpath(path, ROOT)}:{lineno}"
            if OUTSIDE.search(line):
                problems.append(f"{where} cites a document outside the repo: {line.strip()}")
            for doc, heading in DOC_CITE.findall(line):
                target = ROOT / "docs" / doc
                if not target.exists():
                    problems.append(f"{where} cites missing docs/{doc}")
                elif heading and not re.search(rf"^#+ {re.escape(heading)}\s*$",
                                               target.read_text(encoding="utf-8"), re.M):
                    problems.append(f"{where} cites a missing heading {heading!r} of docs/{doc}")
    return problems


def test_every_document_a_tracked_file_cites_is_in_the_repo():
    paths = [p for p in tracked("*.py", "*.md", "*.toml", "*.cfg", "Makefile", ".ci/run")
             if p.name != "test_structure.py" and p.is_file()]
    assert cited_problems(paths) == []


def test_the_citation_check_catches_outside_and_missing_documents(tmp_path):
    bad = tmp_path / "planted_citation.py"
    bad.write_text("# DESIGN" + ' section 4 says so\n# docs/nowhere.md\n'
                   '# docs/design.md, "No such heading"\n# docs/design.md, "Layout"\n')
    problems = cited_problems([bad])
    assert len(problems) == 3, problems
    assert "outside the repo" in problems[0] and "missing docs/nowhere.md" in problems[1]
    assert "missing heading 'No such heading'" in problems[2]


@pytest.mark.parametrize("module", ["covertreex_bench", "pandas", "pyinstrument", "asv", "pytest"])
def test_the_index_imports_no_harness_module(module):
    code = ("import sys, numpy as np, covertreex; "
            "covertreex.CoverTree().fit(np.random.default_rng(0).random((200, 2))).knn(None, k=2); "
            f"print({module!r} in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
