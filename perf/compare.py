#!/usr/bin/env python3
"""The per-PR gate: measure a base commit and the candidate in one job, fail on a slowdown.

    python perf/compare.py                      # what `make gate` runs: base = merge-base with main,
                                                # or HEAD~1 on main itself
    python perf/compare.py --base v0.3 --head HEAD --rounds 12 --json out/gate/compare.json

The candidate is the working tree (uncommitted changes included) or ``--head REV``. A commit is
exported with ``git archive`` into a per-commit folder of the gate cache (``--cache``, default
``~/.cache/covertreex/gate``) with its own Numba cache, so a second gate run against the same
base skips its compilation (about 40 s per side cold). A worker is a Python process whose
PYTHONPATH is its tree (it checks that ``covertreex`` came from there). The rounds are spread
over ``processes`` pairs of fresh workers, one base and one head each: a pair warms up at once
(not timed; the first pair compiles, the others load the Numba cache), then the parent asks them
for one sample at a time in rounds of A B, B A, A B, ... so drifting machine load falls on both
sides alike, and closes them before the next pair starts.

One sample = one ``CoverTree(runtime).fit`` plus one ``knn_report`` of the preset, through the
public API only: ``fit_wall_ms`` and ``knn_wall_ms`` are timed around the two calls (validation,
layout and result assembly included), ``build_wall_ms`` / ``query_wall_ms`` are the index's
own, and ``traversal_ms``, ``whitened_block_ms``, ``kernel_provider_ms``, ``conflict_graph_ms``
are the build's per-batch telemetry summed over the build. Each figure's samples go to
covertreex_bench.gate.decide_paired, which decides with a Wilcoxon signed-rank test and a
bootstrap interval over the pairs' ratios of medians against ``[compare]`` of the thresholds
file (a process's layout and core stay with all its samples, so processes, not samples, are
what repeat; a pair's two processes share the same minutes of machine load).

Writes (``--out``, default out/gate/): compare.json (every sample with the index of its
process, every decision, the environment), base-pytest-benchmark.json and
head-pytest-benchmark.json (``pytest-benchmark compare`` reads them). Exit status: 0 no
figure slower, 1 a figure slower (each failure named with its ratio and interval), 2 a bad
request (unknown revision, bad thresholds file, output not writable) before any measuring, or a
side that could not be measured.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HARNESS_RUNTIME = ROOT / "covertreex_bench" / "runtime.py"
DEFAULT_CACHE = Path(os.environ.get("COVERTREEX_GATE_CACHE", Path.home() / ".cache" / "covertreex" / "gate"))
CACHE_KEEP = 12          # exported commits kept in the cache (least recently used go first)
SETTLE_S = 0.05          # pause before each sample: OpenMP / BLAS workers stop spinning

# --------------------------------------------------------------------------- the worker (child)


def _harness_runtime():
    """This checkout's covertreex_bench/runtime.py, loaded by path: the tree being measured may
    be a base that has no covertreex_bench, or an older one."""
    spec = importlib.util.spec_from_file_location("_compare_harness_runtime", HARNESS_RUNTIME)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sample(tree_cls, runtime, workload, preset) -> dict:
    """One fit + knn_report of the preset; figures in milliseconds, plus a digest of the
    results (idx (q, k) int64 and dist (q, k) float64 bytes) to check both sides agree."""
    start = time.perf_counter()
    tree = tree_cls(runtime).fit(workload.fit_input)
    fitted = time.perf_counter()
    idx, dist, query = tree.knn_report(workload.knn_queries, preset.k,
                                       predecessor_mode=preset.predecessor_mode)
    done = time.perf_counter()
    summary = tree.build_report.summary()
    digest = hashlib.sha256(idx.tobytes() + dist.tobytes()).hexdigest()[:16]
    return {"fit_wall_ms": (fitted - start) * 1e3, "knn_wall_ms": (done - fitted) * 1e3,
            "build_wall_ms": summary["build_wall_ms"], "query_wall_ms": query.query_wall_ms,
            **{name: summary.get(f"{name}_sum") for name in
               ("traversal_ms", "whitened_block_ms", "kernel_provider_ms", "conflict_graph_ms")},
            "digest": digest}


def serve(preset_name: str, n: int | None, threads: int | None) -> int:
    """The worker: warm up, print one JSON line {"ready": ...}, then one JSON line per "run"
    line read from stdin until stdin closes. Protocol lines go to the original stdout; anything
    else the libraries print goes to stderr."""
    import warnings

    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import covertreex
    from covertreex import CoverTree

    harness = _harness_runtime()
    workloads = harness.workloads_module()
    preset = workloads.get_preset(preset_name)
    if n is not None:
        preset = workloads.scaled(preset, n)
    try:
        from covertreex.phases import Phases

        phases = Phases.all()
    except ImportError:  # a base without phase flags
        phases = None
    try:
        from covertreex.threads import configure_threading
    except ImportError:  # a base from before covertreex.threads
        from covertreex.runtime import configure_threading
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        configure_threading(threads)
    warm_s = harness.warm_up(preset, phases, threads)
    runtime = harness.make_runtime(preset, phases, threads)
    workload = workloads.load_workload(preset)
    protocol.write(json.dumps({"ready": True, "warmup_s": warm_s, "preset": preset.name,
                               "covertreex_path": str(Path(covertreex.__file__).resolve().parent)}) + "\n")
    for line in sys.stdin:
        if line.strip() != "run":
            break
        time.sleep(SETTLE_S)
        protocol.write(json.dumps(_sample(CoverTree, runtime, workload, preset)) + "\n")
    return 0


# --------------------------------------------------------------------------- trees (parent)


def export_commit(repo: Path, sha: str, cache: Path) -> Path:
    """The tree of commit ``sha`` under ``cache/<sha>/tree`` (git archive, made once; files carry
    the commit's time, so the folder's Numba cache ``cache/<sha>/numba`` stays valid)."""
    home = cache / sha
    tree = home / "tree"
    if not tree.is_dir():
        home.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=home, prefix="tree."))
        archive = subprocess.run(["git", "archive", "--format=tar", sha], cwd=repo, capture_output=True)
        if archive.returncode != 0:
            raise RuntimeError(f"git archive {sha}: {archive.stderr.decode(errors='replace').strip()}")
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(staging, filter="tar")
        try:
            staging.rename(tree)
        except OSError:  # another gate run exported it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    os.utime(home)
    for old in sorted((p for p in cache.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)[:-CACHE_KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return tree


def worktree_numba_cache(tree: Path, cache: Path) -> Path:
    """A Numba cache folder for a working tree, keyed on its sources (Numba checks only a
    kernel's own file for changes, not the files of kernels it calls; see the Makefile)."""
    digest = hashlib.sha256()
    for path in sorted((tree / "covertreex").rglob("*.py")):
        digest.update(path.read_bytes())
    return cache / "worktree" / digest.hexdigest()[:16]


class Worker:
    """One worker process of one side, serving samples until it is closed."""

    def __init__(self, label: str, tree: Path, numba_cache: Path, preset: str, n, threads,
                 log_path: Path):
        self.label, self.tree, self.stderr_path = label, tree, log_path
        env = dict(os.environ)
        env["PYTHONPATH"] = str(tree) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", "--preset", preset]
        if n is not None:
            cmd += ["--n", str(n)]
        if threads is not None:
            cmd += ["--threads", str(threads)]
        self.proc = subprocess.Popen(cmd, cwd=str(tree), env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=open(log_path, "w"),
                                     text=True, bufsize=1)

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            tail = self.stderr_path.read_text(errors="replace").strip().splitlines() or ["(no output)"]
            raise RuntimeError(f"a {self.label} worker ({self.tree}) exited with status "
                               f"{self.proc.returncode}: {tail[-1]}")
        return json.loads(line)

    def ready(self) -> dict:
        info = self._read()
        if Path(info["covertreex_path"]).resolve() != (self.tree / "covertreex").resolve():
            raise RuntimeError(f"the {self.label} worker imported covertreex from "
                               f"{info['covertreex_path']}, not {self.tree}; check PYTHONPATH")
        return info

    def run(self) -> dict:
        self.proc.stdin.write("run\n")
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Side:
    """One measured tree: how to start its workers, and its samples ({figure: [values]}), with
    the index of the process each sample came from and the results' digests."""

    def __init__(self, label: str, tree: Path, numba_cache: Path, preset: str, n, threads,
                 log_dir: Path):
        self.label, self.tree, self.numba_cache = label, tree, numba_cache
        self.preset, self.n, self.threads, self.log_dir = preset, n, threads, log_dir
        self.samples, self.process, self.digests = {}, [], set()

    def start(self, index: int) -> Worker:
        return Worker(self.label, self.tree, self.numba_cache, self.preset, self.n, self.threads,
                      self.log_dir / f"{self.label}-{index}.stderr")

    def add(self, index: int, sample: dict) -> None:
        self.digests.add(sample.pop("digest"))
        self.process.append(index)
        for figure, value in sample.items():
            self.samples.setdefault(figure, []).append(value)


def rounds_per_process(rounds: int, processes: int) -> list:
    """``rounds`` split as evenly as possible over ``processes`` (the first ones take one more)."""
    share, extra = divmod(rounds, processes)
    return [share + (i < extra) for i in range(processes)]


def measure(base: Side, head: Side, rounds: int, processes: int) -> None:
    """For each of ``processes`` pairs of fresh workers (one a side): warm both up at once, then
    their share of the ``rounds``, one sample a side a round, the order alternating A B, B A, ...
    (the first pair compiles; its warm-up is printed apart from the later pairs')."""
    start = time.perf_counter()
    later_warmup = 0.0
    for index, share in enumerate(rounds_per_process(rounds, processes)):
        workers = []
        try:
            warm = time.perf_counter()
            for side in (base, head):
                workers.append(side.start(index))
            infos = [w.ready() for w in workers]
            if index == 0:
                print(f"  warm-up of the first pair (both sides at once): "
                      f"{time.perf_counter() - warm:.1f} s (base {infos[0]['warmup_s']:.1f} s, head "
                      f"{infos[1]['warmup_s']:.1f} s)\n  processes done:", end="", flush=True)
                start = time.perf_counter()
            else:
                later_warmup += time.perf_counter() - warm
            pairs = list(zip((base, head), workers))
            for r in range(share):
                for side, worker in (pairs if (index + r) % 2 == 0 else pairs[::-1]):
                    side.add(index, worker.run())
        finally:
            for worker in workers:
                worker.close()
        print(f" {index + 1}", end="", flush=True)
    print(f"\n  {rounds} round(s), {2 * rounds} samples in {processes} process(es) a side: "
          f"{time.perf_counter() - start:.1f} s, of which {later_warmup:.1f} s starting the later "
          f"pairs", flush=True)


# --------------------------------------------------------------------------- driver (parent)


def drive(args) -> int:
    from covertreex_bench import gate, thresholds
    from covertreex_bench.common import check_writable, write_atomic
    from covertreex_bench.environment import environment

    config = thresholds.load(args.thresholds)
    if config.compare is None:
        raise thresholds.ThresholdsError(f"thresholds file {config.path} has no [compare] table")
    section = config.compare
    min_effect = args.min_effect if args.min_effect is not None else section.min_effect
    preset, rounds = args.preset or section.preset, args.rounds or section.rounds
    args.threads = args.threads or section.threads
    processes = min(args.processes or section.processes, rounds)
    out = Path(args.out_dir)
    json_path = Path(args.json) if args.json else out / "compare.json"
    for path in (json_path, out / "base-pytest-benchmark.json"):
        check_writable(path)
    repo = Path(gate.git(["rev-parse", "--show-toplevel"], cwd=ROOT))
    if args.base:
        how, base_sha = args.base, gate.commit_of(repo, args.base)
    else:
        how, base_sha = gate.default_base(repo)
    head_sha = gate.commit_of(repo, args.head or "HEAD", "--head")
    dirty = not args.head and bool(gate.git(["status", "--porcelain", "--untracked-files=no"], cwd=repo))
    head_label = head_sha[:10] + ("+dirty" if dirty else "")
    print(f"gate: base {how} = {base_sha[:10]}, head {head_label} "
          f"({'commit ' + args.head if args.head else 'working tree ' + str(repo)})")
    print(f"preset {preset}{'' if args.n is None else f' scaled to n={args.n}'} on {args.threads} "
          f"thread(s), {rounds} rounds (A B, B A, ...) in {processes} pairs of processes, one ratio "
          f"of medians a pair; fail: Wilcoxon p < {section.alpha:g} and 95% CI of the pairs' median "
          f"ratio above {min_effect:g} ({config.path})", flush=True)
    if gate.smallest_p(processes) >= section.alpha:
        print(f"note: with {processes} pair(s) the smallest p is {gate.smallest_p(processes):.2g}, "
              f"not below {section.alpha:g}: this run measures but cannot fail (give --processes "
              f"and --rounds of 7 or more)", flush=True)

    cache = Path(args.cache)
    wall = time.perf_counter()
    base_tree = export_commit(repo, base_sha, cache)
    head_tree = export_commit(repo, head_sha, cache) if args.head else repo
    head_numba = cache / head_sha / "numba" if args.head else worktree_numba_cache(repo, cache)
    with tempfile.TemporaryDirectory(prefix="covertreex-gate-") as logs:
        sides = [Side("base", base_tree, cache / base_sha / "numba", preset, args.n, args.threads, Path(logs)),
                 Side("head", head_tree, head_numba, preset, args.n, args.threads, Path(logs))]
        measure(*sides, rounds, processes)
    wall = time.perf_counter() - wall
    base, head = sides
    decisions = [gate.decide_paired(f, base.samples.get(f, []), base.process,
                                    head.samples.get(f, []), head.process, min_effect, section.alpha)
                 for f in section.figures]
    same = base.digests == head.digests and len(base.digests) == 1
    print()
    print(gate.format_table(decisions, base_sha[:10], head_label))
    print("(base, head: medians of the processes' medians; ratio: median of the pairs' ratios; "
          "n: processes a side)")
    print(f"\nresults (idx, dist) identical on both sides and in every sample: {'yes' if same else 'NO'}; "
          f"gate wall time {wall:.1f} s")
    write_atomic(json_path, json.dumps({
        "base": base_sha, "base_how": how, "head": head_sha, "head_dirty": dirty, "preset": preset,
        "rounds": rounds, "processes": processes, "min_effect": min_effect, "alpha": section.alpha,
        "wall_s": wall,
        "results_identical": same, "decisions": [d.as_dict() for d in decisions],
        "base_samples": base.samples, "head_samples": head.samples,
        "base_process": base.process, "head_process": head.process,
        "thresholds_file": config.path, "environment": environment()}, indent=2) + "\n")
    for side, sha in ((base, base_sha), (head, head_sha)):
        write_atomic(out / f"{side.label}-pytest-benchmark.json",
                     json.dumps(gate.pytest_benchmark_json(side.label, sha, side.samples), indent=2))
    failed = [d for d in decisions if d.status == "FAIL"]
    print()
    for d in failed:
        print("FAIL: " + d.message(min_effect, section.alpha))
    if not failed:
        print(f"PASS: no figure slower than {min_effect:g}x the base")
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="perf/compare.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="base revision (default: merge-base with main, or HEAD~1 on main)")
    parser.add_argument("--head", help="candidate revision (default: the working tree)")
    parser.add_argument("--preset", default=None, help="preset (default: [compare].preset)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds, one sample a side each (default: [compare].rounds)")
    parser.add_argument("--processes", type=int, default=None,
                        help="pairs of fresh worker processes (one a side) the rounds are spread "
                             "over; each pair counts once, by its ratio of medians (default: "
                             "[compare].processes, at most --rounds)")
    parser.add_argument("--min-effect", type=float, default=None,
                        help="smallest slowdown that fails (default: [compare].min_effect)")
    parser.add_argument("--thresholds", default=None,
                        help="thresholds file (default: covertreex_bench/thresholds.toml)")
    parser.add_argument("--out-dir", default=str(ROOT / "out" / "gate"), help="output folder")
    parser.add_argument("--json", metavar="PATH", help="the comparison JSON (default OUT_DIR/compare.json)")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE), help="exported commits and their Numba caches")
    parser.add_argument("--threads", type=int, default=None, help="threads per side (default: [compare].threads)")
    parser.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.preset or "quick", args.n, args.threads)
    # The parent reads the thresholds and the environment with this checkout's harness.
    sys.path.insert(0, str(ROOT))
    from covertreex_bench.common import BenchError

    try:
        if args.rounds is not None and args.rounds < 2:
            raise BenchError("--rounds must be >= 2 (each side needs two samples)")
        if args.processes is not None and args.processes < 2:
            raise BenchError("--processes must be >= 2 (the gate compares pairs of processes)")
        if args.min_effect is not None and args.min_effect <= 1:
            raise BenchError("--min-effect must be > 1")
        return drive(args)
    except BenchError as exc:
        print(f"perf/compare.py: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"perf/compare.py: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
