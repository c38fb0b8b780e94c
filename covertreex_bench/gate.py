"""The per-PR gate's decisions: which base to compare with, and whether a figure got slower.

perf/compare.py measures a base commit and a candidate in pairs of fresh worker processes, one
a side, sampled in alternating rounds, and hands every figure's samples here with the pair each
came from. ``decide_paired`` reduces each process to its median and each pair to one ratio
(candidate / base). A figure FAILs when both hold:

- a one-sided Wilcoxon signed-rank test (``scipy.stats.wilcoxon``) says the pairs' log ratios
  lie above 0 at level ``alpha``, and
- the lower bound of the bootstrap confidence interval (``scipy.stats.bootstrap``, percentile,
  95 %) of the pairs' median ratio exceeds ``min_effect``.

The test guards against noise, the interval's bound against a real but negligible change.
Processes, not samples, are what repeat: a process keeps its memory layout and core for all its
samples, so two processes of identical code can differ by more than ``min_effect`` on a small
figure however many samples each gives. Pairs, not two pools of processes, are what is
compared: the two processes of a pair share the same minutes of machine load.

``decide`` is the two-sample form (one-sided Mann-Whitney U, the test asv uses, and the ratio
of medians), for values that do not come in pairs: the report's step changes between runs of
different commits. No statistic is computed by hand; the thresholds file's ``[compare]`` table
holds ``min_effect``, ``alpha`` and the measuring settings (perf/README.md, "Per-PR gate", has
the trials that justify them).
"""

from __future__ import annotations

import datetime
import subprocess
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from .common import BenchError

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 4999
# The bootstrap's generator is seeded so that one set of samples always gets one verdict.
BOOTSTRAP_SEED = 20261
PAIRED_TEST = "Wilcoxon"
# Base candidates when none is given: the merge base with the first of these that exists.
MAIN_REFS = ("main", "origin/main")


@dataclass(frozen=True)
class Decision:
    """One figure's comparison: medians of each side's samples (figure units), the ratio
    candidate / base of the medians with its confidence interval, the one-sided p-value and
    the status "PASS", "FAIL" or "n/a" (a side without samples, or a zero base median)."""

    figure: str
    base_median: float | None
    head_median: float | None
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    samples: tuple          # (base sample count, candidate sample count)
    status: str
    test: str = "Mann-Whitney"  # the test behind p_value

    def as_dict(self) -> dict:
        return asdict(self)

    def message(self, min_effect: float, alpha: float) -> str:
        """The failure line: figure, ratio, interval, p-value and the rule it broke."""
        return (f"{self.figure} {self.ratio:.3f}x the base (95% CI {self.ci_low:.3f}-{self.ci_high:.3f}, "
                f"{self.test} p={self.p_value:.2g}): slower by more than {min_effect:g}x "
                f"(CI lower bound > {min_effect:g} and p < {alpha:g})")


def _ratio_of_medians(head, base, axis=-1):
    return np.median(head, axis=axis) / np.median(base, axis=axis)


def decide(figure: str, base, head, min_effect: float, alpha: float) -> Decision:
    """Compare ``head`` with ``base`` (1-D float sequences of one figure's samples, any
    lengths >= 2 each); see the module docstring for the rule."""
    base = np.asarray([v for v in base if v is not None], dtype=np.float64)
    head = np.asarray([v for v in head if v is not None], dtype=np.float64)
    counts = (int(base.size), int(head.size))
    if base.size < 2 or head.size < 2 or np.median(base) <= 0:
        return Decision(figure, _median(base), _median(head), None, None, None, None, counts, "n/a")
    ratio = float(_ratio_of_medians(head, base))
    p_value = float(stats.mannwhitneyu(head, base, alternative="greater").pvalue)
    if np.ptp(base) == 0 and np.ptp(head) == 0:  # constant samples: the interval is the ratio
        low = high = ratio
    else:
        ci = stats.bootstrap((head, base), _ratio_of_medians, vectorized=True, paired=False,
                             confidence_level=CONFIDENCE, n_resamples=BOOTSTRAP_RESAMPLES,
                             method="percentile", rng=np.random.default_rng(BOOTSTRAP_SEED))
        low, high = float(ci.confidence_interval.low), float(ci.confidence_interval.high)
    slower = p_value < alpha and low > min_effect
    return Decision(figure, _median(base), _median(head), ratio, low, high, p_value, counts,
                    "FAIL" if slower else "PASS")


def process_medians(values, process) -> dict:
    """{process index: median}: ``values`` (a figure's samples, None where a sample did not
    measure it) and ``process`` (the index of the worker each came from, same length)."""
    if len(values) != len(process):
        raise BenchError(f"{len(values)} samples but {len(process)} process indices")
    groups: dict = {}
    for value, index in zip(values, process):
        if value is not None:
            groups.setdefault(index, []).append(value)
    return {index: float(np.median(group)) for index, group in sorted(groups.items())}


def decide_paired(figure: str, base, base_process, head, head_process, min_effect: float,
                  alpha: float) -> Decision:
    """Compare pairs of worker processes, one a side, measured in alternating rounds of the same
    minutes: ``base`` and ``head`` are a figure's samples (None where a sample did not measure
    it), ``base_process`` and ``head_process`` the index of the pair each sample came from.
    Each pair gives one ratio, its head process's median over its base process's. FAIL when a
    one-sided Wilcoxon signed-rank test (``scipy.stats.wilcoxon``) says the log ratios lie above
    0 (p < alpha) and the lower bound of the 95 % bootstrap interval of the pairs' median ratio
    exceeds ``min_effect``. The Decision's medians are each side's median over its processes,
    its ratio the median of the pairs' ratios, its counts the processes a side."""
    by_base, by_head = process_medians(base, base_process), process_medians(head, head_process)
    pairs = sorted(set(by_base) & set(by_head))
    b = np.asarray([by_base[i] for i in pairs])
    h = np.asarray([by_head[i] for i in pairs])
    counts = (len(by_base), len(by_head))
    if len(pairs) < 2 or (b <= 0).any() or (h <= 0).any():
        return Decision(figure, _median(np.asarray(list(by_base.values()))),
                        _median(np.asarray(list(by_head.values()))), None, None, None, None,
                        counts, "n/a", PAIRED_TEST)
    logs = np.log(h / b)
    ratio = float(np.exp(np.median(logs)))
    p_value = 1.0 if not logs.any() else float(stats.wilcoxon(logs, alternative="greater").pvalue)
    if np.ptp(logs) == 0:  # one ratio in every pair: the interval is that ratio
        low = high = ratio
    else:
        ci = stats.bootstrap((logs,), np.median, confidence_level=CONFIDENCE,
                             n_resamples=BOOTSTRAP_RESAMPLES, method="percentile",
                             rng=np.random.default_rng(BOOTSTRAP_SEED))
        low, high = (float(np.exp(ci.confidence_interval.low)), float(np.exp(ci.confidence_interval.high)))
    slower = p_value < alpha and low > min_effect
    return Decision(figure, _median(b), _median(h), ratio, low, high, p_value, counts,
                    "FAIL" if slower else "PASS", PAIRED_TEST)


def smallest_p(pairs: int) -> float:
    """The one-sided Wilcoxon p of ``pairs`` ratios that all lie above 1: the smallest p the gate
    can see. At or above ``alpha`` the gate cannot fail."""
    return float(stats.wilcoxon(np.arange(1.0, pairs + 1.0), alternative="greater").pvalue)


def _median(values: np.ndarray) -> float | None:
    return float(np.median(values)) if values.size else None


def format_table(decisions, base_label: str, head_label: str) -> str:
    """The console table: one row per figure, medians, ratio, interval, p-value, verdict."""
    rows = [("figure", f"base {base_label}", f"head {head_label}", "ratio", "95% CI", "p", "n",
             "verdict")]
    for d in decisions:
        fmt = (lambda v: "-" if v is None else f"{v:.1f}")
        rows.append((d.figure, fmt(d.base_median), fmt(d.head_median),
                     "-" if d.ratio is None else f"{d.ratio:.3f}",
                     "-" if d.ci_low is None else f"{d.ci_low:.3f}-{d.ci_high:.3f}",
                     "-" if d.p_value is None else f"{d.p_value:.2g}",
                     f"{d.samples[0]}/{d.samples[1]}", {"n/a": "SKIP"}.get(d.status, d.status)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --------------------------------------------------------------------------- revisions


def git(args, cwd) -> str:
    """stdout of ``git args`` in ``cwd``; BenchError with git's message when it fails."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"git {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def commit_of(repo, rev: str, option: str = "--base") -> str:
    """The full sha of ``rev`` in ``repo``; BenchError naming the option when it is no commit."""
    proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=repo,
                          capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise BenchError(f"{option} {rev}: not a commit of {repo}; give a branch, tag or sha "
                         f"(git log --oneline shows them)")
    return proc.stdout.strip()


def default_base(repo) -> tuple[str, str]:
    """(description, sha) of the base `make gate` uses without BASE: the merge base of HEAD
    with main (or origin/main), or HEAD~1 when that merge base is HEAD itself (HEAD is main,
    or a detached clone of it)."""
    head = commit_of(repo, "HEAD", "HEAD")
    for ref in MAIN_REFS:
        proc = subprocess.run(["git", "merge-base", "HEAD", ref], cwd=repo, capture_output=True,
                              text=True)
        base = proc.stdout.strip()
        if proc.returncode == 0 and base and base != head:
            return f"merge-base HEAD {ref}", base
    return "HEAD~1", commit_of(repo, "HEAD~1", "HEAD~1")


# --------------------------------------------------------------------------- pytest-benchmark


def pytest_benchmark_json(label: str, sha: str, samples: dict) -> dict:
    """A pytest-benchmark JSON document of one side's samples ({figure: [milliseconds]}), one
    benchmark per figure named ``gate[<figure>]``, so ``pytest-benchmark compare`` reads the
    two sides' files. Its statistics are pytest-benchmark's own (``Stats``), in seconds."""
    from pytest_benchmark import __version__
    from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info
    from pytest_benchmark.stats import Stats

    benchmarks = []
    for figure, values in samples.items():
        values = [v / 1e3 for v in values if v is not None]
        if not values:
            continue
        st = Stats()
        for v in values:
            st.update(v)
        benchmarks.append({
            "group": "gate", "name": f"gate[{figure}]", "fullname": f"perf/compare.py::gate[{figure}]",
            "params": {"figure": figure}, "param": figure, "extra_info": {"side": label},
            "options": {"timer": "perf_counter", "disable_gc": False, "min_rounds": len(values),
                        "max_time": 0, "min_time": 0, "warmup": False},
            "stats": {**st.as_dict(), "data": values, "iterations": 1},
        })
    return {"machine_info": pytest_benchmark_generate_machine_info(),
            "commit_info": {"id": sha, "project": "covertreex", "branch": label, "dirty": False},
            "benchmarks": benchmarks,
            "datetime": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "version": __version__}
