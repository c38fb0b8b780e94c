"""pyinstrument captures of a build plus its queries, and the Python-callout evidence.

``profile_phase`` warms Numba on a small copy of the preset, then profiles ``CoverTree.fit``
and ``knn_report`` (two pyinstrument sessions, combined for the files) and writes, per phase
setting, ``<stem>.html`` (pyinstrument's HTML, made offline: no web font), ``<stem>.pyisession``
(the session, ``pyinstrument --load``), ``<stem>.json`` (pyinstrument's JSON renderer: the
frame tree) and ``<stem>.speedscope.json`` (open at speedscope).

``classify_session`` splits sampled time into four categories:

- ``numba_kernels``: frames of functions defined in covertreex that are Numba dispatchers.
  Numba reports a compiled call to the profiler as a frame named after the Python function,
  with no parent frames (pyinstrument then shows it under the thread root) and the call's
  time as self time; such a record is put back into the region of the record before it;
- ``numpy_blas``: frames of numpy or scipy, C built-ins they call, and covertreex source lines
  that evaluate an array expression (``@``, ``np.*`` / ``numpy.*`` / ``scipy.*`` calls, ndarray
  methods): their self time is the C code of numpy/BLAS;
- ``covertreex_python``: the rest of the self time of covertreex frames, i.e. the interpreter;
- ``other``: everything else (the standard library, threadpoolctl, perf_counter, ...).

Regions: ``build`` (``CoverTree.fit``), ``build_hot`` (the insertion loop, ``build_tree``)
and ``query`` (``knn_report``).
"""

from __future__ import annotations

import ast
import linecache
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

from ..common import write_atomic
from ..runtime import make_runtime, warm_up

CATEGORIES = ("covertreex_python", "numba_kernels", "numpy_blas", "other")
# Region name -> function names (in covertreex files) whose frame marks it.
REGIONS = {
    "build": ("fit",),
    "build_hot": ("build_tree",),
    "query": ("knn_report",),
}
_ID_SEP, _ATTR_SEP = "\x00", "\x01"
_NDARRAY_METHODS = {
    "astype", "copy", "sum", "max", "min", "argsort", "argmax", "argmin", "argpartition", "take",
    "reshape", "ravel", "nonzero", "fill", "dot", "mean", "cumsum", "sort", "partition", "any",
    "all", "clip", "transpose", "flatten", "repeat", "searchsorted", "view", "tolist", "item",
}
_ARRAY_MODULES = {"np", "numpy", "scipy", "la", "linalg", "sla"}
# pyinstrument's HTML loads two web fonts; the report must open with no network at all.
_FONT_URL_RE = re.compile(r"https://fonts\.googleapis\.com/css[^\"'\s)]*")


def package_root() -> str:
    import covertreex

    return os.path.realpath(os.path.dirname(covertreex.__file__))


def _library_roots() -> dict[str, str]:
    roots = {}
    for name in ("numpy", "scipy"):
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "__file__", None):
            roots[name] = os.path.realpath(os.path.dirname(mod.__file__))
    return roots


def _numpy_c_names() -> set[str]:
    """Names of C callables of numpy (pyinstrument shows them as ``<built-in>`` frames)."""
    names = set()
    try:
        import numpy as np
        from numpy._core import multiarray, umath

        for mod in (np, multiarray, umath, np.linalg):
            for key, value in vars(mod).items():
                if callable(value):
                    names.add(key)
    except Exception:
        pass
    return names


def parse_frame(info: str):
    """(function, file, def line, current line or None) of a pyinstrument frame string."""
    ident, _, attrs = info.partition(_ATTR_SEP)
    parts = ident.split(_ID_SEP)
    func = parts[0]
    path = parts[1] if len(parts) > 1 else ""
    line = None
    for attr in attrs.split(_ATTR_SEP) if attrs else ():
        if attr.startswith("l"):
            try:
                line = int(attr[1:])
            except ValueError:
                pass
    return func, path, line


def _def_line(info: str) -> int | None:
    parts = info.partition(_ATTR_SEP)[0].split(_ID_SEP)
    try:
        return int(parts[2])
    except (IndexError, ValueError):
        return None


class _LineClassifier:
    """Whether the self time sampled at a covertreex source line is numpy/BLAS work.

    pyinstrument records a sample at the next profiler event (a Python or C function call or
    return); the time since the previous event belongs to the statements run in between. So
    the sample at line L is charged to numpy/BLAS when the statement at L, or a statement run
    before it back to the previous event-making statement (one that calls a Python function
    or a C built-in; both branches of an ``if`` are followed), evaluates an array expression:
    ``@``, a call rooted at ``np`` / ``numpy`` / ``scipy``, an ndarray method, or an index by
    an array (a gather).
    """

    def __init__(self):
        self._cache = {}
        self._trees = {}

    def __call__(self, path: str, line: int | None, def_line: int | None = None) -> bool:
        if line is None:
            return False
        key = (path, line, def_line)
        if key not in self._cache:
            try:
                self._cache[key] = self._classify(path, line, def_line)
            except Exception:
                self._cache[key] = False
        return self._cache[key]

    def _tree(self, path: str):
        if path not in self._trees:
            try:
                tree = ast.parse("".join(linecache.getlines(path)))
            except (SyntaxError, ValueError):
                tree = None
            parents = {}
            if tree is not None:
                for node in ast.walk(tree):
                    for field in ("body", "orelse", "finalbody", "handlers"):
                        block = getattr(node, field, None)
                        if isinstance(block, list):
                            for i, child in enumerate(block):
                                if isinstance(child, ast.AST):
                                    parents[id(child)] = (node, block, i)
            self._trees[path] = (tree, parents)
        return self._trees[path]

    def _classify(self, path: str, line: int, def_line: int | None) -> bool:
        tree, parents = self._tree(path)
        if tree is None:
            return False
        # The innermost statement holding the line.
        best = None
        for node in ast.walk(tree):
            if isinstance(node, ast.stmt) and node.lineno <= line <= (node.end_lineno or node.lineno):
                if best is None or node.lineno >= best.lineno:
                    best = node
        if best is None:
            return False
        stmt = best
        if not isinstance(stmt, _COMPOUND) and _is_array_expr(stmt):
            return True
        if isinstance(stmt, _COMPOUND) and _is_array_expr(_header(stmt)):
            return True
        while True:
            parent = parents.get(id(stmt))
            if parent is None:
                return False
            owner, block, index = parent
            array, stopped = _tail(block[:index])
            if array:
                return True
            if stopped or isinstance(owner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module,
                                             ast.ClassDef)):
                return False
            head = _header(owner)
            if head is not None:
                if _is_array_expr(head):
                    return True
                if _makes_event(head):
                    return False
            stmt = owner


_COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try,
             ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _header(node):
    if isinstance(node, (ast.If, ast.While)):
        return node.test
    if isinstance(node, (ast.For, ast.AsyncFor)):
        return node.iter
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return ast.Tuple(elts=[item.context_expr for item in node.items], ctx=ast.Load())
    return None


def _tail(block) -> tuple[bool, bool]:
    """Walking a statement list backwards: (an array expression runs before any event,
    every path met an event)."""
    for node in reversed(block):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.If):
            branches = [_tail(node.body), _tail(node.orelse)]
            if any(a for a, _ in branches):
                return True, True
            if all(s for _, s in branches):
                return False, True
            if _is_array_expr(node.test):
                return True, True
            if _makes_event(node.test):
                return False, True
            continue
        if isinstance(node, _COMPOUND):
            inner = getattr(node, "body", [])
            a, stopped = _tail(inner)
            if a:
                return True, True
            head = _header(node)
            if head is not None and _is_array_expr(head):
                return True, True
            if stopped or (head is not None and _makes_event(head)):
                return False, True
            continue
        if _is_array_expr(node):
            return True, True
        if _makes_event(node):
            return False, True
    return False, False


def _call_is_array(node: ast.Call) -> bool:
    func = node.func
    root = func
    while isinstance(root, ast.Attribute):
        root = root.value
    if isinstance(func, ast.Attribute) and isinstance(root, ast.Name) and root.id in _ARRAY_MODULES:
        return True
    return isinstance(func, ast.Attribute) and func.attr in _NDARRAY_METHODS


def _is_array_expr(node) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, (ast.BinOp, ast.AugAssign)) and isinstance(sub.op, ast.MatMult):
            return True
        if isinstance(sub, ast.Call) and _call_is_array(sub):
            return True
        if isinstance(sub, ast.Subscript) and isinstance(sub.ctx, ast.Load) and isinstance(
                sub.slice, (ast.Name, ast.Attribute, ast.Subscript, ast.Call)):
            return True
    return False


def _makes_event(node) -> bool:
    """A statement that calls a Python function or a C built-in (a profiler event)."""
    if isinstance(node, ast.Return):
        return True
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and not _call_is_array(sub):
            return True
    return False


def line_text(path: str, line: int | None) -> str:
    return linecache.getline(path, line).strip() if line else ""


class SessionClassifier:
    """Classifies the frame records of pyinstrument sessions (see the module docstring)."""

    def __init__(self, kernels: dict | None = None):
        from .kernels import dispatcher_index

        self.kernels = dispatcher_index() if kernels is None else kernels
        self.pkg = package_root()
        self.libs = _library_roots()
        self.numpy_c = _numpy_c_names()
        self.array_line = _LineClassifier()
        self._real = {}

    def _realpath(self, path: str) -> str:
        if path not in self._real:
            self._real[path] = os.path.realpath(path) if path and not path.startswith("<") else path
        return self._real[path]

    def in_package(self, path: str) -> bool:
        real = self._realpath(path)
        return real.startswith(self.pkg + os.sep) and os.sep + "profiling" + os.sep not in real[len(self.pkg):]

    def kernel_of(self, info: str) -> str | None:
        func, path, _ = parse_frame(info)
        if not path or path.startswith("<"):
            return None
        return self.kernels.get((self._realpath(path), func))

    def _is_library(self, path: str) -> bool:
        real = self._realpath(path)
        return any(real.startswith(root + os.sep) for root in self.libs.values())

    def category(self, stack) -> tuple[str, str | None]:
        """(category, detail) of a record's leaf frame; detail names a kernel or a line."""
        leaf = stack[-1]
        kernel = self.kernel_of(leaf)
        if kernel is not None:
            return "numba_kernels", kernel
        func, path, line = parse_frame(leaf)
        if path == "<built-in>":
            parent_path = parse_frame(stack[-2])[1] if len(stack) > 1 else ""
            if self._is_library(parent_path) or func.rsplit(".", 1)[-1] in self.numpy_c:
                return "numpy_blas", func
            return "other", func
        if self.in_package(path):
            where = f"{os.path.relpath(self._realpath(path), os.path.dirname(self.pkg))}:{line}"
            if self.array_line(path, line, _def_line(leaf)):
                return "numpy_blas", where
            return "covertreex_python", where
        if self._is_library(path):
            return "numpy_blas", func
        return "other", func

    def _is_detached(self, stack) -> bool:
        """A compiled-kernel record without its callers (thread root, then the kernel)."""
        frames = [f for f in stack if parse_frame(f)[1] != "<thread>"]
        return bool(frames) and self.kernel_of(frames[0]) is not None

    def _regions_of(self, stack) -> set[str]:
        names = set()
        for info in stack:
            func, path, _ = parse_frame(info)
            if path and self.in_package(path):
                for region, funcs in REGIONS.items():
                    if func in funcs:
                        names.add(region)
        return names

    def classify(self, sessions: dict) -> dict:
        """{region: figures} over the records of ``sessions`` ({name: Session})."""
        acc = {region: _RegionAcc() for region in REGIONS}
        acc["session"] = _RegionAcc()
        for session in sessions.values():
            records = session.frame_records
            contexts = self._contexts(records)
            for (stack, seconds), context in zip(records, contexts):
                if not stack:
                    continue
                cat, detail = self.category(stack)
                called_from_kernel = any(self.kernel_of(f) for f in stack[:-1]) and \
                    self.kernel_of(stack[-1]) is None
                regions = self._regions_of(context)
                for region in regions | {"session"}:
                    acc[region].add(cat, detail, seconds, called_from_kernel)
        return {name: a.result() for name, a in acc.items()}

    def _contexts(self, records) -> list:
        """The stack that places each record in a region: its own, or for a detached kernel
        record the stack of the nearest full record before it (after it, for the first)."""
        out = []
        last_full = None
        pending = []
        for stack, _ in records:
            if stack and self._is_detached(stack):
                out.append(last_full)
                if last_full is None:
                    pending.append(len(out) - 1)
            else:
                last_full = stack
                out.append(stack)
                for i in pending:
                    out[i] = stack
                pending = []
        return [c or () for c in out]


class _RegionAcc:
    def __init__(self):
        self.cat = defaultdict(float)
        self.kernels = defaultdict(float)
        self.lines = defaultdict(lambda: [0.0, ""])
        self.other = defaultdict(float)
        self.from_kernel = 0.0
        self.samples = 0

    def add(self, cat, detail, seconds, from_kernel):
        self.cat[cat] += seconds
        self.samples += 1
        if cat == "numba_kernels":
            self.kernels[detail] += seconds
        elif cat in ("covertreex_python", "numpy_blas") and detail and ":" in detail:
            entry = self.lines[detail]
            entry[0] += seconds
            entry[1] = cat
        else:
            self.other[f"{cat}:{detail}"] += seconds
        if from_kernel:
            self.from_kernel += seconds

    def result(self) -> dict:
        total = sum(self.cat.values())
        cats = {c: self.cat.get(c, 0.0) * 1e3 for c in CATEGORIES}
        shares = {c: (v / (total * 1e3) if total else None) for c, v in cats.items()}
        pkg_parent = os.path.dirname(package_root())
        lines = []
        for where, (seconds, cat) in sorted(self.lines.items(), key=lambda kv: -kv[1][0])[:15]:
            path, _, line = where.rpartition(":")
            lines.append({"where": where, "ms": seconds * 1e3, "category": cat,
                          "text": line_text(os.path.join(pkg_parent, path), int(line) if line.isdigit() else None)})
        return {
            "total_ms": total * 1e3,
            "records": self.samples,
            "categories_ms": cats,
            "shares": shares,
            "python_share": shares["covertreex_python"],
            "compiled_share": (None if not total else
                               (cats["numba_kernels"] + cats["numpy_blas"]) / (total * 1e3)),
            "python_called_from_kernels_ms": self.from_kernel * 1e3,
            "top_kernels": [{"kernel": k, "ms": v * 1e3} for k, v in
                            sorted(self.kernels.items(), key=lambda kv: -kv[1])[:15]],
            "top_lines": lines,
            "top_other": [{"frame": k, "ms": v * 1e3} for k, v in
                          sorted(self.other.items(), key=lambda kv: -kv[1])[:10]],
        }


# --------------------------------------------------------------------------- writing files


def offline_html(html: str) -> str:
    """pyinstrument's HTML without its web-font request (a data: URL stands in)."""
    return _FONT_URL_RE.sub("data:text/css,", html)


def write_session_files(session, out_dir: Path, stem: str) -> dict:
    """HTML, session JSON, JSON frame tree and speedscope files; {kind: file name}."""
    from pyinstrument.renderers import HTMLRenderer, JSONRenderer, SpeedscopeRenderer

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    html = offline_html(HTMLRenderer().render(session))
    files["html"] = f"{stem}.html"
    (out_dir / files["html"]).write_text(html, encoding="utf-8")
    files["session"] = f"{stem}.pyisession"
    session.save(out_dir / files["session"])
    files["json"] = f"{stem}.json"
    write_atomic(out_dir / files["json"], JSONRenderer().render(session))
    files["speedscope"] = f"{stem}.speedscope.json"
    write_atomic(out_dir / files["speedscope"], SpeedscopeRenderer().render(session))
    return files


# --------------------------------------------------------------------------- one capture


# One worker thread for a capture: pyinstrument samples only the thread that started it, and
# with one worker the blocked walks run in that thread (with more, their kernels would run in
# pool threads the profile never sees).
CAPTURE_THREADS = 1


def profile_phase(preset, workload, phases, label: str, out_dir: Path, *,
                  interval: float = 0.001, warm: bool = True, say=None) -> dict:
    """Profile one build plus its queries under ``phases``; the ``runs[]`` entry of the summary."""
    from pyinstrument import Profiler
    from pyinstrument.session import Session

    from covertreex import CoverTree

    say = say or (lambda msg: None)
    entry = {"phases": label, "phase_flags": phases.as_dict(), "warm_s": None}
    if warm:
        say(f"profile [{label}]: warming Numba on a small copy of {preset.name}")
        entry["warm_s"] = warm_up(preset, phases, CAPTURE_THREADS)
    runtime = make_runtime(preset, phases, CAPTURE_THREADS)
    say(f"profile [{label}]: build of n={preset.n}")
    profiler = Profiler(interval=interval, async_mode="disabled")
    profiler.start()
    tree = CoverTree(runtime).fit(workload.fit_input)
    build_session = profiler.stop()
    say(f"profile [{label}]: {preset.queries} queries, k={preset.k}")
    profiler = Profiler(interval=interval, async_mode="disabled")
    profiler.start()
    _, _, qreport = tree.knn_report(workload.knn_queries, preset.k,
                                    predecessor_mode=preset.predecessor_mode)
    query_session = profiler.stop()
    stem = f"{preset.name}-{label}".replace("/", "_").replace("@", "_at_").replace("=", "")
    session = Session.combine(build_session, query_session)
    entry["files"] = write_session_files(session, out_dir, stem)
    entry["build_wall_ms"] = tree.build_report.build_wall_ms
    entry["query_wall_ms"] = qreport.query_wall_ms
    entry["build_summary"] = tree.build_report.summary()
    entry["query"] = {k: getattr(qreport, k) for k in (
        "queries", "k", "predecessor_mode", "query_wall_ms", "pairs_evaluated",
        "whitened_block_pairs", "whitened_block_ms", "kernel_provider_pairs", "kernel_provider_ms")
        if hasattr(qreport, k)}
    entry["profile"] = {
        "interval_s": interval,
        "build_duration_s": build_session.duration, "query_duration_s": query_session.duration,
        "build_samples": build_session.sample_count, "query_samples": query_session.sample_count,
        "note": "wall times measured under the profiler (a few percent higher than unprofiled)",
    }
    classifier = SessionClassifier()
    regions = classifier.classify({"build": build_session})
    qregions = classifier.classify({"query": query_session})
    entry["callouts"] = {"build": regions["build"], "build_hot": regions["build_hot"],
                         "query": qregions["query"]}
    if not regions["build_hot"]["total_ms"]:
        entry["callouts"]["build_hot_note"] = (
            "no frame named " + "/".join(REGIONS["build_hot"]) + " was sampled; build_hot is empty")
    return entry
