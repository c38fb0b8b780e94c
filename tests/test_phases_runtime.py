"""Audit phase flags, Runtime settings and their sources, phase 3 reuse, phase 7 threads."""

import os
import subprocess
import sys
from dataclasses import replace

import numba
import numpy as np
import pytest

from covertreex import CoverTree, Phases, Runtime, configure_threading
from covertreex.insert.insert import ResidualPairwiseCacheError, conflict_pairwise
from covertreex.metrics.residual import build_residual_backend
from covertreex.phases import PHASE_NUMBERS
from covertreex.threads import thread_limits
from covertreex_bench.workloads import get_preset, load_workload


def test_all_and_baseline_are_opposites():
    assert all(Phases.all().as_dict().values())
    assert not any(Phases.baseline().as_dict().values())
    assert Runtime().phases == Phases.all()


def test_ladder_is_cumulative_in_phase_order():
    steps = Phases.ladder()
    assert [label for label, _ in steps][0] == "baseline"
    assert steps[-1][1] == Phases.all()
    on_counts = [sum(p.as_dict().values()) for _, p in steps]
    assert on_counts == list(range(len(PHASE_NUMBERS) + 1))
    for (_, before), (label, after) in zip(steps, steps[1:]):
        switched = [k for k, v in after.as_dict().items() if v and not before.as_dict()[k]]
        assert len(switched) == 1 and label.endswith(switched[0])
        assert PHASE_NUMBERS[switched[0]] == int(label.split()[0][1:])


def test_parse_accepts_names_and_rejects_unknown_ones():
    assert Phases.parse("baseline") == Phases.baseline()
    assert Phases.parse("block_gemm=0").block_gemm is False
    with pytest.raises(ValueError, match="unknown phase 'blok'"):
        Phases.parse("blok=1")
    with pytest.raises(ValueError, match="must be 0 or 1"):
        Phases.parse("block_gemm=2")
    with pytest.raises(TypeError, match="must be True or False"):
        Phases(block_gemm=1)


def test_environment_overrides_a_phase_and_describe_names_the_source(monkeypatch):
    monkeypatch.setenv("COVERTREEX_PHASE_BLOCK_GEMM", "0")
    monkeypatch.setenv("COVERTREEX_BATCH_SIZE", "64")
    rt = Runtime.from_env(seed=7)
    assert rt.phases.block_gemm is False and rt.phases.topk_selection is True
    assert rt.plan.tiles.block_gemm is False and rt.plan.insert.batch_size == 64
    described = rt.describe()
    assert described["phases.block_gemm"] == {"value": False, "source": "environment"}
    assert described["phases.topk_selection"]["source"] == "default"
    assert described["batch_size"] == {"value": 64, "source": "environment"}
    assert described["seed"] == {"value": 7, "source": "argument"}
    # An explicit Phases argument wins over the environment.
    explicit = Runtime.from_env(phases=Phases.all())
    assert explicit.describe()["phases.block_gemm"] == {"value": True, "source": "argument"}


def test_runtime_reads_no_environment_and_importing_writes_none(monkeypatch):
    monkeypatch.setenv("COVERTREEX_PHASE_BLOCK_GEMM", "0")
    monkeypatch.setenv("COVERTREEX_BATCH_SIZE", "not a number")
    rt = Runtime()
    assert rt.phases == Phases.all() and rt.batch_size == 512
    assert set(v["source"] for v in rt.describe().values()) == {"default"}
    # The library warns about nothing at import and leaves the environment as it found it.
    code = ("import os, covertreex; before = dict(os.environ); "
            "from covertreex import CoverTree, Runtime; import numpy as np; "
            "CoverTree(Runtime()).fit(np.random.default_rng(0).random((300, 2))).knn(None, k=3); "
            "covertreex.configure_threading(1); "
            "assert dict(os.environ) == before; print('unchanged')")
    env = {**os.environ, "COVERTREEX_FROBNICATE": "1"}
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "unchanged" in out.stdout and "Warning" not in out.stderr


def test_from_env_takes_pinned_thread_counts(monkeypatch):
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        monkeypatch.delenv(key, raising=False)
    assert Runtime.from_env().plan.guard.blas_threads == 1
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("NUMBA_NUM_THREADS", "1")
    rt = Runtime.from_env()
    assert rt.blas_threads == 2 and rt.threads == 1
    assert rt.plan.guard.numba_threads == 1 and rt.plan.walk.workers == 1
    assert rt.describe()["blas_threads"] == {"value": 2, "source": "environment"}
    assert Runtime.from_env(threads=2).threads == 2


def test_unknown_phase_variable_or_value_is_an_error(monkeypatch):
    monkeypatch.setenv("COVERTREEX_PHASE_BLOK_GEMM", "1")
    with pytest.raises(ValueError, match="COVERTREEX_PHASE_BLOK_GEMM"):
        Runtime.from_env()
    monkeypatch.delenv("COVERTREEX_PHASE_BLOK_GEMM")
    monkeypatch.setenv("COVERTREEX_PHASE_BLOCK_GEMM", "yes please")
    with pytest.raises(ValueError, match="must be 0 or 1"):
        Runtime.from_env()
    assert Runtime.from_env({"COVERTREEX_PHASE_BLOCK_GEMM": "0"}).phases.block_gemm is False


def test_residual_runtime_rejects_a_euclidean_traversal():
    with pytest.raises(ValueError, match="residual"):
        Runtime(metric="residual_correlation", traversal="pointwise")
    assert Runtime(metric="residual_correlation").traversal == "blocked"


def test_conflict_graph_without_the_traversal_cache_raises():
    with pytest.raises(ResidualPairwiseCacheError, match="none were cached"):
        conflict_pairwise(metric=None, batch=np.arange(3), cached=None, reuse=True)


@pytest.fixture(scope="module")
def small_backend():
    coords = np.random.default_rng(3).standard_normal((900, 3))
    return build_residual_backend(coords, inducing_count=120)


def test_reuse_flag_is_logged_per_batch_and_recomputation_shows_in_conflict_time(small_backend):
    on = CoverTree(Runtime(metric="residual_correlation")).fit(small_backend).build_report
    off_phases = replace(Phases.all(), pairwise_reuse=False)
    off = CoverTree(Runtime(metric="residual_correlation", phases=off_phases)).fit(small_backend)
    assert all(b.conflict_pairwise_reused == 1 for b in on.batches[1:])
    assert all(b.conflict_pairwise_reused == 0 for b in off.build_report.batches)
    assert on.summary()["pairwise_not_reused_after_first"] == 0
    assert off.build_report.summary()["pairwise_not_reused_after_first"] == len(on.batches) - 1
    # With reuse the traversal computes the batch tile, so it counts more block pairs.
    assert on.summary()["whitened_block_pairs_sum"] > off.build_report.summary()["whitened_block_pairs_sum"]


def test_every_ladder_step_returns_the_same_neighbours_on_the_quick_preset():
    work = load_workload(get_preset("quick"))
    results = []
    for label, phases in Phases.ladder():
        tree = CoverTree(Runtime(metric="residual_correlation", phases=phases)).fit(work.backend)
        idx, dist = tree.knn(work.query_ids, k=work.preset.k, return_distances=True)
        results.append((label, idx, dist))
    _, ref_idx, ref_dist = results[-1]
    for label, idx, dist in results[:-1]:
        assert np.array_equal(idx, ref_idx), f"ladder step {label!r} returned other neighbours"
        np.testing.assert_allclose(dist, ref_dist, rtol=0, atol=1e-6, err_msg=label)


def test_configure_threading_keeps_user_settings_and_writes_no_environment(monkeypatch):
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = dict(os.environ)
    previous = numba.get_num_threads()
    try:
        in_force = configure_threading(1)
        assert in_force == {"OMP_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1,
                            "MKL_NUM_THREADS": 1, "NUMBA_NUM_THREADS": 1}
        assert dict(os.environ) == before
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(previous)
    with pytest.raises(ValueError, match="positive"):
        configure_threading(0)


def test_thread_limits_follow_the_guard_plan_and_restore_numba_threads():
    before = numba.get_num_threads()
    with thread_limits(Runtime(threads=1).plan.guard):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    with thread_limits(Runtime(threads=1, phases=Phases.baseline()).plan.guard):
        assert numba.get_num_threads() == before
