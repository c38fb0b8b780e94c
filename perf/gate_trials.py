#!/usr/bin/env python3
"""Prove the per-PR gate both ways: run it N times per scenario and count passes and failures.

    python perf/gate_trials.py --trials 3 [--base REV] [--scenarios aa-self,...] [--json out/gate/trials.json]
                               [--compare PATH] [compare.py options ...]

Scenarios (every candidate is a commit on top of HEAD, made in a temporary git worktree, never
in the shared tree; the worktree is removed at the end, its commits stay unreferenced):

- ``aa-self``: HEAD against HEAD; must pass.
- ``aa-comment``: HEAD against a commit that only adds comments; must pass.
- ``aa-jitter``: identical code whose processes differ: base and candidate both carry a plant
  that flips a coin at import and makes every public call of that process 1.15x slower, or not
  (the spin of ``public-1.3x``); the candidate also adds a comment. Must pass: it is the fault
  of a gate that takes one process a side for the code's speed.
- ``public-1.3x``: every public ``CoverTree.fit`` and ``knn_report`` spins on the CPU for 0.3x
  its own duration after the call, outside every telemetry timer; must fail on fit_wall_ms and
  knn_wall_ms.
- ``queries-2x``: ``knn_report`` runs its search twice (inside query_wall_ms); must fail.
- ``tile-1.3x``: ``residual_tile_kernel`` makes extra passes over its output tile until it has
  spent 0.3x the tile's time again (counted in whitened_block_ms); must fail.

No plant changes a result: the gate checks that idx and dist are bit-identical on both sides.
Prints one row per scenario: expected verdict, passes, failures, wall time per gate run and the
failure messages; exits 1 when a scenario got a verdict it should not have.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPARE = ROOT / "perf" / "compare.py"
COVER_TREE = "covertreex/cover_tree.py"
TILE = "covertreex/metrics/residual/tile_kernels.py"

PUBLIC_WALL = '''

def _planted_slowdown(method):
    """Gate trial plant: EXTRA x the call's own time of CPU work after it returns."""
    def slower(self, *args, **kwargs):
        start = time.perf_counter()
        out = method(self, *args, **kwargs)
        until = time.perf_counter() + EXTRA * (time.perf_counter() - start)
        spins = 0
        while time.perf_counter() < until:
            spins += 1
        return out
    return slower


CoverTree.fit = _planted_slowdown(CoverTree.fit)
CoverTree.knn_report = _planted_slowdown(CoverTree.knn_report)
'''
SEARCH = "        return self._search(qdata, rows, qcoords, perm, k, predecessor_mode, start, progress)\n"
TILE_START = "    t_start = read_cycles() if timed else 0\n"
TILE_COUNT = "    if timed:\n        _count(counters, b * f, wb_ticks, kp_ticks, decided, refined)\n"
TILE_PASSES = '''    # Gate trial plant: passes over the tile until 0.3x its time is spent again.
    plant_start = read_cycles()
    plant_until = plant_start + (plant_start - t_start) * 3 // 10
    plant_sum = 0.0
    while read_cycles() < plant_until:
        for a in range(b):
            for c in range(f):
                plant_sum += out[a, c]
    if plant_sum == -1.5:
        out[0, 0] = out[0, 0]
    if timed:
        wb_ticks += read_cycles() - plant_start
'''


def _replace(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise SystemExit(f"gate_trials: the plant's anchor {old.strip()[:60]!r} is not in the file once")
    return text.replace(old, new)


# A process's coin flip, once at import: 0.15 (this process is slower) or 0.
JITTER = '''

import os as _plant_os

_PLANT_EXTRA = 0.15 * (_plant_os.urandom(1)[0] % 2)
'''


def _comment(s: str) -> str:
    return "# A comment-only change (gate trial).\n" + s.replace(
        "    def fit(", "    # The build (comment added by a gate trial).\n    def fit(", 1)


def _jitter(s: str) -> str:
    return s + JITTER + PUBLIC_WALL.replace("EXTRA", "_PLANT_EXTRA")


PLANTS = {
    "aa-comment": {COVER_TREE: _comment},
    "aa-jitter": {COVER_TREE: lambda s: _comment(_jitter(s))},
    "public-1.3x": {COVER_TREE: lambda s: s + PUBLIC_WALL.replace("EXTRA", "0.3")},
    "queries-2x": {COVER_TREE: lambda s: _replace(s, SEARCH, SEARCH.replace("return ", "") + SEARCH)},
    "tile-1.3x": {TILE: lambda s: _replace(_replace(s, TILE_START, "    t_start = read_cycles()\n"),
                                           TILE_COUNT, TILE_PASSES + TILE_COUNT)},
}
# Scenarios whose base is a plant of its own, not the base commit.
BASE_PLANTS = {"aa-jitter": {COVER_TREE: _jitter}}
EXPECT = {"aa-self": 0, "aa-comment": 0, "aa-jitter": 0, "public-1.3x": 1, "queries-2x": 1,
          "tile-1.3x": 1}


def _git(args, cwd) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _commit(worktree: Path, base: str, patches: dict, message: str) -> str:
    """The sha of a commit of ``patches`` ({path: text -> text}) on top of ``base``."""
    _git(["checkout", "--quiet", "--detach", base], worktree)
    for rel, patch in patches.items():
        path = worktree / rel
        path.write_text(patch(path.read_text()))
    _git(["-c", "user.name=gate-trials", "-c", "user.email=gate-trials@localhost", "commit",
          "--quiet", "--no-verify", "-am", message], worktree)
    return _git(["rev-parse", "HEAD"], worktree)


def make_candidates(worktree: Path, base: str, names) -> dict:
    """{scenario: (base sha, candidate sha)}: one commit per plant on top of ``base`` (or of the
    scenario's own planted base, ``BASE_PLANTS``), made in ``worktree``."""
    shas = {"aa-self": (base, base)}
    for name in names:
        if name not in PLANTS:
            continue
        own = _commit(worktree, base, BASE_PLANTS[name], f"gate trial base: {name}") \
            if name in BASE_PLANTS else base
        shas[name] = (own, _commit(worktree, base, PLANTS[name], f"gate trial plant: {name}"))
    return shas


def run_gate(compare: Path, base: str, head: str, out_dir: Path, extra) -> dict:
    """One gate run: exit status, wall seconds, FAIL lines and the decisions."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(compare), "--base", base, "--head", head,
                           "--out-dir", str(out_dir), *extra], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    fails = [line[6:] for line in proc.stdout.splitlines() if line.startswith("FAIL: ")]
    doc = json.loads((out_dir / "compare.json").read_text()) if proc.returncode in (0, 1) else {}
    return {"status": proc.returncode, "wall_s": wall, "fails": fails,
            "identical": doc.get("results_identical"), "load": _load(),
            "error": proc.stderr.strip().splitlines()[-1:] if proc.returncode not in (0, 1) else [],
            "ratios": {d["figure"]: [d["ratio"], d["ci_low"], d["ci_high"], d["p_value"]]
                       for d in doc.get("decisions", [])}}


def _load() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def table(results: dict) -> str:
    """Markdown: scenario, expected, passes, failures, gate wall times, figures that failed."""
    lines = ["| scenario | expected | pass | fail | wall s per run | load (1/5/15 min) | figures failed (ratio, 95% CI) |",
             "|---|---|---|---|---|---|---|"]
    for name, runs in results.items():
        figures = sorted({re.sub(r" the base \(95% CI ([\d.]+-[\d.]+), (?:Mann-Whitney|Wilcoxon) p=([^)]*)\).*",
                                 r" (CI \1, p=\2)", f) for r in runs for f in r["fails"]})
        lines.append(f"| {name} | {'PASS' if EXPECT[name] == 0 else 'FAIL'} "
                     f"| {sum(r['status'] == 0 for r in runs)} | {sum(r['status'] == 1 for r in runs)} "
                     f"| {' '.join(format(r['wall_s'], '.0f') for r in runs)} | {'; '.join(r['load'] for r in runs)} "
                     f"| {'<br>'.join(figures) or '-'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="perf/gate_trials.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3, help="gate runs per scenario")
    parser.add_argument("--scenarios", default=",".join(EXPECT), help="comma-separated names")
    parser.add_argument("--json", default=str(ROOT / "out" / "gate" / "trials.json"))
    parser.add_argument("--base", default="HEAD", help="the commit the plants go on (default HEAD)")
    parser.add_argument("--compare", default=str(COMPARE),
                        help="the gate script to prove (default perf/compare.py; an older copy, in "
                             "a worktree of its commit, shows how that gate did)")
    args, extra = parser.parse_known_args(argv)
    names = args.scenarios.split(",")
    unknown = sorted(set(names) - set(EXPECT))
    if unknown or args.trials < 1:
        parser.error(f"unknown scenario {unknown} (known: {', '.join(EXPECT)})" if unknown else "--trials >= 1")
    if not Path(args.compare).is_file():
        parser.error(f"--compare {args.compare}: no such file; give a perf/compare.py")
    sys.path.insert(0, str(ROOT))
    from covertreex_bench.common import write_atomic

    base = _git(["rev-parse", "--verify", f"{args.base}^{{commit}}"], ROOT)
    results = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="covertreex-trials-") as tmp:
        worktree = Path(tmp) / "tree"
        _git(["worktree", "add", "--quiet", "--detach", str(worktree), base], ROOT)
        try:
            shas = make_candidates(worktree, base, names)
        finally:
            _git(["worktree", "remove", "--force", str(worktree)], ROOT)
        for trial in range(args.trials):
            for name in names:
                run = run_gate(Path(args.compare), *shas[name], Path(tmp) / "out", extra)
                results[name].append(run)
                print(f"trial {trial + 1} {name} ({shas[name][0][:10]} -> {shas[name][1][:10]}): "
                      f"exit {run['status']} in "
                      f"{run['wall_s']:.0f} s, load {run['load']}, results identical {run['identical']}"
                      + "".join(f"\n    FAIL: {f}" for f in run["fails"])
                      + "".join(f"\n    error: {e}" for e in run["error"]), flush=True)
                write_atomic(args.json, json.dumps({"base": base, "candidates": shas, "results": results},
                                                   indent=2) + "\n")
    print()
    print(table(results))
    wrong = [n for n, runs in results.items() if any(r["status"] != EXPECT[n] for r in runs)]
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
