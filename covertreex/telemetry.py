"""Telemetry records (docs/design.md, "Telemetry"): per batch, per build, per query run.

Hot loops accumulate into a ``Counters`` array (plain float64, so Numba kernels can
write it too); records are built from it afterwards. Records are frozen and are
written as JSON lines carrying ``SCHEMA_ID`` and ``SCHEMA_VERSION``.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, fields

import numpy as np

SCHEMA_ID = "covertreex.telemetry"
SCHEMA_VERSION = 2

# Slots of a counters array. Numba kernels add cycle-counter ticks to the *_TICKS
# slots; ``settle`` folds them into milliseconds once the kernels are done. WALK_MS sums
# the wall time of every blocked walk: thread time when blocks run on several workers.
# F32_DECIDED / F32_REFINED count the pairs float32 staging settled or sent to float64.
WB_PAIRS, WB_MS, KP_PAIRS, KP_MS, WB_TICKS, KP_TICKS, WALK_MS, F32_DECIDED, F32_REFINED = range(9)
N_COUNTERS = 9


def new_counters() -> np.ndarray:
    """(9,) float64 accumulators: whitened_block_pairs, whitened_block_ms,
    kernel_provider_pairs, kernel_provider_ms, two tick slots, the walks' thread time and
    the float32 staging counts."""
    return np.zeros(N_COUNTERS)


def settle(counters: np.ndarray) -> np.ndarray:
    """Fold cycle ticks into the millisecond slots (in place) and return counters."""
    if counters[WB_TICKS] or counters[KP_TICKS]:
        from ._cycles import cycles_per_ms

        per_ms = cycles_per_ms()
        counters[WB_MS] += counters[WB_TICKS] / per_ms
        counters[KP_MS] += counters[KP_TICKS] / per_ms
        counters[WB_TICKS] = counters[KP_TICKS] = 0.0
    return counters


@dataclass(frozen=True)
class BatchRecord:
    """Figures of one insertion batch."""

    batch_index: int
    batch_size: int
    traversal_ms: float
    conflict_graph_ms: float
    mis_ms: float
    whitened_block_pairs: int
    whitened_block_ms: float
    kernel_provider_pairs: int
    kernel_provider_ms: float
    conflict_pairwise_reused: int
    semisort_ms: float
    selected: int
    dominated: bool
    rounds: int
    # traversal_ms with the blocked walks counted in thread time (summed over workers), the
    # time base of the tile counters; None in records that predate it.
    traversal_thread_ms: float | None = None
    # Pairs of the walk's tiles that float32 staging settled, and that it sent to float64.
    float32_decided_pairs: int = 0
    float32_refined_pairs: int = 0


BATCH_FIGURES = (
    "traversal_ms", "conflict_graph_ms", "mis_ms", "whitened_block_pairs", "whitened_block_ms",
    "kernel_provider_pairs", "kernel_provider_ms", "semisort_ms",
)


@dataclass(frozen=True)
class BuildReport:
    """One build: ``build_wall_ms`` is measured once around the whole insertion call."""

    metric: str
    n: int
    phases: dict
    build_wall_ms: float
    batches: tuple

    def summary(self) -> dict:
        """Sums and medians of every batch figure, overall and over dominated batches."""
        out = {"build_wall_ms": self.build_wall_ms, "batches": len(self.batches)}
        dominated = [b for b in self.batches if b.dominated]
        out["dominated_batches"] = len(dominated)
        for name in BATCH_FIGURES:
            values = [getattr(b, name) for b in self.batches]
            out[f"{name}_sum"] = float(sum(values))
            out[f"{name}_median"] = float(statistics.median(values)) if values else 0.0
            dom = [getattr(b, name) for b in dominated]
            out[f"{name}_median_dominated"] = float(statistics.median(dom)) if dom else None
        reused = [b.conflict_pairwise_reused for b in self.batches[1:]]
        out["pairwise_not_reused_after_first"] = int(sum(1 for r in reused if r == 0))
        # Tile counters sum thread time, so they are compared with the traversal's thread time.
        trav = float(sum(b.traversal_ms if b.traversal_thread_ms is None else b.traversal_thread_ms
                         for b in self.batches))
        out["traversal_thread_ms_sum"] = trav
        for name in ("float32_decided_pairs", "float32_refined_pairs"):
            out[f"{name}_sum"] = int(sum(getattr(b, name) for b in self.batches))
        covered = out["whitened_block_ms_sum"] + out["kernel_provider_ms_sum"]
        out["tile_share_of_traversal"] = covered / trav if trav > 0 else None
        return out


@dataclass(frozen=True)
class QueryReport:
    """One knn call."""

    metric: str
    queries: int
    k: int
    predecessor_mode: bool
    query_wall_ms: float
    pairs_evaluated: int
    whitened_block_pairs: int
    whitened_block_ms: float
    kernel_provider_pairs: int
    kernel_provider_ms: float
    recall: float | None = None


def _record(kind: str, payload: dict) -> dict:
    return {"schema": SCHEMA_ID, "version": SCHEMA_VERSION, "kind": kind, **payload}


def build_records(report: BuildReport) -> list[dict]:
    """JSON-ready records: one per batch, then one for the build."""
    rows = [_record("batch", asdict(b)) for b in report.batches]
    head = {f.name: getattr(report, f.name) for f in fields(report) if f.name != "batches"}
    rows.append(_record("build", {**head, "summary": report.summary()}))
    return rows


def query_record(report: QueryReport) -> dict:
    return _record("query", asdict(report))


def write_jsonl(path, records) -> None:
    """Append records to a JSON-lines file."""
    with open(path, "a", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, sort_keys=True) + "\n")


# Accepted JSON value types per annotation (annotations are strings here).
_ACCEPTS = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "dict": (dict,),
            "float | None": (int, float, type(None))}
_REQUIRED = {
    "batch": {f.name: f.type for f in fields(BatchRecord)},
    "build": {"metric": "str", "n": "int", "phases": "dict", "build_wall_ms": "float", "summary": "dict"},
    "query": {f.name: f.type for f in fields(QueryReport)},
}


def validate_record(rec: dict) -> None:
    """Raise ValueError unless ``rec`` is a record of this schema and version."""
    if rec.get("schema") != SCHEMA_ID or rec.get("version") != SCHEMA_VERSION:
        raise ValueError(
            f"not a {SCHEMA_ID} v{SCHEMA_VERSION} record: schema={rec.get('schema')!r} "
            f"version={rec.get('version')!r}"
        )
    kind = rec.get("kind")
    if kind not in _REQUIRED:
        raise ValueError(f"unknown record kind {kind!r}; expected one of {', '.join(_REQUIRED)}")
    for name, annotation in _REQUIRED[kind].items():
        if name not in rec:
            raise ValueError(f"{kind} record lacks field {name!r}")
        value = rec[name]
        accepts = _ACCEPTS[annotation]
        # bool is an int subclass: only bool fields may hold one.
        if not isinstance(value, accepts) or (isinstance(value, bool) and bool not in accepts):
            raise ValueError(f"{kind} record field {name!r} must be {annotation}, got {value!r}")


def read_jsonl(path) -> list[dict]:
    """Records of a JSON-lines log, each validated."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
            try:
                validate_record(rec)
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: {exc}") from None
            out.append(rec)
    return out
