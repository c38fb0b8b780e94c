"""Probes (b) to (d) of the GIL evidence: a heartbeat thread, the two-thread speedup and py-spy
--gil, run on ``Scenario``s (units of hot-kernel work), with the control kernel that holds the GIL
on purpose so that the probes show they tell the two apart."""

from __future__ import annotations

import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

import numpy as np


@dataclass
class Scenario:
    """One unit of hot-kernel work, callable from any thread."""

    name: str
    description: str
    kernels: tuple
    func: object  # callable() -> None


def set_thread_local_numba(threads: int) -> None:
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def _control_body(n):
    acc = 0.0
    for i in range(n):
        x = (i % 1024) * 1e-3
        acc += math.sqrt(x * x + 1.0) * math.exp(-x)
    return acc


_CONTROL = {}


def control_kernels():
    """The control loop compiled twice: (nogil=True, nogil=False) dispatchers."""
    if not _CONTROL:
        from numba import njit

        _CONTROL["nogil"] = njit(nogil=True)(_control_body)
        _CONTROL["gil"] = njit(nogil=False)(_control_body)
        _CONTROL["nogil"](10)
        _CONTROL["gil"](10)
    return _CONTROL["nogil"], _CONTROL["gil"]


def _calibrate(fn, target_s: float) -> int:
    n = 1 << 16
    while True:
        t0 = time.perf_counter()
        fn(n)
        dt = time.perf_counter() - t0
        if dt >= target_s / 4 or n >= 1 << 34:
            return max(1, int(n * target_s / max(dt, 1e-9)))
        n *= 4


def control_scenarios(unit_s: float = 0.05) -> list[Scenario]:
    nogil, gil = control_kernels()
    n = _calibrate(nogil, unit_s)
    return [
        Scenario("control_nogil", f"control loop, @njit(nogil=True), n={n}", ("control",),
                 lambda: nogil(n)),
        Scenario("control_gil", f"control loop, @njit(nogil=False) (holds the GIL), n={n}",
                 ("control",), lambda: gil(n)),
    ]


def heartbeat(scenario: Scenario, min_seconds: float = 0.5, period_s: float = 0.001,
              threads: int = 1) -> dict:
    """Probe (b): longest pause of a 1 ms heartbeat thread while ``scenario`` runs."""
    from threadpoolctl import threadpool_limits

    beats = []
    stop = threading.Event()
    started = threading.Event()

    def beat():
        last = time.perf_counter()
        started.set()
        while not stop.is_set():
            time.sleep(period_s)
            now = time.perf_counter()
            beats.append(now - last)
            last = now

    set_thread_local_numba(threads)
    with threadpool_limits(limits=threads, user_api="blas"):
        scenario.func()  # warm: first call may compile or allocate
        thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
        thread.start()
        started.wait()
        time.sleep(0.02)
        calls = []
        t_start = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            scenario.func()
            calls.append(time.perf_counter() - t0)
            if time.perf_counter() - t_start >= min_seconds and len(calls) >= 2:
                break
        duration = time.perf_counter() - t_start
        stop.set()
        thread.join()
    gaps = np.asarray(beats[2:] or beats) * 1e3
    switch_ms = sys.getswitchinterval() * 1e3
    limit_ms = max(4 * switch_ms, 25.0)
    call_ms = statistics.median(calls) * 1e3
    max_gap = float(gaps.max()) if gaps.size else math.nan
    return {
        "scenario": scenario.name, "description": scenario.description,
        "kernels": list(scenario.kernels), "threads": threads,
        "duration_ms": duration * 1e3, "calls": len(calls), "call_ms_median": call_ms,
        "call_ms_max": max(calls) * 1e3, "beats": int(gaps.size), "period_ms": period_s * 1e3,
        "max_gap_ms": max_gap,
        "p99_gap_ms": float(np.percentile(gaps, 99)) if gaps.size else math.nan,
        "median_gap_ms": float(np.median(gaps)) if gaps.size else math.nan,
        "switch_interval_ms": switch_ms, "limit_ms": limit_ms,
        # A kernel holding the GIL would stall the heartbeat for a whole call: the probe can
        # only tell when one call lasts well beyond the limit.
        "discriminating": call_ms >= 2 * limit_ms,
        "loadavg_1min": _loadavg(),
        # Judged against the GIL-holding control by gil_evidence (heartbeat_verdict); alone,
        # only "released" can be told.
        "released": heartbeat_verdict(max_gap, limit_ms, None),
    }


# A gap at most this share of the limit is "released": a full margin below the limit, so
# scheduling jitter that lands just under the limit is not called released.
RELEASED_SHARE = 0.5


def heartbeat_verdict(max_gap_ms: float, limit_ms: float, held_gap_ms: float | None):
    """True ("released") when the longest heartbeat gap is at most RELEASED_SHARE of the limit;
    False ("held") when it is at least the GIL-holding control's longest gap ``held_gap_ms``;
    None ("inconclusive") in between, or when the gap is NaN."""
    if max_gap_ms <= RELEASED_SHARE * limit_ms:
        return True
    if held_gap_ms is not None and max_gap_ms >= held_gap_ms:
        return False
    return None


def verdict_word(released) -> str:
    """The word printed for a ``released`` value."""
    return {True: "released", False: "held"}.get(released, "inconclusive")


# --------------------------------------------------------------------------- (c) two threads


def two_thread(scenario: Scenario, min_seconds: float = 0.5) -> dict:
    """Probe (c): throughput of two concurrent threads over one, Numba and BLAS at 1 thread."""
    from threadpoolctl import threadpool_limits

    def run_units(count, errors):
        try:
            set_thread_local_numba(1)
            for _ in range(count):
                scenario.func()
        except BaseException as exc:  # reported, never swallowed silently
            errors.append(f"{type(exc).__name__}: {exc}")

    with threadpool_limits(limits=1, user_api="blas"):
        set_thread_local_numba(1)
        scenario.func()
        t0 = time.perf_counter()
        scenario.func()
        one = time.perf_counter() - t0
        units = max(2, int(math.ceil(min_seconds / max(one, 1e-6))))
        errors: list[str] = []
        c0, t0 = time.process_time(), time.perf_counter()
        run_units(units, errors)
        single = time.perf_counter() - t0
        cpu_single = time.process_time() - c0
        workers = [threading.Thread(target=run_units, args=(units, errors)) for _ in range(2)]
        c0, t0 = time.process_time(), time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        double = time.perf_counter() - t0
        cpu_double = time.process_time() - c0
    thr1 = units / single
    thr2 = 2 * units / double
    from covertreex.threads import default_threads

    cores = default_threads()
    load = _loadavg()
    busy = load is not None and load > max(cores - 0.5, 0.5)
    return {
        "scenario": scenario.name, "description": scenario.description,
        "kernels": list(scenario.kernels), "units_per_thread": units,
        "one_thread_s": single, "two_threads_s": double,
        "throughput_1": thr1, "throughput_2": thr2, "speedup": thr2 / thr1,
        # Process CPU seconds per wall second: how many cores the run actually got.
        "cpu_util_1": cpu_single / single, "cpu_util_2": cpu_double / double,
        "cores": cores, "loadavg_1min": load, "machine_busy": busy, "errors": errors,
        # With two idle cores a GIL-free kernel scales (~2x) and a GIL-bound one stays near
        # 1.0. A speedup of 1.5 or more shows the GIL released even on a busy machine; a lower
        # one proves nothing on one core or on a machine already busy with other work.
        "released": True if thr2 / thr1 >= 1.5 else (None if (cores < 2 or busy) else False),
    }


def _loadavg():
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


# --------------------------------------------------------------------------- (d) py-spy


PY_SPY_SCENARIOS = ("residual_tile_kernel", "control_gil")


def py_spy(scenarios=PY_SPY_SCENARIOS, seconds: float = 3.0, preset: str = "quick",
           n: int = 8192, timeout: float = 300.0) -> dict:
    """Probe (d): share of py-spy samples holding the GIL while a scenario runs.

    Each scenario runs in a child process (``python -m covertreex_bench.profiling.gil``); once its
    setup is done and the kernels are compiled, ``py-spy record --pid`` samples it for
    ``seconds``, once plainly and once with ``--gil`` (only samples of a thread holding the
    GIL). The control_gil scenario holds the GIL on purpose: the contrast shows the probe works.
    """
    exe = shutil.which("py-spy")
    if exe is None:
        return {"available": False, "skipped": True, "runs": [],
                "note": "py-spy executable not found on PATH; probe (d) skipped "
                        "(pip install py-spy to enable it)"}
    out = {"available": True, "skipped": False, "executable": exe, "seconds": seconds, "runs": [],
           "note": "share of py-spy samples (200 Hz, --nonblocking) in which the scenario's "
                   "process held the GIL, sampled after its setup; near 0 means the time is "
                   "spent without the GIL"}
    for scenario in scenarios:
        try:
            out["runs"].append(_py_spy_one(exe, scenario, seconds, preset, n, timeout))
        except Exception as exc:
            out["runs"].append({"scenario": scenario, "error": f"{type(exc).__name__}: {exc}"})
    if out["runs"] and all("error" in r for r in out["runs"]):
        out["skipped"] = True
        out["note"] = "py-spy failed: " + out["runs"][0]["error"]
    main = next((r for r in out["runs"] if "error" not in r and r["scenario"] != "control_gil"), None)
    out["scenario"] = main["scenario"] if main else None
    out["gil_share"] = main["gil_share"] if main else None
    return out


def _py_spy_one(exe, scenario, seconds, preset, n, timeout) -> dict:
    child = subprocess.Popen(
        [sys.executable, "-m", "covertreex_bench.profiling.gil", "--scenario", scenario,
         "--seconds", str(2 * seconds + 4), "--preset", preset, "--n", str(n)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        if not line.startswith("READY"):
            child.wait(timeout=30)
            raise RuntimeError(f"scenario process did not start: {line.strip()} "
                               f"{child.stderr.read()[-300:]}")
        counts = {}
        with tempfile.TemporaryDirectory() as tmp:
            for mode in ("all", "gil"):
                raw = os.path.join(tmp, f"{mode}.txt")
                cmd = [exe, "record", "--pid", str(child.pid), "--duration", str(max(1, round(seconds))),
                       "--rate", "200", "--format", "raw", "--nonblocking", "--output", raw]
                if mode == "gil":
                    cmd.append("--gil")
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
                if proc.returncode != 0 or not os.path.exists(raw):
                    tail = (proc.stderr or proc.stdout).strip().splitlines()[-2:]
                    raise RuntimeError(f"py-spy exit {proc.returncode}: {' | '.join(tail)}")
                counts[mode] = _raw_samples(raw)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    total = sum(counts["all"].values())
    held = sum(counts["gil"].values())
    leaves = {}
    for stack, c in counts["all"].items():
        leaf = stack.split(";")[-1]
        leaves[leaf] = leaves.get(leaf, 0) + c
    return {"scenario": scenario, "samples": total, "gil_samples": held,
            "gil_share": held / total if total else None,
            "top_leaf_frames": sorted(leaves.items(), key=lambda kv: -kv[1])[:6]}


def _raw_samples(path) -> dict:
    out = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if stack and count.isdigit():
                out[stack] = out.get(stack, 0) + int(count)
    return out
