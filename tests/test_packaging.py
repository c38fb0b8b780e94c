"""Packaging: what the sdist and the wheel hold, and that the index installs and runs alone.

The distributions are built with ``python -m build`` (sdist, then the wheel from the sdist, as
a release would) from a copy of the checkout's files, so the build writes nothing into the
working tree. The slow test installs the wheel without extras into a fresh virtualenv, at the
versions of constraints.txt, and runs the README's quick start there: the index must work with
numpy, numba, scipy and threadpoolctl alone, and must not pull in the harness's or the tests'
packages. It reaches PyPI (or pip's cache) for the build backend and the index's dependencies.
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
INDEX_DEPS = {"numpy", "numba", "scipy", "threadpoolctl"}
BENCH_DEPS = {"pandas", "pyinstrument"}
# Packages of the harness, the tests, asv and the optional dask front end: never needed by the index.
NOT_FOR_INDEX = ("pandas", "pyinstrument", "asv", "pytest", "dask", "distributed")
# Never in the wheel: the tests, the asv suites, the perf scripts, caches.
NOT_IN_WHEEL = re.compile(r"^(tests|asv_bench|perf|profiling|reports|docs)/|__pycache__|\.py[cod]$|\.nb[ic]$")


def _checkout_files() -> list[str]:
    """The files a clone of this checkout would have, with the working tree's edits."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return sorted(f for f in set(out.split("\0")) if f and (ROOT / f).is_file())


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """(wheel, sdist) built from a copy of the checkout."""
    if shutil.which("git") is None:
        pytest.skip("needs git to list the checkout's files")
    src = tmp_path_factory.mktemp("src")
    for rel in _checkout_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(src)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"python -m build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return wheels[0], sdists[0]


def _wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def _metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(zf.read(name).decode())


def test_wheel_holds_both_packages_and_package_data(dists):
    wheel, _ = dists
    names = set(_wheel_names(wheel))
    sources = [f for f in _checkout_files()
               if f.startswith(("covertreex/", "covertreex_bench/")) and f.endswith(".py")]
    assert "covertreex/__init__.py" in sources and "covertreex_bench/cli.py" in sources
    missing = [f for f in sources if f not in names]
    assert not missing, f"modules missing from the wheel: {missing}"
    for f in ("covertreex/cover_tree.py", "covertreex/insert/insert.py", "covertreex/query/knn.py",
              "covertreex/metrics/residual/metric.py", "covertreex/reference.py"):
        assert f in names
    assert "covertreex_bench/thresholds.toml" in names, "the gate thresholds are package data"


def test_wheel_has_license_and_nothing_else(dists):
    wheel, _ = dists
    names = _wheel_names(wheel)
    assert any(re.fullmatch(r"covertreex-[^/]+\.dist-info/licenses/LICENSE", n) for n in names), names
    stray = [n for n in names if NOT_IN_WHEEL.search(n)]
    assert not stray, f"not for the wheel: {stray}"
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"covertreex", "covertreex_bench"}


def test_metadata_ranges_extras_and_license(dists):
    wheel, _ = dists
    meta = _metadata(wheel)
    assert meta["Name"] == "covertreex"
    assert meta["License-Expression"] == "BSD-3-Clause"
    assert meta["Requires-Python"].replace(" ", "") == ">=3.11"
    reqs = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    runtime = {r.name.lower(): r for r in reqs if r.marker is None}
    assert set(runtime) == INDEX_DEPS, f"runtime dependencies are the index's only: {sorted(runtime)}"
    for name, req in runtime.items():
        ops = {spec.operator for spec in req.specifier}
        assert ops and not ops & {"==", "==="}, f"{name} is pinned ({req}); pins go in constraints.txt"
        assert ">=" in ops, f"{name} has no lower bound ({req})"

    def extra(name):
        return {r.name.lower() for r in reqs if r.marker is not None and r.marker.evaluate({"extra": name})}

    assert {"bench", "dev", "dask"} <= set(meta.get_all("Provides-Extra"))
    assert BENCH_DEPS <= extra("bench")
    assert not extra("bench") & INDEX_DEPS
    assert {"pytest", "hypothesis", "pytest-benchmark", "asv", "import-linter", "build"} <= extra("dev")
    assert not any(spec.operator == "==" for r in reqs for spec in r.specifier)


def test_console_script(dists):
    wheel, _ = dists
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt"))
        text = zf.read(name).decode()
    assert re.search(r"^covertreex\s*=\s*covertreex_bench\.cli:main$", text, re.M), text


def test_sdist_is_complete(dists):
    _, sdist = dists
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for f in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "constraints.txt",
              "covertreex/__init__.py", "covertreex_bench/cli.py", "covertreex_bench/thresholds.toml",
              "tests/conftest.py"):
        assert f in names, f"{f} missing from the sdist"
    stray = [n for n in names if re.search(r"__pycache__|\.py[cod]$|\.nb[ic]$|^\.venv/", n)]
    assert not stray, stray


def _quick_start() -> str:
    """The first python block of the README's Quick start section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README has no python block under '## Quick start'"
    return match.group(1)


@pytest.mark.slow
def test_index_installs_and_runs_alone(dists, tmp_path):
    wheel, _ = dists
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    py = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")}
    env.update(PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               NUMBA_CACHE_DIR=str(tmp_path / "numba_cache"))
    # No extras; constraints.txt pins the versions we test (pip's cache is used as usual).
    proc = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--constraint",
                           str(ROOT / "constraints.txt"), str(wheel)],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"pip install failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"

    script = tmp_path / "quick_start.py"
    script.write_text(_quick_start() + textwrap.dedent(f"""

        import importlib.metadata, json, sys
        import covertreex
        installed = []
        for name in {NOT_FOR_INDEX!r}:
            try:
                importlib.metadata.version(name)
                installed.append(name)
            except importlib.metadata.PackageNotFoundError:
                pass
        print(json.dumps({{
            "file": covertreex.__file__,
            "installed": installed,
            "imported": sorted(m for m in sys.modules
                               if m.split(".")[0] in {NOT_FOR_INDEX!r} + ("covertreex_bench",)),
            "numpy": importlib.metadata.version("numpy"),
        }}))
    """))
    # cwd is the temp dir: the checkout is not on sys.path, only the installed wheel is.
    proc = subprocess.run([str(py), str(script)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"quick start failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(report["file"]).is_relative_to(env_dir), report["file"]
    assert report["installed"] == [], f"installed with the index alone: {report['installed']}"
    assert report["imported"] == [], f"imported by the quick start: {report['imported']}"
    pinned = re.search(r"^numpy==(\S+)", (ROOT / "constraints.txt").read_text(), re.M)
    assert pinned and report["numpy"] == pinned.group(1)
