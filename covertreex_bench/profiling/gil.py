"""Evidence that the hot Numba kernels hold no GIL and call no Python.

Four probes (DESIGN section 8, ANCHORS "Harness facts"):

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

import importlib
import math
import os
import pkgutil
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass

import numpy as np


# Modules whose dispatchers are "hot kernels", besides every module named *_kernels. The
# metric modules also hold each metric's specialised walks (a MetricKernels).
EXTRA_KERNEL_MODULES = ("covertreex.metrics.residual.metric", "covertreex.metrics.distance_kernels",
                        "covertreex.metrics.euclidean")
# Symbols whose calls mean "takes the GIL" or "calls the interpreter".
GIL_SYMBOLS = ("numba_gil_ensure", "PyGILState_Ensure", "PyObject_Call", "numba_unpickle")
SITE_KINDS = ("wrapper", "parfor_launch", "error_path", "hot")


# --------------------------------------------------------------------------- kernel discovery


def kernel_module_names() -> list[str]:
    """covertreex modules whose name ends with ``_kernels``, plus EXTRA_KERNEL_MODULES."""
    import covertreex

    names = []
    for info in pkgutil.walk_packages(covertreex.__path__, "covertreex.", onerror=lambda name: None):
        if info.name.rsplit(".", 1)[-1].endswith("_kernels"):
            names.append(info.name)
    for extra in EXTRA_KERNEL_MODULES:
        if extra not in names:
            names.append(extra)
    return sorted(names)


def _is_dispatcher(obj) -> bool:
    from numba.core.registry import CPUDispatcher

    return isinstance(obj, CPUDispatcher)


@dataclass(frozen=True)
class Kernel:
    module: str
    name: str
    dispatcher: object

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


def hot_kernels(module_names=None) -> tuple[list[Kernel], dict[str, str]]:
    """Every CPUDispatcher defined in the kernel modules: (kernels, {module: import error})."""
    kernels, errors = [], {}
    for modname in module_names or kernel_module_names():
        try:
            module = importlib.import_module(modname)
        except Exception as exc:  # a module mid-edit must not stop the other probes
            errors[modname] = f"{type(exc).__name__}: {exc}"
            continue
        for name, obj in sorted(vars(module).items()):
            if _is_dispatcher(obj) and getattr(obj.py_func, "__module__", None) == modname:
                kernels.append(Kernel(modname, name, obj))
            for field, disp in _specialised(obj):
                kernels.append(Kernel(modname, f"{name}.{field}", disp))
    return kernels, errors


def _specialised(obj):
    """(field, dispatcher) pairs of a MetricKernels (a metric's specialised walks)."""
    from covertreex.engine.specialise import MetricKernels

    if not isinstance(obj, MetricKernels):
        return []
    return [(f, getattr(obj, f)) for f in obj.__dataclass_fields__ if _is_dispatcher(getattr(obj, f))]


def dispatcher_index() -> dict[tuple[str, str], str]:
    """{(source file, function name): 'module.name'} of every Numba dispatcher defined in a
    loaded covertreex module: how profile frames of compiled kernels are recognised."""
    out = {}
    for modname, module in list(sys.modules.items()):
        if module is None or not (modname == "covertreex" or modname.startswith("covertreex.")):
            continue
        for name, obj in list(vars(module).items()):
            found = [(name, obj)] if _is_dispatcher(obj) else []
            # A metric's specialised walks are defined in the kernel modules, held here.
            found += [(f"{name}.{field}", d) for field, d in _specialised(obj)]
            for label, disp in found:
                func = disp.py_func
                if label == name and getattr(func, "__module__", None) != modname:
                    continue
                try:
                    path = os.path.realpath(func.__code__.co_filename)
                except AttributeError:
                    continue
                out.setdefault((path, func.__name__), f"{modname}.{label}")
    return out


# --------------------------------------------------------------------------- (a) LLVM scan

_FUNC_RE = re.compile(r'^define\b[^\n@]*@("[^"]+"|[\w.$]+)\(.*?^}', re.M | re.S)
_WEIGHTS_RE = re.compile(r'^(!\d+) = !\{!"branch_weights"((?:, i32 \d+)+)\}', re.M)
_CALL_RE = re.compile(r'@"?(%s)[\w.]*"?\(' % "|".join(GIL_SYMBOLS))
_LABEL_RE = re.compile(r'^([\w.$-]+|"[^"]+"):')
_BR_RE = re.compile(r'\bbr i1 [^,]+, label %("[^"]+"|[\w.$-]+), label %("[^"]+"|[\w.$-]+)(?:, !prof (!\d+))?')
_SUCC_RE = re.compile(r'label %("[^"]+"|[\w.$-]+)')


def _function_kind(name: str) -> str:
    bare = name.strip('"')
    if bare.startswith("_ZN7cpython") or bare.startswith("cpython.") or bare.startswith("cfunc."):
        return "wrapper"
    return "native"


def _blocks(body: str) -> list[tuple[str, list[str]]]:
    """(label, instruction lines) of each basic block of one function definition."""
    lines = body.splitlines()[1:-1]  # drop 'define ... {' and '}'
    blocks, label, cur = [], "entry", []
    for line in lines:
        m = _LABEL_RE.match(line)
        if m and not line.startswith(" "):
            blocks.append((label, cur))
            label, cur = m.group(1).strip('"'), []
        else:
            cur.append(line.strip())
    blocks.append((label, cur))
    return blocks


def _cold_labels(blocks, weights: dict[str, list[int]]) -> set[str]:
    """Labels that are the unlikely side of a weighted conditional branch."""
    cold = set()
    for _, insts in blocks:
        _cold_switch_targets(insts, weights, cold)
        for inst in insts:
            m = _BR_RE.search(inst)
            if not m or not m.group(3) or m.group(3) not in weights:
                continue
            w = weights[m.group(3)]
            if len(w) != 2:
                continue
            t, f = m.group(1).strip('"'), m.group(2).strip('"')
            if w[0] * 8 < w[1]:
                cold.add(t)
            elif w[1] * 8 < w[0]:
                cold.add(f)
    # A block reached only from cold blocks is cold too.
    preds: dict[str, set] = {}
    for label, insts in blocks:
        for inst in insts:
            for succ in _SUCC_RE.findall(inst):
                preds.setdefault(succ.strip('"'), set()).add(label)
    entry = blocks[0][0] if blocks[0][1] else (blocks[1][0] if len(blocks) > 1 else None)
    changed = True
    while changed:
        changed = False
        for label, _ in blocks:
            if label in cold or label == entry:
                continue
            p = preds.get(label)
            if p and p <= cold:
                cold.add(label)
                changed = True
    return cold


def _cold_switch_targets(insts, weights, cold) -> None:
    """Add the unlikely targets of a weighted ``switch`` (weights: default, then cases)."""
    i = 0
    while i < len(insts):
        m = re.match(r'switch \S+ [^,]+, label %("[^"]+"|[\w.$-]+) \[', insts[i])
        if not m:
            i += 1
            continue
        targets = [m.group(1).strip('"')]
        i += 1
        prof = None
        while i < len(insts):
            line = insts[i]
            if line.startswith("]"):
                pm = re.search(r"!prof (!\d+)", line)
                prof = pm.group(1) if pm else None
                break
            targets += [t.strip('"') for t in _SUCC_RE.findall(line)]
            i += 1
        w = weights.get(prof) if prof else None
        if w and len(w) == len(targets):
            top = max(w)
            by_target: dict[str, int] = {}
            for t, wt in zip(targets, w):
                by_target[t] = max(by_target.get(t, 0), wt)
            cold.update(t for t, wt in by_target.items() if wt * 8 < top)
        i += 1


_ERROR_MARKERS = ("@Py_FatalError", "@PyErr_", "unreachable")


def _classify_site(blocks, index, pos, symbol, cold, by_label) -> str:
    label, insts = blocks[index]
    following = insts[pos + 1:pos + 4]
    if symbol in ("numba_gil_ensure", "PyGILState_Ensure") and any(
            "@PyEval_SaveThread" in inst for inst in following):
        return "parfor_launch"
    if label in cold:
        return "error_path"
    rest = insts[pos + 1:]
    if any(marker in inst for inst in rest for marker in _ERROR_MARKERS):
        return "error_path"
    # Successors of this block that die at once (a raise or an abort) also mark an error path.
    succs = [s.strip('"') for inst in rest[-1:] for s in _SUCC_RE.findall(inst)]
    if succs and all(any(marker in inst for inst in by_label.get(s, ()) for marker in _ERROR_MARKERS)
                     or s in cold for s in succs):
        return "error_path"
    return "hot"


def scan_llvm_ir(ir: str) -> dict:
    """Call sites of GIL_SYMBOLS in one compiled signature's IR, by kind.

    Returns {"sites": {kind: {symbol: count}}, "hot_sites": [{"function", "block", "symbol"}],
    "functions": number of function definitions scanned}.
    """
    sites = {kind: {} for kind in SITE_KINDS}
    hot_sites = []
    n_functions = 0
    # The text holds several LLVM modules (the kernel's and the libraries linked into it), each
    # with its own metadata numbering.
    for module in _MODULE_RE.split(ir):
        n_functions += _scan_module(module, sites, hot_sites)
    return {"sites": sites, "hot_sites": hot_sites, "functions": n_functions}


_MODULE_RE = re.compile(r"^(?=; ModuleID = )", re.M)


def _scan_module(ir: str, sites: dict, hot_sites: list) -> int:
    weights = {m.group(1): [int(x) for x in re.findall(r"i32 (\d+)", m.group(2))]
               for m in _WEIGHTS_RE.finditer(ir)}
    n_functions = 0
    for fm in _FUNC_RE.finditer(ir):
        n_functions += 1
        fname, body = fm.group(1), fm.group(0)
        if not _CALL_RE.search(body):
            continue
        fkind = _function_kind(fname)
        blocks = _blocks(body)
        cold = _cold_labels(blocks, weights)
        by_label = {label: insts for label, insts in blocks}
        for bi, (label, insts) in enumerate(blocks):
            for pos, inst in enumerate(insts):
                if "call " not in inst and "invoke " not in inst:
                    continue
                m = _CALL_RE.search(inst)
                if not m:
                    continue
                symbol = m.group(1)
                kind = "wrapper" if fkind == "wrapper" else _classify_site(
                    blocks, bi, pos, symbol, cold, by_label)
                sites[kind][symbol] = sites[kind].get(symbol, 0) + 1
                if kind == "hot":
                    hot_sites.append({"function": fname.strip('"')[:160], "block": label,
                                      "symbol": symbol, "instruction": inst[:200]})
    return n_functions


def _recompiled_ir(dispatcher) -> dict:
    """IR of a fresh, uncached copy of the dispatcher for each of its signatures (used when
    the loaded overloads came from Numba's cache and carry no IR)."""
    from numba import njit

    options = {k: v for k, v in dispatcher.targetoptions.items() if k not in ("cache",)}
    twin = njit(**options)(dispatcher.py_func)
    for sig in dispatcher.signatures:
        twin.compile(sig)
    return twin.inspect_llvm()


def llvm_scan(kernels) -> list[dict]:
    """Probe (a) for every kernel; kernels without compiled signatures are listed as such."""
    out = []
    for k in kernels:
        d = k.dispatcher
        opts = dict(d.targetoptions)
        entry = {
            "kernel": k.qualname, "module": k.module, "name": k.name,
            "nogil": bool(opts.get("nogil", False)), "parallel": bool(opts.get("parallel", False)),
            "inline": opts.get("inline", "never"), "signatures": len(d.signatures),
            "compiled": bool(d.signatures), "ir_source": None, "sites": {kind: {} for kind in SITE_KINDS},
            "hot_sites": [], "clean": None, "ok": None, "error": None,
        }
        if d.signatures:
            try:
                try:
                    with warnings.catch_warnings():
                        # "Inspection disabled for cached code": handled by recompiling.
                        warnings.simplefilter("ignore")
                        irs = d.inspect_llvm()
                    entry["ir_source"] = "dispatcher"
                    if not irs or not all(irs.values()):
                        raise ValueError("empty IR")
                except Exception:
                    irs = _recompiled_ir(d)
                    entry["ir_source"] = "recompiled"
                for ir in irs.values():
                    res = scan_llvm_ir(ir)
                    for kind, counts in res["sites"].items():
                        for sym, c in counts.items():
                            entry["sites"][kind][sym] = entry["sites"][kind].get(sym, 0) + c
                    entry["hot_sites"].extend(res["hot_sites"])
                entry["clean"] = not entry["hot_sites"]
                # nogil=False holds the GIL for the whole call without any call site to find.
                entry["ok"] = entry["clean"] and entry["nogil"]
            except Exception as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
        out.append(entry)
    return out


# --------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    """One unit of hot-kernel work, callable from any thread."""

    name: str
    description: str
    kernels: tuple
    func: object  # callable() -> None


def _set_thread_local_numba(threads: int) -> None:
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


def _residual_metric(workload, phases):
    """A residual metric over the workload's backend without building a tree."""
    from covertreex.runtime import Runtime

    runtime = Runtime(metric=workload.preset.metric, phases=phases)
    try:
        from covertreex.cover_tree import _make_metric

        metric, _ = _make_metric(runtime, workload.fit_input)
        return metric
    except Exception:
        from covertreex.cover_tree import CoverTree

        return CoverTree(runtime).fit(workload.fit_input).metric


def library_scenarios(preset="quick", n: int = 8192, rows: int = 512, cols: int = 8192,
                      phases_list=("all", "baseline"), only=None) -> tuple[list[Scenario], list[str]]:
    """Scenarios over covertreex's hot kernels on a mid-size copy of ``preset``.

    only: names of the scenarios wanted (None: all). Returns (scenarios, notes); a scenario
    that cannot be built is named in the notes.
    """
    from covertreex.cover_tree import CoverTree
    from covertreex.engine.specialise import ALL_PAIRS
    from covertreex.metrics.residual.metric import exact_thresholds
    from covertreex.phases import Phases
    from covertreex.runtime import Runtime
    from covertreex.telemetry import new_counters
    from ..workloads import get_preset, load_workload, scaled

    notes = []
    base = get_preset(preset)
    size = min(n, base.n)
    if base.predecessor_mode or base.queries_all:
        p = scaled(base, size)
    else:
        p = scaled(base, size, queries=min(base.queries, 256, size))
    workload = load_workload(p)
    rng = np.random.default_rng(7)
    rows_ids = np.sort(rng.choice(p.n, min(rows, p.n), replace=False)).astype(np.int64)
    cols_ids = np.sort(rng.choice(p.n, min(cols, p.n), replace=False)).astype(np.int64)
    out = []
    for label in phases_list:
        phases = Phases.parse(label)
        if p.is_residual:
            try:
                metric = _residual_metric(workload, phases)
            except Exception as exc:
                notes.append(f"residual metric ({label}) unavailable: {type(exc).__name__}: {exc}")
                continue
            out.append(Scenario(
                f"residual_tile[{label}]",
                f"ResidualMetric.tile {rows_ids.size}x{cols_ids.size} on {p.name} (phases {label})",
                ("covertreex.metrics.residual.metric",),
                lambda m=metric: m.tile(m.data, rows_ids, cols_ids, new_counters())))
            # Metrics hold their kernels as staticmethods: reading the attribute through the
            # class unwraps it to the Dispatcher (getattr_static would return the wrapper).
            tile_kernel = getattr(type(metric), "tile_kernel", None)
            if label == "all" and _is_dispatcher(tile_kernel):
                out.append(Scenario(
                    "residual_tile_kernel",
                    f"{tile_kernel.py_func.__name__} {rows_ids.size}x{cols_ids.size} on {p.name} "
                    "(the nopython tile of the chunk loop)",
                    (f"{tile_kernel.py_func.__module__}.{tile_kernel.py_func.__name__}",),
                    # A workspace per call: the two-thread probe runs two calls at once.
                    lambda m=metric, kern=tile_kernel: kern(
                        m.data, m.data, rows_ids, cols_ids, ALL_PAIRS, *exact_thresholds(rows_ids,
                        cols_ids), m.workspace(rows_ids.size), new_counters())))
        if label != "all" or (only is not None and not ({f"build[{label}]", f"knn[{label}]"} & set(only))):
            continue
        runtime = Runtime(metric=p.metric, phases=phases, batch_size=p.batch_size, seed=p.seed,
                          threads=1)
        out.append(Scenario(
            f"build[{label}]", f"CoverTree.fit on {p.name} (n={p.n}, phases {label})",
            ("build scan, conflict graph, MIS",),
            lambda rt=runtime: CoverTree(rt).fit(workload.fit_input)))
        try:
            tree = CoverTree(runtime).fit(workload.fit_input)
        except Exception as exc:
            notes.append(f"query scenario unavailable: {type(exc).__name__}: {exc}")
            continue
        out.append(Scenario(
            f"knn[{label}]", f"knn_report of {p.queries} queries, k={p.k} on {p.name} (phases {label})",
            ("query walk",),
            lambda t=tree: t.knn_report(workload.knn_queries, p.k, predecessor_mode=p.predecessor_mode)))
    if only is not None:
        out = [sc for sc in out if sc.name in only]
    return out, notes


# --------------------------------------------------------------------------- (b) heartbeat


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

    _set_thread_local_numba(threads)
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
        # True: no stall beyond the limit. False: a stall comparable to a whole call (what a
        # kernel holding the GIL gives). None: in between, which scheduling noise on a busy
        # machine can also give.
        "released": (True if max_gap <= limit_ms else
                     False if max_gap > max(limit_ms, 0.5 * call_ms) else None),
    }


# --------------------------------------------------------------------------- (c) two threads


def two_thread(scenario: Scenario, min_seconds: float = 0.5) -> dict:
    """Probe (c): throughput of two concurrent threads over one, Numba and BLAS at 1 thread."""
    from threadpoolctl import threadpool_limits

    def run_units(count, errors):
        try:
            _set_thread_local_numba(1)
            for _ in range(count):
                scenario.func()
        except BaseException as exc:  # reported, never swallowed silently
            errors.append(f"{type(exc).__name__}: {exc}")

    with threadpool_limits(limits=1, user_api="blas"):
        _set_thread_local_numba(1)
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
    cores = _cores()
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


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


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


# --------------------------------------------------------------------------- all probes


def warm_kernels(preset="quick", n: int = 1100, phases_list=("all", "baseline")) -> float:
    """Compile the hot kernels: build and query a small copy of ``preset`` and of a preset of
    the other metric (Euclidean: pointwise and blocked) under every phase setting. Returns
    seconds."""
    from covertreex.cover_tree import CoverTree
    from covertreex.phases import Phases
    from covertreex.runtime import Runtime
    from ..workloads import get_preset, load_workload, scaled

    t0 = time.perf_counter()
    # Both metrics, whatever the preset: every hot kernel that can compile does.
    presets = [get_preset(preset)]
    presets.append(get_preset("euclid-32k" if presets[0].is_residual else "quick"))
    for base in presets:
        p = scaled(base, min(n, base.n), queries=min(base.queries, 64))
        w = load_workload(p)
        strategies = (None,) if p.is_residual else (None, "blocked")
        for label in phases_list:
            for strategy in strategies:
                rt = Runtime(metric=p.metric, phases=Phases.parse(label), batch_size=p.batch_size,
                             seed=p.seed, strategy=strategy)
                tree = CoverTree(rt).fit(w.fit_input)
                tree.knn_report(w.knn_queries, p.k, predecessor_mode=p.predecessor_mode)
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
    say(f"gil: LLVM scan of {len(kernels)} dispatchers")
    scan = llvm_scan(kernels)
    compiled = [k for k in scan if k["compiled"]]
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
    _set_thread_local_numba(1)
    sc.func()
    sc.func()
    print("READY", flush=True)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        sc.func()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
