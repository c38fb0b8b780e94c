"""The per-PR gate's decisions (covertreex_bench.gate) and perf/compare.py's fast failures.

The statistics run on synthetic samples with a known ratio; the request checks run the script
and assert it exits 2 within seconds, before any tree is exported or measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from covertreex_bench import gate
from covertreex_bench.common import BenchError

ROOT = Path(__file__).resolve().parents[1]
COMPARE = ROOT / "perf" / "compare.py"


def _samples(ratio: float, n: int = 60, seed: int = 0, spread: float = 0.15):
    """(base, head): n lognormal samples each around 100 ms and 100 * ratio ms."""
    rng = np.random.default_rng(seed)
    base = 100.0 * np.exp(rng.normal(0, spread, n))
    head = 100.0 * ratio * np.exp(rng.normal(0, spread, n))
    return base, head


@pytest.mark.parametrize("seed", range(5))
def test_same_distribution_passes(seed):
    d = gate.decide("fit_wall_ms", *_samples(1.0, seed=seed), min_effect=1.15, alpha=0.01)
    assert d.status == "PASS", d
    assert d.ci_low < 1.0 < d.ci_high


@pytest.mark.parametrize("seed", range(5))
def test_planted_1_3x_fails_with_ratio_and_interval(seed):
    d = gate.decide("knn_wall_ms", *_samples(1.3, seed=seed), min_effect=1.15, alpha=0.01)
    assert d.status == "FAIL", d
    assert d.ci_low > 1.15 and d.ci_low < 1.3 < d.ci_high
    message = d.message(1.15, 0.01)
    assert message.startswith("knn_wall_ms 1.") and "95% CI" in message and "p=" in message


def test_significant_but_small_change_passes():
    # 1.05x over 400 samples is significant, but under the minimum effect.
    d = gate.decide("traversal_ms", *_samples(1.05, n=400, spread=0.05), min_effect=1.15, alpha=0.01)
    assert d.p_value < 0.01 and d.status == "PASS"


def test_large_but_insignificant_change_passes():
    # Two samples a side cannot reach p < 0.01, whatever the ratio.
    d = gate.decide("fit_wall_ms", [100.0, 101.0], [200.0, 202.0], min_effect=1.15, alpha=0.01)
    assert d.ratio == pytest.approx(2.0, rel=0.01) and d.status == "PASS"


def test_missing_or_zero_figure_is_na():
    assert gate.decide("x", [], [1.0, 2.0], 1.15, 0.01).status == "n/a"
    assert gate.decide("x", [0.0, 0.0], [1.0, 2.0], 1.15, 0.01).status == "n/a"


# Ten pairs of processes whose own speeds differ by up to 12 % (layout, core), six samples each
# within 1 % of their process's speed. Both sides draw the same speeds in another order.
SPEEDS = [1.00, 1.12, 0.97, 1.05, 1.10, 0.99, 1.03, 1.08, 0.95, 1.01]


def _processes(speeds, ratio: float = 1.0, seed: int = 0, per: int = 6):
    """(values, process): ``per`` samples a process around 100 ms * speed * ratio."""
    rng = np.random.default_rng(seed)
    values = [100.0 * speed * ratio * np.exp(rng.normal(0, 0.01)) for speed in speeds for _ in range(per)]
    return values, [i for i in range(len(speeds)) for _ in range(per)]


def test_process_medians_are_one_a_process_without_missing_samples():
    assert gate.process_medians([3.0, 1.0, None, 2.0, 10.0], [1, 1, 1, 1, 0]) == {0: 10.0, 1: 2.0}
    with pytest.raises(BenchError, match="3 samples but 2 process indices"):
        gate.process_medians([1.0, 2.0, 3.0], [0, 0])


def test_a_slow_process_of_identical_code_is_not_a_slowdown():
    base, base_proc = _processes(SPEEDS[2:] + SPEEDS[:2], seed=1)  # base's first process: 0.97
    head, head_proc = _processes(SPEEDS[1:] + SPEEDS[:1], seed=2)  # head's first process: 1.12
    # One process a side (what the gate used to measure) takes the 1.12 process for the code.
    first = gate.decide("kernel_provider_ms", base[:6], head[:6], min_effect=1.10, alpha=0.01)
    assert first.status == "FAIL" and first.ci_low > 1.10, first
    d = gate.decide_paired("kernel_provider_ms", base, base_proc, head, head_proc, 1.10, 0.01)
    assert d.status == "PASS" and d.samples == (10, 10) and d.ci_low < 1.0 < d.ci_high, d


def test_load_shared_by_a_pair_cancels_out():
    # Each pair ran in its own minutes of machine load, quiet or 1.8x, both processes alike.
    load = [1.0, 1.8] * 5
    base, base_proc = _processes([s * w for s, w in zip(SPEEDS, load)], seed=7)
    head, head_proc = _processes([s * w for s, w in zip(SPEEDS, load)], ratio=1.3, seed=8)
    two_pools = gate.decide("fit_wall_ms", list(gate.process_medians(base, base_proc).values()),
                            list(gate.process_medians(head, head_proc).values()), 1.10, 0.01)
    assert two_pools.status == "PASS", two_pools  # the load hides the 1.3x from two pools
    d = gate.decide_paired("fit_wall_ms", base, base_proc, head, head_proc, 1.10, 0.01)
    assert d.status == "FAIL" and d.ratio == pytest.approx(1.3, rel=0.02) and d.test == "Wilcoxon", d


@pytest.mark.parametrize("ratio", [1.3, 10.0])
def test_a_slowdown_in_every_process_fails(ratio):
    base, base_proc = _processes(SPEEDS, seed=3)
    head, head_proc = _processes(SPEEDS[::-1], ratio=ratio, seed=4)
    d = gate.decide_paired("fit_wall_ms", base, base_proc, head, head_proc, 1.10, 0.01)
    assert d.status == "FAIL" and d.ci_low > 1.10 and d.ci_low < ratio < d.ci_high * 1.01, d
    assert "Wilcoxon p=" in d.message(1.10, 0.01)


def test_six_pairs_cannot_fail_at_alpha_0_01():
    assert gate.smallest_p(6) > 0.01 > gate.smallest_p(7)
    base, base_proc = _processes(SPEEDS[:6], seed=5)
    head, head_proc = _processes(SPEEDS[:6], ratio=2.0, seed=6)
    d = gate.decide_paired("fit_wall_ms", base, base_proc, head, head_proc, 1.10, 0.01)
    assert d.ratio > 1.9 and d.p_value == pytest.approx(gate.smallest_p(6)) and d.status == "PASS"


def test_identical_pairs_and_missing_pairs():
    same = gate.decide_paired("x", [5.0, 5.0, 7.0, 7.0], [0, 0, 1, 1], [5.0, 7.0], [0, 1], 1.1, 0.01)
    assert (same.ratio, same.ci_low, same.ci_high, same.p_value, same.status) == (1.0, 1.0, 1.0, 1.0, "PASS")
    alone = gate.decide_paired("x", [5.0, 6.0], [0, 1], [5.0, 6.0], [2, 3], 1.1, 0.01)
    assert alone.status == "n/a" and alone.samples == (2, 2)


def test_table_prints_ratio_interval_and_p():
    d = gate.decide("fit_wall_ms", *_samples(1.3), min_effect=1.15, alpha=0.01)
    table = gate.format_table([d], "aaaa", "bbbb")
    assert "fit_wall_ms" in table and f"{d.ci_low:.3f}-{d.ci_high:.3f}" in table and "FAIL" in table


# --------------------------------------------------------------------------- revisions


def _git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    _git(tmp_path, "init", "-q", "-b", "main")
    for i in range(3):
        (tmp_path / "f.txt").write_text(str(i))
        _git(tmp_path, "add", "f.txt")
        _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"c{i}")
    return tmp_path


def test_default_base_on_main_is_head_parent(repo):
    how, sha = gate.default_base(repo)
    assert how == "HEAD~1" and sha == _git(repo, "rev-parse", "HEAD~1")
    _git(repo, "checkout", "-q", "--detach", "main")  # a detached clone of main
    assert gate.default_base(repo)[1] == _git(repo, "rev-parse", "HEAD~1")


def test_default_base_on_a_branch_is_the_merge_base(repo):
    fork = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "-b", "topic")
    (repo / "g.txt").write_text("x")
    _git(repo, "add", "g.txt")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "topic")
    assert gate.default_base(repo) == ("merge-base HEAD main", fork)


def test_unknown_revision_names_the_option(repo):
    with pytest.raises(BenchError, match="--base deadbeef: not a commit"):
        gate.commit_of(repo, "deadbeef")


# --------------------------------------------------------------------------- perf/compare.py


def _compare(*args, timeout=60):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(COMPARE), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    return proc, time.perf_counter() - start


@pytest.mark.parametrize("args, fragment", [
    (["--base", "deadbeef"], "--base deadbeef: not a commit"),
    (["--base", "HEAD", "--head", "no-such-branch"], "--head no-such-branch: not a commit"),
    (["--base", "HEAD", "--thresholds", "/nonexistent.toml"], "does not exist"),
    (["--base", "HEAD", "--json", "/proc/gate.json"], "cannot be written"),
    (["--base", "HEAD", "--rounds", "1"], "--rounds must be >= 2"),
    (["--base", "HEAD", "--processes", "1"], "--processes must be >= 2"),
])
def test_bad_requests_exit_2_before_any_work(args, fragment, tmp_path):
    proc, seconds = _compare(*args, "--cache", str(tmp_path / "cache"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert fragment in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert seconds < 20 and not (tmp_path / "cache").exists()


def test_pytest_benchmark_compare_reads_both_sides(tmp_path):
    base, head = _samples(1.0, n=8)
    for label, values in (("base", base), ("head", head)):
        doc = gate.pytest_benchmark_json(label, "0" * 40, {"fit_wall_ms": list(values), "empty": []})
        (tmp_path / f"{label}.json").write_text(json.dumps(doc))
        assert [b["name"] for b in doc["benchmarks"]] == ["gate[fit_wall_ms]"]
        assert doc["benchmarks"][0]["stats"]["median"] == pytest.approx(np.median(values) / 1e3)
    proc = subprocess.run([str(Path(sys.executable).with_name("pytest-benchmark")), "compare",
                           str(tmp_path / "base.json"), str(tmp_path / "head.json")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "gate[fit_wall_ms]" in proc.stdout
