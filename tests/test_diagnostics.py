"""`covertreex diagnostics`: telemetry JSONL logs to CSV, and the phase 0 / phase 3 acceptance."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from covertreex import CoverTree, Runtime, build_residual_backend
from covertreex_bench import diagnostics
from covertreex_bench.cli import main
from covertreex.kernels import RBF
from covertreex.phases import Phases
from covertreex.telemetry import (
    BATCH_FIGURES,
    BatchRecord,
    BuildReport,
    QueryReport,
    build_records,
    query_record,
    write_jsonl,
)

RESIDUAL = "residual_correlation"


def _batch(i, reused=1, dominated=False, traversal=10.0, block=6.0, provider=3.0):
    return BatchRecord(batch_index=i, batch_size=8, traversal_ms=traversal, conflict_graph_ms=1.0 + i,
                       mis_ms=0.1, whitened_block_pairs=64, whitened_block_ms=block,
                       kernel_provider_pairs=64, kernel_provider_ms=provider,
                       conflict_pairwise_reused=reused, semisort_ms=0.0,
                       selected=2 if dominated else 8, dominated=dominated, rounds=1)


def _build(batches, metric=RESIDUAL, wall=100.0, phases=None):
    phases = Phases.all().as_dict() if phases is None else phases
    return BuildReport(metric=metric, n=1 + 8 * len(batches), phases=phases, build_wall_ms=wall,
                       batches=tuple(batches))


def _query(recall=1.0, wall=20.0):
    return QueryReport(metric=RESIDUAL, queries=16, k=4, predecessor_mode=False, query_wall_ms=wall,
                       pairs_evaluated=1000, whitened_block_pairs=1000, whitened_block_ms=1.0,
                       kernel_provider_pairs=1000, kernel_provider_ms=0.5, recall=recall)


def _log(path, *builds, queries=()):
    records = []
    for build in builds:
        records += build_records(build)
    records += [query_record(q) for q in queries]
    write_jsonl(path, records)
    return path


def _csv(text):
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def good_log(tmp_path):
    batches = [_batch(0), _batch(1, dominated=True, traversal=40.0), _batch(2, dominated=True, traversal=20.0)]
    return _log(tmp_path / "good.jsonl", _build(batches), queries=[_query()])


@pytest.fixture
def bad_log(tmp_path):
    batches = [_batch(0, reused=0), _batch(1, reused=0), _batch(2), _batch(3, reused=0)]
    return _log(tmp_path / "bad.jsonl", _build(batches))


def test_csv_columns_and_one_row_per_log(good_log, bad_log, capsys):
    assert main(["diagnostics", str(good_log), str(good_log)]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split(",")
    assert header == list(diagnostics.COLUMNS)
    for figure in BATCH_FIGURES:
        for stat in ("sum", "median", "median_dominated"):
            assert f"{figure}_{stat}" in header
    for name in ("log", "tile_share_of_traversal", "pairwise_not_reused_after_first",
                 "build_wall_ms_median", "query_wall_ms_median", "recall_min"):
        assert name in header
    rows = _csv(out)
    assert len(rows) == 2 and rows[0]["log"] == str(good_log)


def test_sums_medians_and_tile_share(good_log, capsys):
    assert main(["diagnostics", str(good_log)]) == 0
    (row,) = _csv(capsys.readouterr().out)
    assert int(row["batches"]) == 3 and int(row["dominated_batches"]) == 2
    assert float(row["traversal_ms_sum"]) == 70.0
    assert float(row["traversal_ms_median"]) == 20.0
    assert float(row["traversal_ms_median_dominated"]) == 30.0
    assert float(row["conflict_graph_ms_median_dominated"]) == 2.5
    assert float(row["tile_share_of_traversal"]) == pytest.approx(27.0 / 70.0)
    assert int(row["pairwise_not_reused_after_first"]) == 0
    assert float(row["build_wall_ms_median"]) == 100.0
    assert int(row["query_runs"]) == 1 and float(row["recall_min"]) == 1.0


def test_unreused_batches_after_the_first_fail(bad_log, good_log, capsys):
    assert main(["diagnostics", str(good_log), str(bad_log)]) == 1
    captured = capsys.readouterr()
    rows = _csv(captured.out)  # the CSV is still written
    assert [int(r["pairwise_not_reused_after_first"]) for r in rows] == [0, 2]
    (line,) = captured.err.strip().splitlines()
    assert str(bad_log) in line and "2 residual batch(es)" in line and "conflict_pairwise_reused=0" in line


def test_reuse_is_counted_per_build(tmp_path, capsys):
    # The first batch of every build may recompute; a second build's first batch is no failure.
    log = _log(tmp_path / "two.jsonl", _build([_batch(0), _batch(1)]), _build([_batch(0, reused=0), _batch(1)]))
    assert main(["diagnostics", str(log)]) == 0
    (row,) = _csv(capsys.readouterr().out)
    assert int(row["builds"]) == 2 and int(row["batches"]) == 4


def test_builds_with_the_reuse_phase_off_are_counted_apart(tmp_path, capsys):
    off = {**Phases.all().as_dict(), "pairwise_reuse": False}
    log = _log(tmp_path / "ladder.jsonl", _build([_batch(0, reused=0), _batch(1, reused=0)], phases=off),
               _build([_batch(0), _batch(1)]))
    assert main(["diagnostics", str(log)]) == 0
    (row,) = _csv(capsys.readouterr().out)
    assert int(row["pairwise_not_reused_after_first"]) == 0
    assert int(row["pairwise_recompute_phase_off"]) == 1


def test_euclidean_batches_are_not_counted(tmp_path, capsys):
    log = _log(tmp_path / "e.jsonl", _build([_batch(0), _batch(1, reused=0)], metric="euclidean"))
    assert main(["diagnostics", str(log)]) == 0
    (row,) = _csv(capsys.readouterr().out)
    assert int(row["residual_batches"]) == 0


def test_out_writes_a_file(good_log, tmp_path, capsys):
    out = tmp_path / "sub" / "diag.csv"
    assert main(["diagnostics", str(good_log), "--out", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert _csv(out.read_text())[0]["log"] == str(good_log)


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("not json\n", "not JSON"),
    (json.dumps({"schema": "covertreex.telemetry", "version": 2, "kind": "batch"}) + "\n", "lacks field"),
    ("", "no build or query records"),
])
def test_unreadable_logs_exit_2_with_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "log.jsonl"
    if content is not None:
        path.write_text(content)
    assert main(["diagnostics", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("covertreex diagnostics: error:")


def test_a_real_build_log_passes(tmp_path, capsys):
    coords = np.random.default_rng(0).standard_normal((600, 3))
    backend = build_residual_backend(coords, RBF(lengthscale=1.0, variance=1.0), inducing_count=40, seed=42)
    tree = CoverTree(Runtime(metric=RESIDUAL, phases=Phases.all(), batch_size=128)).fit(backend)
    _, _, q = tree.knn_report(np.arange(0, 600, 10), 8)
    log = _log(tmp_path / "real.jsonl", tree.build_report, queries=[q])
    assert main(["diagnostics", str(log)]) == 0
    (row,) = _csv(capsys.readouterr().out)
    assert int(row["batches"]) == len(tree.build_report.batches)
    assert int(row["pairwise_not_reused_after_first"]) == 0
    assert float(row["build_wall_ms_median"]) == pytest.approx(tree.build_report.build_wall_ms)
