"""The bench's sampled reference, query-phase figures, probes and stretch goals
(covertreex_bench.bench, results, gemm, thresholds, console), on scaled presets that take seconds."""

from __future__ import annotations

import dataclasses
import io
import types

import numpy as np
import pytest

from covertreex import reference
from covertreex.runtime import auto_brute
from covertreex_bench import bench, console, results, thresholds
from covertreex_bench.gemm import dgemm_gflops
from covertreex_bench.workloads import load_workload

from conftest import assert_rho_within_rule

QUERY_KEYS = ("pairs_per_row", "brute_pairs_per_row", "pairs_over_brute", "tile_ms", "tile_gflops",
              "dgemm_gflops", "gemm_share", "single_row_pairs_per_row", "single_row_sample",
              "blocked_over_single")


class _Terminal(io.StringIO):
    """A stream that says it is a terminal, so that progress lines are drawn into it."""

    def isatty(self):
        return True


@pytest.fixture(scope="module")
def sampled():
    """vecchia-131k scaled to n=1024: predecessor mode, reference on 1 row block in 8."""
    preset, _ = bench.resolve_preset("vecchia-131k", n=1024)
    return preset, load_workload(preset)


@pytest.fixture(scope="module")
def runs():
    """--check runs of quick (dataset ids) and of the sampled vecchia-131k, scaled down; the
    second one draws its progress lines into a terminal."""
    terminal = _Terminal()
    quick, _ = bench.resolve_preset("quick", n=600)
    vecchia, _ = bench.resolve_preset("vecchia-131k", n=2048)
    return {
        "quick": bench.run_preset(quick, check=True, scaled=True, progress=False),
        "vecchia": bench.run_preset(vecchia, check=True, scaled=True, progress=True,
                                    stream=terminal, thresholds=thresholds.load()),
        "terminal": terminal.getvalue(),
    }


# --- the sampled reference ------------------------------------------------------------------------


def test_reference_plan_blocks_costs_and_sample():
    plan = bench.reference_plan(np.arange(10), 10, True, every=2, rows_per_block=4)
    assert [b.tolist() for b in plan.blocks] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    # rows x columns below the block's largest id
    assert plan.costs.tolist() == [4 * 3, 4 * 7, 2 * 9]
    assert plan.timed.tolist() == [1] and plan.rows.tolist() == [4, 5, 6, 7]
    assert plan.scale == pytest.approx((12 + 28 + 18) / 28)
    full = bench.reference_plan(np.arange(10), 10, False, every=1, rows_per_block=4)
    assert full.costs.tolist() == [40, 40, 20] and full.timed.tolist() == [0, 1, 2]
    assert full.scale == 1.0
    # The middle block of each run of `every`; the last one when there are fewer.
    assert bench.reference_plan(np.arange(100), 100, True, 4, 5).timed.tolist() == [2, 6, 10, 14, 18]
    assert bench.reference_plan(np.arange(10), 10, True, 8, 4).timed.tolist() == [2]
    for every in (0, 1.5, True):
        with pytest.raises(ValueError, match="every"):
            bench.reference_plan(np.arange(10), 10, True, every)


def test_presets_sample_the_reference_where_it_takes_minutes():
    from covertreex_bench.workloads import PRESETS

    assert {name: p.reference_every for name, p in PRESETS.items() if p.reference_every > 1} == {
        "vecchia-65k": 4, "vecchia-131k": 8}
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="reference_every"):
            dataclasses.replace(PRESETS["quick"], reference_every=bad)
    with pytest.raises(ValueError, match="needs a residual preset"):
        dataclasses.replace(PRESETS["euclid-32k"], reference_every=2)


def test_sampled_reference_time_scales_by_rows_times_columns(monkeypatch):
    """A fake brute force whose block costs 1 ms per row x column: the sampled estimate is
    then exactly what every block together costs."""
    clock = types.SimpleNamespace(now=0.0)
    monkeypatch.setattr(bench, "time", types.SimpleNamespace(perf_counter=lambda: clock.now))
    calls = []

    def fake_knn(backend, ids, k, predecessor_mode):
        calls.append(ids)
        clock.now += ids.size * int(ids.max()) / 1e3
        return np.zeros((ids.size, k), dtype=np.int64), np.zeros((ids.size, k))

    monkeypatch.setattr(reference, "residual_knn", fake_knn)
    preset, _ = bench.resolve_preset("vecchia-131k", n=4096)
    workload = types.SimpleNamespace(query_ids=None, backend=None)
    ref = bench.compute_reference(preset, workload, threads=1)
    rows = bench.REFERENCE_BLOCK_ROWS
    every_block = sum(rows * (start + rows - 1) for start in range(0, 4096, rows))
    assert ref.ms == pytest.approx(every_block)
    assert len(calls) == ref.sampling["blocks_timed"] == 2  # blocks 4 and 12 of 16
    assert [c[0] for c in calls] == [4 * rows, 12 * rows]
    assert ref.sampling == {"every": 8, "blocks_timed": 2, "blocks_total": 4096 // rows,
                            "rows_checked": 2 * rows, "timed_ms": pytest.approx(
                                sum(rows * (s + rows - 1) for s in (4 * rows, 12 * rows)))}
    assert "SAMPLED" in ref.kind and "scaled" in ref.kind


def test_every_1_is_the_full_brute_force_and_the_sample_its_rows(sampled):
    preset, workload = sampled
    full_idx, full_dist = reference.residual_knn(workload.backend, None, preset.k,
                                                 predecessor_mode=True)
    every = bench.compute_reference(dataclasses.replace(preset, reference_every=1), workload)
    assert every.sampling is None and "SAMPLED" not in every.kind
    assert every.rows.tolist() == list(range(preset.queries))  # rows_checked == q
    np.testing.assert_array_equal(every.result[0], full_idx)
    # BLAS rounds a block of rows differently from all rows at once, by more than 1e-12 with
    # some CPUs' kernels.
    assert_rho_within_rule(workload.backend, every.rows, every.result[1], full_dist)
    ref = bench.compute_reference(preset, workload)
    assert ref.sampling["rows_checked"] == ref.rows.size == bench.REFERENCE_BLOCK_ROWS
    np.testing.assert_array_equal(ref.result[0], full_idx[ref.rows])
    assert_rho_within_rule(workload.backend, ref.rows, ref.result[1], full_dist[ref.rows])


def test_recall_is_judged_on_the_sampled_rows_only(sampled):
    preset, workload = sampled
    ref = bench.compute_reference(preset, workload)
    idx, dist = reference.residual_knn(workload.backend, None, preset.k, predecessor_mode=True)
    assert bench.recall_of(preset, workload, idx, dist, ref) == 1.0

    def planted(row):
        wrong = idx.copy()
        # A predecessor that is not among the row's neighbours replaces its nearest one.
        wrong[row, 0] = np.setdiff1d(np.arange(row), idx[row])[-1]
        return wrong

    outside = int(np.setdiff1d(np.arange(preset.k + 1, preset.n), ref.rows)[0])
    inside = int(ref.rows[len(ref.rows) // 2])
    assert bench.recall_of(preset, workload, planted(outside), dist, ref) == 1.0
    assert bench.recall_of(preset, workload, planted(inside), dist, ref) < 1.0


# --- query figures and probes ---------------------------------------------------------------------


def test_query_figures_of_a_quick_run(runs):
    result = runs["quick"]
    q = result["query"]
    assert set(QUERY_KEYS) <= set(q)
    assert q["pairs_per_row"] == result["pairs_evaluated"] / result["queries"]
    assert q["brute_pairs_per_row"] == result["n"] - 1  # dataset ids: every other point
    assert q["pairs_over_brute"] == pytest.approx(q["pairs_per_row"] / q["brute_pairs_per_row"])
    assert q["tile_ms"] == pytest.approx(q["whitened_block_ms"] + q["kernel_provider_ms"])
    assert q["tile_gflops"] > 0 and q["dgemm_gflops"] > 0
    assert q["gemm_share"] == pytest.approx(q["tile_gflops"] / q["dgemm_gflops"])
    assert len(result["dgemm_gflops_rounds"]) == 5
    assert q["single_row_sample"] == min(bench.SINGLE_ROW_SAMPLE, result["queries"])
    assert q["single_row_pairs_per_row"] > 0
    assert q["blocked_over_single"] == pytest.approx(q["pairs_per_row"] / q["single_row_pairs_per_row"])
    assert result["single_row_mismatches"] == 0
    assert result["peak_rss_mb"] > 0 and result["reference_sampling"] is None
    named = results.figures(result)
    for name in (*QUERY_KEYS, "peak_rss_mb", "single_row_mismatches"):
        assert name in results.known_figures() and named[name] is not None, name


def test_sampled_vecchia_run_reports_and_shows_its_sampling(runs):
    result = runs["vecchia"]
    sampling = result["reference_sampling"]
    assert sampling["every"] == 8 and sampling["blocks_total"] == 2048 // bench.REFERENCE_BLOCK_ROWS
    assert result["recall"] == 1.0 and result["reference_ms"] > sampling["timed_ms"]
    assert result["query"]["brute_pairs_per_row"] == (2048 - 1) / 2
    text = console.format_result(result)
    assert "SAMPLED AND SCALED" in text and f"{sampling['rows_checked']} query rows" in text
    for label in ("pairs/row", "GEMM share", "blocked/single", "peak RSS",
                  f"rows with at most {auto_brute(result['metric'], 2048)} candidates"):
        assert label in text, label
    verdicts = {v["figure"]: v["status"] for v in result["verdicts"]}
    for figure in ("recall", "peak_rss_mb", "gemm_share", "blocked_over_single",
                   "single_row_mismatches", "build_query_over_reference", "build_wall_ms"):
        assert verdicts[figure] in ("PASS", "FAIL"), figure


def test_every_long_phase_draws_progress_and_none_when_off(runs):
    drawn = runs["terminal"]
    for label in ("data vecchia-131k@n=2048", "build vecchia-131k@n=2048",
                  "queries vecchia-131k@n=2048", "single rows vecchia-131k@n=2048",
                  "reference vecchia-131k@n=2048 (1 block in 8)"):
        assert label in drawn, label
    stream = _Terminal()
    preset, _ = bench.resolve_preset("vecchia-131k", n=600)
    bench.run_preset(preset, check=True, warm=False, progress=False, stream=stream)
    assert stream.getvalue() == ""


def test_single_row_sample_counts_pairs_and_catches_a_wrong_row(sampled):
    from covertreex import CoverTree

    preset, workload = sampled
    m = bench.measure(preset, workload, bench.make_runtime(preset))
    single = bench.single_row_sample(preset, workload, m)
    assert single.rows == min(bench.SINGLE_ROW_SAMPLE, preset.queries)
    assert single.pairs_evaluated > 0 and single.mismatches == 0
    idx, dist = m.results[-1]
    wrong = idx.copy()
    wrong[np.random.default_rng(preset.seed + 4).choice(preset.queries, single.rows,
                                                        replace=False)[0], 0] = -7
    doctored = results.Measurement(m.build_reports, m.query_reports, [(wrong, dist)], m.tree)
    assert bench.single_row_sample(preset, workload, doctored).mismatches == 1
    few, _ = bench.resolve_preset("quick", n=100)  # fewer query rows than the sample
    few_data = load_workload(few)
    tree = CoverTree(bench.make_runtime(few)).fit(few_data.fit_input)
    idx, dist, report = tree.knn_report(few_data.knn_queries, few.k)
    m = results.Measurement([tree.build_report], [report], [(idx, dist)], tree)
    assert bench.single_row_sample(few, few_data, m).rows == 100


def test_brute_pairs_per_row_per_kind_of_job():
    get = lambda name: bench.resolve_preset(name, n=1000)[0]  # noqa: E731
    assert results.brute_pairs_per_row(get("vecchia-d3")) == 999 / 2
    assert results.brute_pairs_per_row(get("gold-d3")) == 999
    assert results.brute_pairs_per_row(get("euclid-32k")) == 1000


def test_dgemm_probe_keeps_its_rounds_and_checks_its_arguments():
    probe = dgemm_gflops(8, 16, 32, workers=2, rounds=3, round_s=0.01)
    assert len(probe.rounds) == 3 and probe.gflops == pytest.approx(sorted(probe.rounds)[1])
    assert probe.shape == (8, 16, 32) and probe.workers == 2 and min(probe.rounds) > 0
    with pytest.raises(ValueError, match="workers"):
        dgemm_gflops(8, 16, 32, workers=0)
    with pytest.raises(TypeError, match="rows"):
        dgemm_gflops(8.0, 16, 32, workers=1)


def test_peak_rss_is_a_positive_number_of_megabytes():
    peak = bench.peak_rss_mb()
    assert peak > 1  # a Python process with numpy holds more than a megabyte


# --- stretch goals --------------------------------------------------------------------------------


GOAL_FILE = """
[t]
presets = ["p"]
[t.build_query_over_reference]
op = "<="
issue = 0.5
gate = "issue"
stretch = true
[t.recall]
op = ">="
audit = 1.0
"""


def test_a_stretch_goal_is_shown_as_goal_and_never_fails():
    import tomllib

    parsed = thresholds.parse(tomllib.loads(GOAL_FILE))
    gates = parsed.for_preset("p")
    assert [t.stretch for t in gates] == [True, False]
    met = thresholds.evaluate({"build_query_over_reference": 0.4, "recall": 1.0}, gates)
    missed = thresholds.evaluate({"build_query_over_reference": 0.7, "recall": 1.0}, gates)
    assert (met[0].status, met[0].note) == ("GOAL", "met")
    assert (missed[0].status, missed[0].note) == ("GOAL", "not met")
    assert thresholds.failed(missed) == []
    text = console.format_verdicts(missed)
    assert "GOAL (not met)" in text and "1 PASS, 0 FAIL, 0 SKIP, 1 GOAL" in text
    unmeasured = thresholds.evaluate({}, gates)
    assert [v.status for v in unmeasured] == ["SKIP", "SKIP"]
    with pytest.raises(thresholds.ThresholdsError, match="stretch must be true or false"):
        thresholds.parse(tomllib.loads(GOAL_FILE.replace("stretch = true", 'stretch = "yes"')))


def test_the_shipped_file_makes_vecchia_d3_a_goal_and_gates_the_large_vecchias():
    shipped = thresholds.load()
    (goal,) = [t for t in shipped.for_preset("vecchia-d3") if t.figure == "build_query_over_reference"]
    assert goal.stretch and goal.limit == 0.5
    for preset in ("vecchia-65k", "vecchia-131k"):
        gates = {t.figure: t for t in shipped.for_preset(preset)}
        assert not any(t.stretch for t in gates.values())
        limits = {figure: (t.op, t.limit) for figure, t in gates.items()}
        assert limits["build_query_over_reference"] == ("<=", 0.25)
        assert limits["peak_rss_mb"] == ("<=", 2500) and limits["gemm_share"] == (">=", 0.75)
        assert limits["blocked_over_single"] == ("<=", 1.2) and limits["recall"] == (">=", 1.0)
    assert {t.figure: t.limit for t in shipped.for_preset("vecchia-131k")}["build_wall_ms"] == 10000
