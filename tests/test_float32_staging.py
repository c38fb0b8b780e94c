"""Audit phase 4: float32 staging decides only what its error bound settles, never changes a
result, stays off for tiny-p rows, and its audit mode catches a wrong decision."""

from dataclasses import replace

import numpy as np
import pytest

from covertreex import CoverTree, Phases, Runtime
from covertreex.metrics.residual import build_residual_backend
from covertreex.metrics.residual.metric import ResidualMetric
from covertreex.metrics.residual.tile_kernels import residual_tile_kernel
from covertreex.reference import check_residual_knn
from covertreex.telemetry import F32_DECIDED, new_counters

F64 = replace(Phases.all(), float32_staging=False)


@pytest.fixture(scope="module")
def wide_p_backend():
    # d = 8: p is large (median near 0.7), so float32 settles most pairs.
    coords = np.random.default_rng(21).standard_normal((1200, 8))
    return build_residual_backend(coords, inducing_count=64)


@pytest.fixture(scope="module")
def tiny_p_backend():
    # d = 3 with many inducing points: p of order 1e-6, where float32 is useless.
    coords = np.random.default_rng(22).standard_normal((1200, 3))
    return build_residual_backend(coords, inducing_count=400)


def _fit(backend, phases, audit=False, threads=None):
    rt = Runtime(metric="residual_correlation", phases=phases, float32_audit=audit,
                 threads=threads, query_block=64, query_brute=0)
    return CoverTree(rt).fit(backend)


def test_staging_decides_pairs_and_changes_nothing(wide_p_backend):
    staged = _fit(wide_p_backend, Phases.all(), audit=True)
    plain = _fit(wide_p_backend, F64)
    summary = staged.build_report.summary()
    assert staged.metric.data.f32_ok.mean() > 0.9
    assert summary["float32_decided_pairs_sum"] > 0.5 * summary["whitened_block_pairs_sum"]
    assert plain.build_report.summary()["float32_decided_pairs_sum"] == 0
    for field in ("levels", "parents", "radii"):
        assert np.array_equal(getattr(staged.arrays, field), getattr(plain.arrays, field)), field
    for pred in (False, True):
        idx, dist = staged.knn(None, k=10, predecessor_mode=pred, return_distances=True)
        ref_idx, ref_dist = plain.knn(None, k=10, predecessor_mode=pred, return_distances=True)
        assert np.array_equal(idx, ref_idx)
        # Pairs sent back to float64 take a dot product per pair, not the GEMM: last bits differ.
        np.testing.assert_allclose(dist, ref_dist, rtol=0, atol=1e-12)
        check_residual_knn(wide_p_backend, None, idx, 10, predecessor_mode=pred, dist=dist)


def test_tiny_p_rows_run_in_float64_and_stay_exact(tiny_p_backend):
    assert float(np.median(tiny_p_backend.p_diag)) < 1e-4
    tree = _fit(tiny_p_backend, Phases.all(), audit=True)
    assert not tree.metric.data.f32_ok.any()
    assert tree.build_report.summary()["float32_decided_pairs_sum"] == 0
    idx, dist = tree.knn(None, k=20, return_distances=True)
    check_residual_knn(tiny_p_backend, None, idx, 20, dist=dist)


def test_audit_mode_raises_when_a_decision_was_wrong(wide_p_backend):
    plan = Runtime(metric="residual_correlation", float32_audit=True).plan.tiles
    metric = ResidualMetric(wide_p_backend, plan)
    rows, cols = np.arange(0, 40, dtype=np.int64), np.arange(40, 1200, dtype=np.int64)
    # float32 V set to zero: a "float32" distance is then about 1 (the kernel part alone is
    # near 0 for most pairs) while many true ones lie under the 0.95 threshold.
    row_thr, col_thr = np.zeros(rows.size), np.full(cols.size, 0.95)
    broken = metric.data._replace(v32=np.zeros_like(metric.data.v32))
    every = np.zeros((0, 0), dtype=np.bool_)
    with pytest.raises(ValueError, match="float32 audit"):
        residual_tile_kernel(metric.data, broken, rows, cols, every, row_thr, col_thr,
                             metric.workspace(rows.size), new_counters())
    # Without the audit the same call trusts the bound (and counts what it decided).
    broken = broken._replace(audit=False)
    counters = new_counters()
    residual_tile_kernel(metric.data, broken, rows, cols, every, row_thr, col_thr,
                         metric.workspace(rows.size), counters)
    assert counters[F32_DECIDED] > 0


def test_float32_audit_setting_is_validated(monkeypatch):
    monkeypatch.setenv("COVERTREEX_FLOAT32_AUDIT", "1")
    rt = Runtime.from_env()
    assert rt.float32_audit is True and rt.describe()["float32_audit"]["source"] == "environment"
    # Runtime() itself reads no environment.
    assert Runtime().describe()["float32_audit"] == {"value": False, "source": "default"}
    monkeypatch.setenv("COVERTREEX_FLOAT32_AUDIT", "maybe")
    with pytest.raises(ValueError, match="COVERTREEX_FLOAT32_AUDIT"):
        Runtime.from_env()
    monkeypatch.delenv("COVERTREEX_FLOAT32_AUDIT")
    with pytest.raises(TypeError, match="float32_audit"):
        Runtime(float32_audit="yes")
