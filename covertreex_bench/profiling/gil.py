"""Evidence that the hot Numba kernels hold no GIL and call no Python.

Four probes (docs/design.md, "Harness"):

(a) ``llvm_scan``: the LLVM IR of every compiled signature of every hot kernel
    (``dispatcher.inspect_llvm()``) is searched for calls to ``numba_gil_ensure``,
    ``PyGILState_Ensure``, ``PyObject_Call*`` and ``numba_unpickle``. Each call site is
    classified by the function and basic block it sits in:

    - ``wrapper``: the CPython entry wrapper (``cpython.*``) or the C-callable wrapper
      (``cfunc.*``) that Numba emits next to the kernel; they run when Python calls the
      kernel (argument unboxing, re-raising an exception), never inside it;
    - ``parfor_launch``: ``numba_gil_ensure`` immediately followed by ``PyEval_SaveThread``:
      a ``parallel=True`` kernel takes a thread state before ``numba_parallel_for`` and
      releases the GIL for the whole parallel region;
    - ``error_path``: the block is the cold side of a branch (``!prof`` branch weights) or
      leads straight to ``Py_FatalError`` / ``PyErr_*`` / ``unreachable``: only an error
      (a failed BLAS call, an exception in a parallel worker) takes the GIL there;
    - ``hot``: anything else. A kernel is ``clean`` when it has no ``hot`` site.

(b) ``heartbeat``: a Python thread wakes every millisecond while the main thread runs a
    scenario; the longest gap between beats is the longest stretch in which the main thread
    kept the GIL (or Python's switch interval, 5 ms, when it runs plain Python).
(c) ``two_thread``: the same scenario in one thread, then in two threads at once (Numba and
    BLAS pinned to one thread each); throughput ratio ~2 on two cores when the kernel
    releases the GIL, ~1 when it does not.
(d) ``py_spy``: when the ``py-spy`` executable is on PATH, the share of samples in which the
    scenario's thread holds the GIL (``py-spy record --gil`` against a plain record).

A control kernel (the same loop compiled with ``nogil=True`` and ``nogil=False``) runs
through (b) and (c) so that the report shows the probes tell the two apart.
"""

from __future__ import annotations

import shutil
import sys
import time

from ..runtime import warm_up
from .kernels import hot_kernels, kernel_module_names, library_scenarios
from .llvm_scan import llvm_scan
from .probes import (control_scenarios, heartbeat, heartbeat_verdict, py_spy, set_thread_local_numba,
                     two_thread)


def warm_kernels(preset="quick", phases_list=("all", "baseline")) -> float:
    """Compile the hot kernels: the warm-up of ``preset`` and of a preset of the other metric
    (Euclidean: pointwise and blocked traversals) under every phase setting. Returns seconds."""
    from covertreex.phases import Phases
    from ..workloads import get_preset

    t0 = time.perf_counter()
    # Both metrics, whatever the preset: every hot kernel that can compile does.
    presets = [get_preset(preset)]
    presets.append(get_preset("euclid-32k" if presets[0].is_residual else "quick"))
    for p in presets:
        traversals = (None,) if p.is_residual else (None, "blocked")
        for label in phases_list:
            for traversal in traversals:
                warm_up(p, Phases.parse(label), traversal=traversal)
    return time.perf_counter() - t0


def gil_evidence(preset="quick", *, n: int = 8192, seconds: float = 0.5, warm: bool = True,
                 py_spy_probe: bool = True, say=None) -> dict:
    """All four probes; the ``gil`` object of the profile summary (see covertreex_bench.profiling)."""
    say = say or (lambda msg: None)
    out = {"preset": str(preset), "n": n, "warm_s": None}
    if warm:
        say("gil: compiling the hot kernels (warm run)")
        out["warm_s"] = warm_kernels(preset)
    kernels, errors = hot_kernels()
    scan = llvm_scan(kernels)
    compiled = [k for k in scan if k["compiled"]]
    say("gil: " + scan_counts(scan))
    out["modules"] = kernel_module_names()
    out["module_errors"] = errors
    out["kernels"] = scan
    out["llvm_clean"] = bool(compiled) and all(k["ok"] for k in compiled)
    scenarios, notes = [], []
    try:
        scenarios, notes = library_scenarios(preset, n=n)
    except Exception as exc:
        notes.append(f"library scenarios unavailable: {type(exc).__name__}: {exc}")
    controls = control_scenarios()
    out["scenario_notes"] = notes
    out["heartbeat"], out["two_thread"] = [], []
    for sc in scenarios + controls:
        say(f"gil: heartbeat and two-thread probes, {sc.name}")
        try:
            out["heartbeat"].append(heartbeat(sc, min_seconds=seconds))
        except Exception as exc:
            out["heartbeat"].append({"scenario": sc.name, "error": f"{type(exc).__name__}: {exc}"})
        try:
            out["two_thread"].append(two_thread(sc, min_seconds=seconds))
        except Exception as exc:
            out["two_thread"].append({"scenario": sc.name, "error": f"{type(exc).__name__}: {exc}"})
    _judge_heartbeats(out["heartbeat"])
    if py_spy_probe:
        say("gil: py-spy probe")
        names = [sc.name for sc in scenarios]
        # The most kernel-bound scenario there is, then the control that holds the GIL.
        first = next((x for x in ("residual_tile_kernel", "residual_tile[all]", "knn[all]",
                                  "build[all]") if x in names), None)
        wanted = ((first,) if first else ()) + ("control_gil",)
        out["py_spy"] = py_spy(wanted, preset=str(preset), n=n)
    else:
        out["py_spy"] = {"available": shutil.which("py-spy") is not None, "skipped": True,
                         "runs": [], "note": "py-spy probe not requested"}
    return out


def scan_counts(scan) -> str:
    """One line of the LLVM scan's counts, the same in the progress line and the summary:
    dispatchers scanned, how many have compiled code (the rest never ran), how many are clean."""
    compiled = [k for k in scan if k["compiled"]]
    bad = [k["kernel"] for k in compiled if not k["ok"]]
    return (f"LLVM scan of {len(scan)} dispatchers: {len(compiled)} compiled "
            f"({len(scan) - len(compiled)} never compiled in this run), "
            + (f"all {len(compiled)} clean" if not bad else f"{len(bad)} NOT clean: {', '.join(bad)}"))


def _judge_heartbeats(beats: list) -> None:
    """Set every heartbeat's ``released`` against the GIL-holding control's longest gap
    (``held_gap_ms``): see probes.heartbeat_verdict."""
    held = next((h["max_gap_ms"] for h in beats if h.get("scenario") == "control_gil" and "error" not in h),
                None)
    for h in beats:
        if "error" not in h:
            h["held_gap_ms"] = held
            h["released"] = heartbeat_verdict(h["max_gap_ms"], h["limit_ms"], held)


def _main(argv=None) -> int:
    """Child process of the py-spy probe: set up one scenario, print READY, run it a while."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m covertreex_bench.profiling.gil")
    parser.add_argument("--scenario", default="residual_tile_kernel")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--n", type=int, default=8192)
    args = parser.parse_args(argv)
    if args.scenario.startswith("control"):
        scenarios = control_scenarios()
    else:
        scenarios, _ = library_scenarios(args.preset, n=args.n, only={args.scenario})
    by_name = {s.name: s for s in scenarios}
    if args.scenario not in by_name:
        print(f"unknown scenario {args.scenario!r}; known: {', '.join(by_name)}", flush=True)
        return 2
    sc = by_name[args.scenario]
    set_thread_local_numba(1)
    sc.func()
    sc.func()
    print("READY", flush=True)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        sc.func()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
