"""Everything the GIL probes know about the index's internals, in one place: which modules hold
the hot kernels, how each metric's specialised traversals are found (the templates of the
kernel modules compiled by ``covertreex.engine.specialise`` for each ``MetricKernels``), and how
to call the residual tile kernel directly. When the index re-layers, this module is the one to
adapt.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from dataclasses import dataclass

import numpy as np

from ..runtime import make_runtime
from .probes import Scenario

# Modules whose dispatchers are "hot kernels", besides every module named *_kernels. The
# metric modules hold each metric's MetricKernels, for which the templates are specialised.
EXTRA_KERNEL_MODULES = ("covertreex.metrics.euclidean", "covertreex.metrics.residual.metric")


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


def is_dispatcher(obj) -> bool:
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
    """Every CPUDispatcher defined in the kernel modules, and every template specialised for
    every metric: (kernels, {module: import error})."""
    kernels, errors, modules = [], {}, []
    for modname in module_names or kernel_module_names():
        try:
            modules.append(importlib.import_module(modname))
        except Exception as exc:  # a module mid-edit must not stop the other probes
            errors[modname] = f"{type(exc).__name__}: {exc}"
    for module in modules:
        for name, obj in sorted(vars(module).items()):
            if is_dispatcher(obj) and getattr(obj.py_func, "__module__", None) == module.__name__:
                kernels.append(Kernel(module.__name__, name, obj))
    for module, name, disp in _specialised(modules):
        kernels.append(Kernel(module, name, disp))
    return kernels, errors


def _specialised(modules):
    """(template's module, 'template[metric]', dispatcher) for every template of ``modules``
    and every MetricKernels they hold: the same dispatchers the index's traversals use."""
    from covertreex.engine.specialise import is_template, specialise
    from covertreex.metrics.protocol import MetricKernels

    templates = [(m.__name__, obj) for m in modules for obj in vars(m).values()
                 if is_template(obj) and obj.__module__ == m.__name__]
    metrics = {id(obj): obj for m in modules for obj in vars(m).values()
               if isinstance(obj, MetricKernels)}
    return [(mod, f"{t.__name__}[{k.tag}]", specialise(t, k))
            for mod, t in templates for k in metrics.values()]


def dispatcher_index() -> dict[tuple[str, str], str]:
    """{(source file, function name): 'module.name'} of every Numba dispatcher defined in a
    loaded covertreex module: how profile frames of compiled kernels are recognised."""
    out = {}
    for modname, module in list(sys.modules.items()):
        if module is None or not (modname == "covertreex" or modname.startswith("covertreex.")):
            continue
        for name, obj in list(vars(module).items()):
            if is_dispatcher(obj) and getattr(obj.py_func, "__module__", None) == modname:
                _index(out, obj, f"{modname}.{name}")
    loaded = [m for name, m in list(sys.modules.items())
              if m is not None and name.startswith("covertreex.")]
    for modname, label, disp in _specialised(loaded):
        _index(out, disp, f"{modname}.{label}")
    return out


def _index(out, disp, label):
    func = disp.py_func
    try:
        path = os.path.realpath(func.__code__.co_filename)
    except AttributeError:
        return
    out.setdefault((path, func.__name__), label)


def _residual_metric(workload, phases):
    """A residual metric over the workload's backend without building a tree."""
    runtime = make_runtime(workload.preset, phases)
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
    from covertreex import CoverTree
    from covertreex.metrics.protocol import ALL_PAIRS
    from covertreex.metrics.residual.metric import exact_thresholds
    from covertreex.phases import Phases
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
            tile_kernel = metric.kernels.tile_kernel
            if label == "all" and is_dispatcher(tile_kernel):
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
        runtime = make_runtime(p, phases, threads=1)
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
