"""Telemetry records: every record a build or query writes validates against the schema, survives
a JSONL round trip, and a corrupted record fails validation with a message naming the problem.

(Telemetry overhead is not a unit test: timings belong to the benchmark harness.)
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from covertreex import CoverTree, Runtime, build_residual_backend
from covertreex.kernels import RBF
from covertreex.phases import Phases
from covertreex.telemetry import (
    BATCH_FIGURES,
    SCHEMA_ID,
    SCHEMA_VERSION,
    BatchRecord,
    BuildReport,
    QueryReport,
    build_records,
    query_record,
    read_jsonl,
    validate_record,
    write_jsonl,
)


@pytest.fixture(scope="module")
def residual_run():
    coords = np.random.default_rng(3).standard_normal((700, 3))
    backend = build_residual_backend(coords, RBF(lengthscale=1.0, variance=1.0), inducing_count=48, seed=42)
    tree = CoverTree(Runtime(metric="residual_correlation", phases=Phases.all(), batch_size=128)).fit(backend)
    _, _, report = tree.knn_report(np.arange(0, 700, 7), 10)
    return tree.build_report, report


@pytest.fixture(scope="module")
def euclidean_run():
    points = np.random.default_rng(4).standard_normal((500, 4))
    tree = CoverTree(Runtime(metric="euclidean", phases=Phases.all(), batch_size=128)).fit(points)
    _, _, report = tree.knn_report(np.random.default_rng(5).standard_normal((30, 4)), 5)
    return tree.build_report, report


@pytest.fixture(params=["residual", "euclidean"])
def run(request, residual_run, euclidean_run):
    return residual_run if request.param == "residual" else euclidean_run


def _records(run):
    build, query = run
    return build_records(build) + [query_record(query)]


def test_every_record_validates(run):
    records = _records(run)
    kinds = [r["kind"] for r in records]
    assert kinds[-2:] == ["build", "query"]
    assert set(kinds[:-2]) == {"batch"}
    assert len(kinds) - 2 == len(run[0].batches)
    for rec in records:
        assert rec["schema"] == SCHEMA_ID and rec["version"] == SCHEMA_VERSION
        validate_record(rec)


def test_records_are_json_and_round_trip(run, tmp_path):
    records = _records(run)
    path = tmp_path / "log.jsonl"
    write_jsonl(path, records)
    lines = path.read_text().splitlines()
    assert len(lines) == len(records)
    assert all(json.loads(line) for line in lines)
    assert read_jsonl(path) == json.loads(json.dumps(records))


def test_write_jsonl_appends(run, tmp_path):
    path = tmp_path / "log.jsonl"
    write_jsonl(path, _records(run))
    write_jsonl(path, _records(run))
    assert len(read_jsonl(path)) == 2 * len(_records(run))


def test_batch_figures_are_consistent(residual_run):
    build, query = residual_run
    assert build.batches, "a 700-point build has insertion batches"
    assert [b.batch_index for b in build.batches] == list(range(len(build.batches)))
    assert sum(b.batch_size for b in build.batches) == build.n - 1  # the root is not a batch
    for b in build.batches:
        assert 1 <= b.selected <= b.batch_size
        assert b.dominated == (b.selected < b.batch_size / 2)
        for name in BATCH_FIGURES:
            assert getattr(b, name) >= 0
    assert build.build_wall_ms > 0
    assert query.query_wall_ms > 0 and query.queries == 100 and query.k == 10
    assert query.pairs_evaluated > 0


def test_summary_figures(residual_run):
    build, _ = residual_run
    s = build.summary()
    assert s["batches"] == len(build.batches)
    assert s["build_wall_ms"] == build.build_wall_ms
    for name in BATCH_FIGURES:
        assert s[f"{name}_sum"] == pytest.approx(sum(getattr(b, name) for b in build.batches))
    assert s["pairwise_not_reused_after_first"] == 0
    assert s["tile_share_of_traversal"] is None or 0.0 <= s["tile_share_of_traversal"]


def _batch(i, reused=1, dominated=False, traversal=10.0):
    return BatchRecord(batch_index=i, batch_size=8, traversal_ms=traversal, conflict_graph_ms=1.0,
                       mis_ms=0.1, whitened_block_pairs=64, whitened_block_ms=6.0,
                       kernel_provider_pairs=64, kernel_provider_ms=3.0,
                       conflict_pairwise_reused=reused, semisort_ms=0.0, selected=2 if dominated else 8,
                       dominated=dominated, rounds=1)


def test_summary_counts_unreused_batches_after_the_first():
    report = BuildReport(metric="residual_correlation", n=33, phases={}, build_wall_ms=5.0,
                         batches=(_batch(0, reused=0), _batch(1), _batch(2, reused=0),
                                  _batch(3, reused=0, dominated=True, traversal=30.0)))
    s = report.summary()
    assert s["pairwise_not_reused_after_first"] == 2
    assert s["dominated_batches"] == 1
    assert s["traversal_ms_median_dominated"] == 30.0
    assert s["tile_share_of_traversal"] == pytest.approx(4 * 9.0 / 60.0)


def test_summary_without_dominated_batches_has_none():
    s = BuildReport(metric="euclidean", n=9, phases={}, build_wall_ms=1.0, batches=(_batch(0),)).summary()
    assert s["dominated_batches"] == 0
    assert s["traversal_ms_median_dominated"] is None


# --- corrupted records ----------------------------------------------------------------------------


def _valid(kind, residual_run):
    build, query = residual_run
    records = build_records(build)
    return {"batch": records[0], "build": records[-1], "query": query_record(query)}[kind]


CORRUPTIONS = [
    ("batch", lambda r: r.pop("traversal_ms"), "lacks field 'traversal_ms'"),
    ("batch", lambda r: r.update(batch_size="512"), "'batch_size' must be int"),
    ("batch", lambda r: r.update(dominated=1), "'dominated' must be bool"),
    ("batch", lambda r: r.update(selected=True), "'selected' must be int"),
    ("batch", lambda r: r.update(traversal_ms=None), "'traversal_ms' must be float"),
    ("build", lambda r: r.pop("summary"), "lacks field 'summary'"),
    ("build", lambda r: r.update(build_wall_ms="fast"), "'build_wall_ms' must be float"),
    ("query", lambda r: r.update(recall="1.0"), "'recall' must be float | None"),
    ("query", lambda r: r.pop("query_wall_ms"), "lacks field 'query_wall_ms'"),
    ("batch", lambda r: r.update(schema="other.telemetry"), "not a covertreex.telemetry"),
    ("batch", lambda r: r.update(version=SCHEMA_VERSION + 1), "not a covertreex.telemetry"),
    ("batch", lambda r: r.update(kind="batches"), "unknown record kind"),
]


@pytest.mark.parametrize("kind, corrupt, message", CORRUPTIONS,
                         ids=[f"{k}-{m.split(chr(39))[1] if chr(39) in m else m}" for k, _, m in CORRUPTIONS])
def test_corrupted_record_fails_validation(kind, corrupt, message, residual_run):
    rec = json.loads(json.dumps(_valid(kind, residual_run)))
    validate_record(rec)
    corrupt(rec)
    with pytest.raises(ValueError, match=message.replace("|", r"\|")):
        validate_record(rec)


def test_read_jsonl_names_file_and_line_of_a_bad_record(residual_run, tmp_path):
    build, query = residual_run
    records = build_records(build)
    path = tmp_path / "log.jsonl"
    write_jsonl(path, records[:2])
    bad = dict(records[2])
    del bad["mis_ms"]
    with open(path, "a") as fh:
        fh.write(json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=r"log\.jsonl:3: batch record lacks field 'mis_ms'"):
        read_jsonl(path)


def test_read_jsonl_rejects_a_line_that_is_not_json(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"schema": "covertreex.telemetry"\n')
    with pytest.raises(ValueError, match=r"log\.jsonl:1: not JSON"):
        read_jsonl(path)


def test_read_jsonl_skips_blank_lines(residual_run, tmp_path):
    path = tmp_path / "log.jsonl"
    rec = query_record(residual_run[1])
    path.write_text("\n" + json.dumps(rec) + "\n\n")
    assert read_jsonl(path) == [json.loads(json.dumps(rec))]


def test_query_report_recall_may_be_set(residual_run):
    from dataclasses import replace

    rec = query_record(replace(residual_run[1], recall=1.0))
    validate_record(rec)
    assert rec["recall"] == 1.0
    assert isinstance(residual_run[1], QueryReport)
