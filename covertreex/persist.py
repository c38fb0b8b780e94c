"""Saving, loading and pickling fitted trees (``CoverTree.save``, ``CoverTree.load``, pickle).

A saved tree is one uncompressed ``.npz`` archive (``np.savez``) holding only arrays of numbers
and one JSON metadata string; it is read with ``allow_pickle=False``, so loading a file never
runs code. Entries, all C-contiguous:

- ``__meta__``: (bytes,) uint8, UTF-8 JSON with ``"format": "covertreex.tree"``, ``"version"``
  (``VERSION``), ``n``, the metric, every ``Runtime`` setting (``phases`` as a dict), the tree's
  ``root`` and ``floor_level``, the residual kernel (``type``: "RBF" or "Matern52",
  ``lengthscale``: a float or one per dimension, ``variance``) and the ``BuildReport`` (its
  batches included: a few kilobytes, and the report the tree was fitted with stays with it);
- ``tree.levels``, ``tree.parents``, ``tree.min_id_below``: (n,) int64; ``tree.radii``,
  ``tree.parent_dist``: (n,) float64; ``tree.child_ptr``: (n + 1,) int64; ``tree.child_idx``:
  (n - 1,) int64 (the ``TreeArrays`` fields);
- euclidean: ``points`` (n, d) float64;
- residual: ``backend.coords`` (n, d), ``backend.v_matrix`` (n, m), ``backend.p_diag`` and
  ``backend.kernel_diag`` (n,) float64, ``backend.inducing_ids`` (m',) int64 (the
  ``ResidualBackend`` fields).

Derived state is not stored: loading rebuilds the metric from the points or the backend with
``runtime.plan.tiles`` and, for the pointwise traversal, the layout with ``make_layout``, as
``fit`` does, so a loaded tree answers bit for bit as the saved one. Pickling (Dask ships trees
to workers that way) goes through the same state with the arrays kept in memory.

Loading checks the format name, the version, the presence, dtype and shape of every array and
the structure of the tree arrays (ids in range, children consistent with parents, levels
falling from parent to child), and raises ``ValueError`` naming the file and the problem for a
truncated, foreign or newer file; a missing file raises the usual ``FileNotFoundError``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from dataclasses import asdict, fields

import numpy as np

from .engine.layout import make_layout
from .kernels import RBF, Matern52
from .metrics.euclidean import EuclideanMetric
from .metrics.residual.backend import ResidualBackend
from .metrics.residual.metric import ResidualMetric
from .phases import Phases
from .runtime import Runtime
from .telemetry import BatchRecord, BuildReport
from .tree import TreeArrays

FORMAT = "covertreex.tree"
VERSION = 1
META = "__meta__"
RUNTIME_SETTINGS = ("metric", "batch_size", "batch_order", "seed", "traversal", "query_block",
                    "query_split", "query_seeds", "query_brute", "threads", "blas_threads",
                    "float32_audit")
# Settings added after format version 1 was published: files written before them lack them,
# and the tree loads with the setting's default.
LATER_SETTINGS = ("query_split", "query_seeds", "query_brute")
KERNELS = {"RBF": RBF, "Matern52": Matern52}
_TREE_FIELDS = ("levels", "parents", "radii", "parent_dist", "child_ptr", "child_idx",
                "min_id_below")
_BACKEND_FIELDS = ("coords", "v_matrix", "p_diag", "kernel_diag", "inducing_ids")
_I8, _F8 = np.dtype(np.int64), np.dtype(np.float64)
_ZIP_MAGIC = b"PK\x03\x04"


# --- the state of a fitted tree -----------------------------------------------------------------


def tree_state(tree) -> tuple[str, dict[str, np.ndarray]]:
    """(metadata JSON string, {entry name: array}) of a fitted tree; the arrays are the tree's
    own (no copies). Raises ValueError for an unfitted tree."""
    arrays = tree.arrays
    if arrays is None:
        raise ValueError("this CoverTree is not fitted, so there is nothing to save; "
                         "call tree = CoverTree(runtime).fit(data) first")
    rt = tree.runtime
    meta = {"format": FORMAT, "version": VERSION, "n": arrays.n, "metric": rt.metric,
            "runtime": {name: getattr(rt, name) for name in RUNTIME_SETTINGS},
            "phases": rt.phases.as_dict(), "sources": [list(s) for s in rt._sources],
            "root": int(arrays.root), "floor_level": int(arrays.floor_level),
            "build_report": _report_json(tree.build_report)}
    out = {f"tree.{name}": getattr(arrays, name) for name in _TREE_FIELDS}
    if rt.metric == "residual_correlation":
        backend = tree.metric.backend
        kernel = backend.kernel
        meta["kernel"] = {"type": type(kernel).__name__, "variance": kernel.variance,
                          "lengthscale": (list(kernel.lengthscale)
                                          if isinstance(kernel.lengthscale, tuple)
                                          else kernel.lengthscale)}
        out.update({f"backend.{name}": getattr(backend, name) for name in _BACKEND_FIELDS})
    else:
        out["points"] = tree.metric.data
    return json.dumps(meta, sort_keys=True), out


def _report_json(report: BuildReport | None):
    if report is None:
        return None
    return {"metric": report.metric, "n": report.n, "phases": dict(report.phases),
            "build_wall_ms": report.build_wall_ms,
            "batches": [asdict(b) for b in report.batches]}


def restore(cls, meta_json: str, arrays: dict, source: str = "pickled tree"):
    """A fitted ``cls`` (CoverTree) from ``tree_state``'s output, every array checked and made
    read-only, the metric and layout rebuilt. Raises ValueError naming ``source``."""
    try:
        meta = json.loads(meta_json)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: the {META} entry is not JSON; not a {FORMAT} file") from None
    return cls(**_parts(meta, arrays, source))


def unpickle(cls, meta_json: str, arrays: dict):
    """What ``CoverTree.__reduce__`` names: restore a pickled tree."""
    return restore(cls, meta_json, arrays)


def _parts(meta, arrays: dict, source: str) -> dict:
    """The CoverTree constructor arguments of checked metadata and arrays."""
    _check_meta(meta, source)
    runtime = _runtime(meta, source)
    n = meta["n"]
    expected = {f"tree.{name}" for name in _TREE_FIELDS}
    expected |= ({f"backend.{name}" for name in _BACKEND_FIELDS}
                 if runtime.metric == "residual_correlation" else {"points"})
    missing, extra = sorted(expected - set(arrays)), sorted(set(arrays) - expected)
    if missing or extra:
        raise ValueError(f"{source}: a {runtime.metric} tree file needs the entries "
                         f"{sorted(expected)}; missing {missing}, unexpected {extra}")
    tree = _tree_arrays(meta, arrays, n, source)
    if runtime.metric == "residual_correlation":
        backend = _backend(meta, arrays, n, source)
        metric, coords = ResidualMetric(backend, runtime.plan.tiles), backend.coords
    else:
        coords = _checked(arrays, "points", _F8, (n, None), source, finite=True)
        metric = EuclideanMetric(coords)
    layout = None
    if runtime.plan.walk.traversal == "pointwise":
        layout = make_layout(metric, tree.view(), tree.n, with_runs=True)
    return {"runtime": runtime, "arrays": tree, "metric": metric,
            "build_report": _report(meta.get("build_report"), source), "layout": layout,
            "_coords": coords}


def _check_meta(meta, source: str) -> None:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"{source}: not a {FORMAT} file (format {found!r})")
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{source}: {FORMAT} file with an invalid version {version!r}")
    if version > VERSION:
        raise ValueError(f"{source}: {FORMAT} file version {version} was written by a newer "
                         f"covertreex; this covertreex reads version {VERSION}: upgrade it")
    for key, kind in (("n", int), ("root", int), ("floor_level", int), ("runtime", dict),
                      ("phases", dict)):
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise ValueError(f"{source}: metadata field {key!r} missing or not {kind.__name__}")
    if meta.get("metric") != meta["runtime"].get("metric"):
        raise ValueError(f"{source}: metadata metric {meta.get('metric')!r} differs from the "
                         f"runtime's {meta['runtime'].get('metric')!r}")
    if meta["n"] < 1 or not 0 <= meta["root"] < meta["n"]:
        raise ValueError(f"{source}: metadata n={meta['n']}, root={meta['root']} out of range")


def _runtime(meta, source: str) -> Runtime:
    settings = meta["runtime"]
    if not set(RUNTIME_SETTINGS) - set(LATER_SETTINGS) <= set(settings) <= set(RUNTIME_SETTINGS):
        raise ValueError(f"{source}: runtime settings {sorted(settings)}, expected "
                         f"{sorted(RUNTIME_SETTINGS)}")
    sources = meta.get("sources", [])
    try:
        return Runtime(**settings, phases=Phases(**meta["phases"]),
                       _sources=tuple(tuple(s) for s in sources))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: invalid runtime settings: {exc}") from None


def _report(data, source: str) -> BuildReport | None:
    if data is None:
        return None
    try:
        batches = tuple(BatchRecord(**b) for b in data["batches"])
        head = {f.name: data[f.name] for f in fields(BuildReport) if f.name != "batches"}
        return BuildReport(**head, batches=batches)
    except (TypeError, KeyError) as exc:
        raise ValueError(f"{source}: invalid build report: {exc}") from None


# --- array checks -------------------------------------------------------------------------------


def _checked(arrays, name, dtype, shape, source, finite=False) -> np.ndarray:
    """arrays[name] as a read-only C-contiguous array after checking its dtype and shape
    (in ``shape`` an int is an exact length, None any length of at least 1, -1 any length)."""
    arr = arrays[name]
    if not isinstance(arr, np.ndarray) or arr.dtype != dtype:
        got = arr.dtype if isinstance(arr, np.ndarray) else type(arr).__name__
        raise ValueError(f"{source}: entry {name!r} must be {dtype}, got {got}")
    fits = arr.ndim == len(shape) and all(
        got == want if want is not None and want >= 0 else got >= (1 if want is None else 0)
        for got, want in zip(arr.shape, shape))
    if not fits:
        want = tuple("*" if s is None or s < 0 else s for s in shape)
        raise ValueError(f"{source}: entry {name!r} has shape {arr.shape}, expected {want}")
    if finite and not np.isfinite(arr).all():
        raise ValueError(f"{source}: entry {name!r} holds NaN or inf")
    arr = np.ascontiguousarray(arr)
    arr.setflags(write=False)
    return arr


def _tree_arrays(meta, arrays, n: int, source: str) -> TreeArrays:
    shapes = {"child_ptr": (n + 1,), "child_idx": (n - 1,)}
    dtypes = {"radii": _F8, "parent_dist": _F8}
    got = {name: _checked(arrays, f"tree.{name}", dtypes.get(name, _I8), shapes.get(name, (n,)),
                          source, finite=name in dtypes)
           for name in _TREE_FIELDS}
    _check_structure(got, meta["root"], source)
    return TreeArrays(**got, root=meta["root"], floor_level=meta["floor_level"])


def _check_structure(a: dict, root: int, source: str) -> None:
    """Ids in range, children consistent with parents, levels falling from parent to child:
    what keeps the kernels' unchecked indexing in bounds and every node reachable."""
    n = a["levels"].shape[0]
    parents, ptr, idx = a["parents"], a["child_ptr"], a["child_idx"]
    problems = []
    if parents[root] != -1 or int((parents == -1).sum()) != 1 or parents.min() < -1 \
            or parents.max() >= n:
        problems.append("parents must be ids in [0, n) with -1 at the root only")
    elif ptr[0] != 0 or ptr[-1] != n - 1 or (np.diff(ptr) < 0).any():
        problems.append("child_ptr must rise from 0 to n - 1")
    elif n > 1 and (idx.min() < 0 or idx.max() >= n
                    or (parents[idx] != np.repeat(np.arange(n), np.diff(ptr))).any()):
        problems.append("child_idx does not list each node under its parent")
    elif n > 1 and (a["levels"][idx] >= a["levels"][parents[idx]]).any():
        problems.append("a child's level is not below its parent's")
    elif a["min_id_below"].min() < 0 or (a["min_id_below"] > np.arange(n)).any():
        problems.append("min_id_below must be an id at most the node's own")
    if problems:
        raise ValueError(f"{source}: inconsistent tree arrays: {problems[0]}")


def _backend(meta, arrays, n: int, source: str) -> ResidualBackend:
    spec = meta.get("kernel")
    try:
        kernel = KERNELS[spec["type"]](lengthscale=spec["lengthscale"], variance=spec["variance"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{source}: invalid kernel metadata {spec!r} ({exc}); expected type "
                         f"one of {sorted(KERNELS)}, lengthscale and variance") from None
    coords = _checked(arrays, "backend.coords", _F8, (n, None), source, finite=True)
    v = _checked(arrays, "backend.v_matrix", _F8, (n, None), source, finite=True)
    p = _checked(arrays, "backend.p_diag", _F8, (n,), source, finite=True)
    kdiag = _checked(arrays, "backend.kernel_diag", _F8, (n,), source, finite=True)
    ids = _checked(arrays, "backend.inducing_ids", _I8, (-1,), source)
    if (p <= 0).any():
        raise ValueError(f"{source}: entry 'backend.p_diag' must be > 0 everywhere")
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise ValueError(f"{source}: entry 'backend.inducing_ids' has ids outside [0, {n})")
    try:
        kernel._inverse_lengthscale(coords.shape[1])
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    return ResidualBackend(coords=coords, kernel=kernel, inducing_ids=ids, v_matrix=v,
                           p_diag=p, kernel_diag=kdiag)


# --- files --------------------------------------------------------------------------------------


def save(tree, path) -> None:
    """Write the fitted ``tree`` to ``path`` (str or os.PathLike; the name is used as given, no
    suffix is added) as one .npz archive, atomically: a unique temporary file in the target's
    directory, flushed to disk, then renamed over ``path``. A failure leaves no partial file and
    any earlier file at ``path`` as it was. Raises ValueError for an unfitted tree and OSError
    naming the path when it cannot be written, before anything is serialised."""
    meta_json, arrays = tree_state(tree)
    path = _as_path(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot save the tree to {path!r}: it is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                   suffix=".tmp")
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot save the tree to {path!r}: "
                                   f"{exc.strerror} (directory {directory!r})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write_npz(fh, meta_json, arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_npz(fh, meta_json: str, arrays: dict) -> None:
    """The archive of ``tree_state``'s output into the binary file object ``fh``."""
    meta = np.frombuffer(meta_json.encode("utf-8"), dtype=np.uint8)
    np.savez(fh, **{META: meta}, **arrays)


def load(path) -> dict:
    """The CoverTree constructor arguments of the tree saved at ``path``, checked (see the
    module docstring). Raises FileNotFoundError for a missing file and ValueError naming the
    file for anything that is not a complete tree file this covertreex can read."""
    path = _as_path(path)
    with open(path, "rb") as fh:
        return read_npz(fh, repr(path))


def read_npz(fh, source: str) -> dict:
    """The CoverTree constructor arguments of the archive in the binary file object ``fh``."""
    if fh.read(4) != _ZIP_MAGIC:
        raise ValueError(f"{source}: not a {FORMAT} file (not an .npz archive)")
    fh.seek(0)
    try:
        with np.load(fh, allow_pickle=False) as npz:
            entries = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError) as exc:
        raise ValueError(f"{source}: unreadable or truncated {FORMAT} file "
                         f"({type(exc).__name__}: {exc})") from None
    meta = entries.pop(META, None)
    if meta is None or meta.dtype != np.uint8 or meta.ndim != 1:
        raise ValueError(f"{source}: not a {FORMAT} file (no {META} metadata entry)")
    try:
        meta = json.loads(meta.tobytes().decode("utf-8"))
    except ValueError:
        raise ValueError(f"{source}: the {META} entry is not JSON; not a {FORMAT} file") from None
    return _parts(meta, entries, source)


def to_bytes(tree) -> bytes:
    """The saved form of ``tree`` as bytes (what ``save`` writes)."""
    buf = io.BytesIO()
    write_npz(buf, *tree_state(tree))
    return buf.getvalue()


def _as_path(path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask would change
    it for every thread for a moment)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022
