"""covertreex profile: the static GIL scan of the compiled hot kernels, the probes, the files.

The LLVM scan test is a real assertion on the compiled code: every Numba dispatcher of the
kernel modules that a warm run compiled must be nogil and hold no call to numba_gil_ensure,
PyGILState_Ensure, PyObject_Call* or numba_unpickle outside its Python wrappers, the
parallel-region launch and error paths.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from covertreex_bench.profiling import kernels as kernel_finder, probes
from covertreex_bench.profiling.capture import CATEGORIES, SessionClassifier
from covertreex_bench.profiling.llvm_scan import llvm_scan, scan_llvm_ir


@pytest.fixture(scope="module")
def profile_run(tmp_path_factory):
    """One `covertreex profile` run on a scaled-down quick preset (compiles the kernels); n=2000
    gives the insertion loop enough kernel time for its 1 ms samples to land in the kernels."""
    from covertreex_bench.profiling import cli as profile_cli

    out = tmp_path_factory.mktemp("profile")
    argv = ["--preset", "quick", "--n", "2000", "--queries", "32", "--out", str(out),
            "--gil-n", "1500", "--gil-seconds", "0.15", "--no-py-spy", "--quiet"]
    rc = profile_cli.main(argv)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return rc, out, summary


def test_llvm_scan_finds_no_gil_or_python_calls_in_hot_kernels(profile_run):
    rc, _, summary = profile_run
    kernels, errors = kernel_finder.hot_kernels()
    assert not errors, f"kernel modules failed to import: {errors}"
    scan = llvm_scan(kernels)
    compiled = [k for k in scan if k["compiled"]]
    assert len(compiled) >= 5, [k["kernel"] for k in scan]
    problems = {k["kernel"]: (k["error"] or ("nogil=False" if not k["nogil"] else k["hot_sites"][:3]))
                for k in compiled if not k["ok"]}
    assert not problems, f"hot kernels that take the GIL or call Python: {problems}"
    # The module list covers every *_kernels module plus the residual metric.
    names = kernel_finder.kernel_module_names()
    assert "covertreex.metrics.residual.metric" in names
    assert "covertreex.metrics.distance_kernels" in names
    assert all(n.endswith("_kernels") or n in kernel_finder.EXTRA_KERNEL_MODULES for n in names)
    assert summary["gil"]["llvm_clean"] is True
    assert rc == 0


def test_llvm_scan_flags_objmode_and_gil_holding_kernels():
    """The scanner itself: an objmode callout is a hot site; nogil=False is not ok."""
    from numba import njit, objmode

    def body(x):
        s = 0.0
        for i in range(x.shape[0]):
            s += x[i]
            if s > 1e300:
                with objmode(y="float64"):
                    y = float(np.sum(x))
                s = y
        return s

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bad = njit(nogil=True)(body)
        bad(np.ones(3))
    res = [scan_llvm_ir(ir) for ir in bad.inspect_llvm().values()]
    hot = {s for r in res for s in r["sites"]["hot"]}
    assert {"numba_gil_ensure", "PyObject_Call"} <= hot, res

    held = njit(nogil=False)(lambda x: x.sum())
    held(np.ones(3))
    entry = llvm_scan([kernel_finder.Kernel("test", "held", held)])[0]
    assert entry["clean"] is True and entry["ok"] is False


def test_profile_writes_files_and_summary(profile_run):
    rc, out, summary = profile_run
    assert rc == 0
    assert summary["schema"] == "covertreex.profile" and summary["version"] == 1
    for key in ("created_unix", "command", "preset", "environment", "git_commit", "runs",
                "callout_comparison", "gil", "data_ms"):
        assert key in summary, key
    assert summary["preset"]["n"] == 2000 and summary["preset"]["scaled"] is True
    assert [r["phases"] for r in summary["runs"]] == ["all", "baseline"]
    for run in summary["runs"]:
        assert "error" not in run, run.get("error")
        for kind in ("html", "session", "json", "speedscope"):
            path = out / run["files"][kind]
            assert path.is_file() and path.stat().st_size > 0, path
        html = (out / run["files"]["html"]).read_text(encoding="utf-8")
        assert "fonts.googleapis.com" not in html
        json.loads((out / run["files"]["json"]).read_text(encoding="utf-8"))
        speedscope = json.loads((out / run["files"]["speedscope"]).read_text(encoding="utf-8"))
        assert "profiles" in speedscope
        for key in ("build_wall_ms", "query_wall_ms", "build_summary", "query", "profile", "callouts"):
            assert key in run, key
        for region in ("build", "build_hot", "query"):
            reg = run["callouts"][region]
            assert reg["total_ms"] > 0, region
            assert set(reg["categories_ms"]) == set(CATEGORIES)
            assert abs(sum(reg["categories_ms"].values()) - reg["total_ms"]) < 1e-6 * reg["total_ms"] + 1e-9
            assert set(reg["shares"]) == set(CATEGORIES)
            for key in ("python_share", "compiled_share", "python_called_from_kernels_ms",
                        "top_kernels", "top_lines", "top_other"):
                assert key in reg
        assert run["callouts"]["build_hot"]["categories_ms"]["numba_kernels"] > 0
    comp = summary["callout_comparison"]
    assert comp["region"] == "build_hot" and set(comp["python_share"]) == {"all", "baseline"}
    g = summary["gil"]
    for key in ("kernels", "llvm_clean", "heartbeat", "two_thread", "py_spy", "modules"):
        assert key in g, key
    assert g["py_spy"]["skipped"] is True and g["py_spy"]["note"]
    scenarios = {h["scenario"] for h in g["heartbeat"]}
    assert {"control_nogil", "control_gil", "residual_tile[all]", "build[all]"} <= scenarios
    for probe in g["heartbeat"] + g["two_thread"]:
        assert "error" not in probe, probe


def test_heartbeat_tells_gil_from_nogil(profile_run):
    """The control loop compiled with nogil=False stalls the heartbeat for a whole call."""
    _, _, summary = profile_run
    beats = {h["scenario"]: h for h in summary["gil"]["heartbeat"]}
    held, free = beats["control_gil"], beats["control_nogil"]
    assert held["max_gap_ms"] >= 0.8 * held["call_ms_median"], held
    assert held["released"] is False
    assert free["max_gap_ms"] < held["max_gap_ms"], (free, held)


@pytest.mark.parametrize("gap, held, verdict", [
    (24.47, 60.0, None),     # just under a 25 ms limit: inconclusive, not released
    (12.5, 60.0, True),      # half the limit: released
    (12.6, None, None),      # above half the limit, no control: inconclusive
    (60.0, 60.0, False),     # as long as the GIL-holding control's gap: held
    (80.0, 60.0, False),
    (59.9, 60.0, None),
])
def test_heartbeat_verdict_margins(gap, held, verdict):
    assert probes.heartbeat_verdict(gap, 25.0, held) is verdict
    assert probes.verdict_word(verdict) == {True: "released", False: "held", None: "inconclusive"}[verdict]


def test_scan_counts_are_one_count():
    from covertreex_bench.profiling.gil import scan_counts

    scan = ([{"kernel": f"k{i}", "compiled": True, "ok": True} for i in range(3)]
            + [{"kernel": "bad", "compiled": True, "ok": False}]
            + [{"kernel": f"cold{i}", "compiled": False, "ok": True} for i in range(2)])
    assert scan_counts(scan) == ("LLVM scan of 6 dispatchers: 4 compiled (2 never compiled in this "
                                 "run), 1 NOT clean: bad")
    assert scan_counts(scan[:3]).endswith("3 compiled (0 never compiled in this run), all 3 clean")


def test_profile_console_uses_the_scan_counts(profile_run, capsys):
    from covertreex_bench.profiling import cli as profile_cli
    from covertreex_bench.profiling.gil import scan_counts

    _, out, summary = profile_run
    profile_cli.print_summary(summary, out / "summary.json")
    printed = capsys.readouterr().out
    assert f"GIL static scan: {scan_counts(summary['gil']['kernels'])}" in printed
    assert printed.count(" dispatchers") == 1
    words = {probes.verdict_word(h["released"]) for h in summary["gil"]["heartbeat"]}
    assert all(f"): {w}" in printed for w in words)


def test_gil_probes_cover_the_nopython_tile_kernel(profile_run):
    """The phase-6 tile must be probed itself, not only the Python tile around it."""
    _, _, summary = profile_run
    probed = {h["scenario"] for h in summary["gil"]["heartbeat"]}
    assert "residual_tile_kernel" in probed
    beat = next(h for h in summary["gil"]["heartbeat"] if h["scenario"] == "residual_tile_kernel")
    # Released (gap <= limit / 2) on a quiet machine; a loaded one may stretch a gap past that
    # (inconclusive), but never to the GIL-holding control's.
    assert beat["released"] is not False and beat["max_gap_ms"] < beat["held_gap_ms"], beat


def test_classifier_puts_detached_kernel_records_in_their_region():
    """A compiled-kernel record (thread root, then the kernel frame) belongs to the region of
    the record before it."""
    import covertreex.engine.walk_kernels as wk
    from covertreex_bench.profiling.capture import REGIONS

    kernel = next(obj for obj in vars(wk).values() if kernel_finder.is_dispatcher(obj))
    code = kernel.py_func.__code__
    kframe = f"{code.co_name}\x00{code.co_filename}\x00{code.co_firstlineno}"
    import covertreex.insert.insert as ins

    build_tree = ins.build_tree.__code__
    fit_file = __import__("covertreex.cover_tree", fromlist=["x"]).__file__
    full = ["MainThread\x00<thread>\x001", f"fit\x00{fit_file}\x0070\x01l84",
            f"{REGIONS['build_hot'][0]}\x00{build_tree.co_filename}\x00{build_tree.co_firstlineno}\x01l110"]

    class FakeSession:
        frame_records = [(full, 0.001), (["MainThread\x00<thread>\x001", kframe], 0.5)]

    res = SessionClassifier().classify({"build": FakeSession()})
    assert res["build_hot"]["categories_ms"]["numba_kernels"] == pytest.approx(500.0)
    assert res["build"]["total_ms"] == pytest.approx(501.0)


def test_profile_rejects_unknown_preset(capsys):
    from covertreex_bench.profiling import cli as profile_cli

    assert profile_cli.main(["--preset", "no-such-preset", "--quiet"]) == 2
    assert "unknown preset" in capsys.readouterr().err


@pytest.mark.skipif(__import__("shutil").which("py-spy") is None,
                    reason="py-spy not on PATH (pip install py-spy to run probe (d))")
def test_py_spy_probe_tells_gil_from_nogil():
    res = probes.py_spy(("residual_tile_kernel", "control_gil"), seconds=1.0, n=2048)
    runs = {r["scenario"]: r for r in res["runs"]}
    assert "error" not in runs["control_gil"], runs["control_gil"]
    assert runs["control_gil"]["gil_share"] > 0.8
    if "residual_tile_kernel" in runs and "error" not in runs["residual_tile_kernel"]:
        assert runs["residual_tile_kernel"]["gil_share"] < 0.2
