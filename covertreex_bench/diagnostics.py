"""Telemetry JSONL logs to a CSV table: the audit's phase 0 acceptance check.

``covertreex diagnostics LOG...`` reads logs written by ``covertreex bench --log`` (or any list
of ``covertreex.telemetry`` records), one CSV row per log:

- sums and medians of every batch figure (overall and over dominated batches), computed with
  ``BuildReport.summary()`` over all batches of the log;
- ``tile_share_of_traversal``: the share of traversal time that the whitened-block and
  kernel-provider counters cover (phase 0 acceptance: >= 0.8);
- ``pairwise_not_reused_after_first``: residual batches, after the first batch of their build,
  that logged ``conflict_pairwise_reused=0`` (phase 3 acceptance: 0). Builds that ran with
  the ``pairwise_reuse`` phase switched off recompute on purpose (the pre-audit behaviour a
  phase ladder measures); their batches are counted in ``pairwise_recompute_phase_off``
  instead. A count above zero is a failure: the CSV is still written, a message goes to
  stderr and the exit status is 1.

A log may hold several builds (``--repeat``, a ladder): batches belong to the build record that
follows them.
"""

from __future__ import annotations

import csv
import statistics
import sys

from covertreex.telemetry import BATCH_FIGURES, BatchRecord, BuildReport, read_jsonl

RESIDUAL = "residual_correlation"

COLUMNS = (
    ["log", "builds", "metrics", "batches", "dominated_batches", "build_wall_ms_median",
     "build_wall_ms_min", "build_wall_ms_max"]
    + [f"{name}_{stat}" for name in BATCH_FIGURES for stat in ("sum", "median", "median_dominated")]
    + ["tile_share_of_traversal", "residual_batches", "pairwise_not_reused_after_first",
       "pairwise_recompute_phase_off", "query_runs", "query_wall_ms_median", "pairs_evaluated_median",
       "recall_min"]
)

_BATCH_FIELDS = tuple(f for f in BatchRecord.__dataclass_fields__)


class DiagnosticsError(ValueError):
    """A log that cannot be read: one line for the user."""


def _builds(records):
    """[(build record or None, [BatchRecord, ...])]: batches grouped with the build they precede."""
    builds, pending = [], []
    for rec in records:
        kind = rec["kind"]
        if kind == "batch":
            pending.append(BatchRecord(**{name: rec[name] for name in _BATCH_FIELDS}))
        elif kind == "build":
            builds.append((rec, pending))
            pending = []
    if pending:  # a log cut short: the batches of an unfinished build
        builds.append((None, pending))
    return builds


def _median(values):
    return float(statistics.median(values)) if values else None


def summarize_records(records, name="") -> dict:
    """The CSV row of one log's records (already validated)."""
    builds = _builds(records)
    batches = [b for _, group in builds for b in group]
    if not batches and not any(r["kind"] == "query" for r in records):
        raise DiagnosticsError(f"{name}: no build or query records")
    row = {"log": name, "builds": sum(1 for rec, _ in builds if rec is not None)}
    metrics = sorted({rec["metric"] for rec, _ in builds if rec is not None}
                     | {r["metric"] for r in records if r["kind"] == "query"})
    row["metrics"] = " ".join(metrics)
    walls = [rec["build_wall_ms"] for rec, _ in builds if rec is not None]
    row["build_wall_ms_median"] = _median(walls)
    row["build_wall_ms_min"] = min(walls) if walls else None
    row["build_wall_ms_max"] = max(walls) if walls else None
    # Sums and medians over every batch of the log, with the library's own summary.
    summary = BuildReport(metric="", n=0, phases={}, build_wall_ms=0.0, batches=tuple(batches)).summary()
    row["batches"] = summary["batches"]
    row["dominated_batches"] = summary["dominated_batches"]
    for figure in BATCH_FIGURES:
        for stat in ("sum", "median", "median_dominated"):
            row[f"{figure}_{stat}"] = summary[f"{figure}_{stat}"] if batches else None
    row["tile_share_of_traversal"] = summary["tile_share_of_traversal"] if batches else None
    residual = not_reused = phase_off = 0
    for rec, group in builds:
        metric = rec["metric"] if rec is not None else None
        if metric not in (RESIDUAL, None):  # an unfinished build of unknown metric still counts
            continue
        residual += len(group)
        zeros = sum(1 for b in group[1:] if b.conflict_pairwise_reused == 0)
        phases = rec.get("phases", {}) if rec is not None else {}
        if phases.get("pairwise_reuse", True):
            not_reused += zeros
        else:
            phase_off += zeros
    row["residual_batches"] = residual
    row["pairwise_not_reused_after_first"] = not_reused
    row["pairwise_recompute_phase_off"] = phase_off
    queries = [r for r in records if r["kind"] == "query"]
    row["query_runs"] = len(queries)
    row["query_wall_ms_median"] = _median([q["query_wall_ms"] for q in queries])
    row["pairs_evaluated_median"] = _median([q["pairs_evaluated"] for q in queries])
    recalls = [q["recall"] for q in queries if q.get("recall") is not None]
    row["recall_min"] = min(recalls) if recalls else None
    return row


def summarize_log(path) -> dict:
    """Read, validate and summarize one JSONL log; DiagnosticsError on any problem."""
    try:
        records = read_jsonl(path)
    except FileNotFoundError:
        raise DiagnosticsError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DiagnosticsError(f"{path}: is a directory, not a JSONL log") from None
    except UnicodeDecodeError:
        raise DiagnosticsError(f"{path}: not a text (JSON lines) file") from None
    except OSError as exc:
        raise DiagnosticsError(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # read_jsonl names file, line and problem
        raise DiagnosticsError(str(exc)) from None
    return summarize_records(records, str(path))


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def write_csv(rows, fh) -> None:
    writer = csv.DictWriter(fh, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(row.get(key)) for key in COLUMNS})


def failures(rows) -> list[str]:
    """One message per log that fails the phase 3 acceptance (reuse after the first batch)."""
    out = []
    for row in rows:
        count = row["pairwise_not_reused_after_first"]
        if count:
            out.append(f"{row['log']}: {count} residual batch(es) after the first of their build "
                       f"logged conflict_pairwise_reused=0 (audit phase 3 requires reuse)")
    return out


def run(logs, out=None, stdout=None, stderr=None) -> int:
    """Summarize ``logs`` into CSV at ``out`` (a path) or stdout; 0, or 1 when a log fails."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    rows = [summarize_log(path) for path in logs]
    if out is None:
        write_csv(rows, stdout)
    else:
        with open(out, "w", newline="", encoding="utf-8") as fh:
            write_csv(rows, fh)
    problems = failures(rows)
    for message in problems:
        print(f"covertreex diagnostics: FAIL {message}", file=stderr)
    return 1 if problems else 0
