"""Where a predecessor-mode walk (or a build) spends its time, by Numba function: a Linux
``perf`` profile of a residual preset, with the compiled kernels named.

    .venv/bin/python perf/walk_profile.py [--preset vecchia-131k] [--rows 8192] [--threads 1]
                                          [--build] [--top 15] [--out out/perf/walk.data]

Builds the preset's tree, walks its top ``--rows`` ids once untimed (Numba compiles its
kernels), then again under ``perf record`` attached to this process (499 samples a second),
and prints the wall time and the ``--top`` symbols of ``perf report`` by share of samples.
With ``--build``, the second build of the tree is profiled instead of the walk. ``perf`` cannot name code that Numba compiled at run time; after the walk the script
writes ``/tmp/perf-<pid>.map`` (the address and size of every function of every compiled
Numba library, named by its Python module and function), which ``perf report`` reads. Only
kernels compiled in this process can be mapped (one loaded from Numba's cache holds no
function table), so the script points ``NUMBA_CACHE_DIR`` at an empty temporary folder before
Numba loads, and the first walk compiles everything (about a minute). Rows
whose ids exceed ``auto_brute``'s limit are walked; the others are scanned (every row of a tree
of up to 32768 points), and the profile is then the scan's.
Needs ``perf`` on PATH and permission to attach to the process.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="walk-profile-numba-")

import numpy as np  # noqa: E402  (after NUMBA_CACHE_DIR, which Numba reads once)

from covertreex import CoverTree  # noqa: E402
from covertreex_bench.runtime import make_runtime  # noqa: E402
from covertreex_bench.workloads import get_preset, load_workload  # noqa: E402


def _readable(mangled: str) -> str:
    """covertreex.engine.frontier_kernels.expand_frontier for Numba's Itanium-style
    _ZN10covertreex6engine16frontier_kernels15expand_frontierB4v201...; other names as given."""
    if not mangled.startswith("_ZN"):
        return mangled
    parts, pos = [], 3
    while (found := re.match(r"\d+", mangled[pos:])) is not None:
        size = int(found.group())
        start = pos + len(found.group())
        parts.append(mangled[start:start + size])
        pos = start + size
    return ".".join(parts) or mangled


def write_perf_map(path: Path) -> int:
    """Write every compiled Numba function's address range to ``path`` in perf's map format;
    returns how many. Each function's size is taken up to the next function's address."""
    from numba.core.registry import CPUDispatcher

    names = {}
    for obj in gc.get_objects():
        if not isinstance(obj, CPUDispatcher):
            continue
        for cres in obj.overloads.values():
            library = cres.library
            for fn in library._final_module.functions:
                if not fn.is_declaration:
                    address = library.get_pointer_to_function(fn.name)
                    if address:
                        names[address] = _readable(fn.name)
    addresses = sorted(names)
    if not addresses:
        return 0
    with open(path, "w") as out:
        for here, after in zip(addresses, addresses[1:] + [addresses[-1] + 4096]):
            out.write(f"{here:x} {min(after - here, 1 << 20):x} {names[here]}\n")
    return len(addresses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vecchia-131k", help="a residual preset")
    parser.add_argument("--rows", type=int, default=8192, help="top ids walked (default 8192)")
    parser.add_argument("--threads", type=int, default=1, help="walk threads (default 1)")
    parser.add_argument("--build", action="store_true", help="profile a build, not the walk")
    parser.add_argument("--top", type=int, default=15, help="symbols printed (default 15)")
    parser.add_argument("--out", type=Path, default=Path("out/perf/walk.data"),
                        help="perf's data file (default out/perf/walk.data)")
    args = parser.parse_args()
    if shutil.which("perf") is None:
        parser.exit(2, "walk_profile.py: error: `perf` is not on PATH (Debian: apt-get install "
                       "linux-perf)\n")
    if args.threads < 1 or args.top < 1:
        parser.error("--threads and --top must be positive")
    warnings.simplefilter("ignore", RuntimeWarning)  # the thread-guard note
    try:
        preset = get_preset(args.preset)
    except ValueError as exc:
        parser.error(str(exc))
    if preset.metric != "residual_correlation":
        parser.error(f"preset {args.preset!r} is not residual")
    if not 0 < args.rows <= preset.n:
        parser.error(f"--rows must be within 1..{preset.n}, the preset's points")
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        parser.error(f"cannot write --out {args.out}: {exc.strerror}")
    if not os.access(args.out.parent, os.W_OK):
        parser.error(f"cannot write --out {args.out}: its folder is not writable")
    work = load_workload(preset)
    runtime = replace(make_runtime(preset), threads=args.threads)
    tree = CoverTree(runtime).fit(work.backend)
    ids = np.arange(preset.n - args.rows, preset.n)
    tree.knn_report(ids, preset.k, predecessor_mode=True)  # compiles the kernels
    record = subprocess.Popen(["perf", "record", "-F", "499", "-p", str(os.getpid()), "-o",
                               str(args.out)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # perf attaches
    if record.poll() is not None:
        sys.exit(f"walk_profile.py: `perf record -p {os.getpid()}` exited with status "
                 f"{record.returncode}; attaching to a process may need root or "
                 "kernel.perf_event_paranoid <= 1")
    start = time.perf_counter()
    if args.build:
        CoverTree(runtime).fit(work.backend)
    else:
        tree.knn_report(ids, preset.k, predecessor_mode=True)
    wall = time.perf_counter() - start
    record.send_signal(signal.SIGINT)
    record.wait()
    count = write_perf_map(Path(f"/tmp/perf-{os.getpid()}.map"))
    if count == 0:
        sys.exit("walk_profile.py: no compiled Numba function could be mapped")
    what = "built" if args.build else f"top {args.rows} ids walked"
    print(f"{preset.name}: {what} on {args.threads} thread(s) in {wall:.2f} s; {count} Numba "
          f"functions mapped; perf data in {args.out}")
    report = subprocess.run(["perf", "report", "-i", str(args.out), "--no-children",
                             "--sort", "symbol", "--stdio"], capture_output=True, text=True)
    lines = [line for line in report.stdout.splitlines() if "%" in line and "#" not in line]
    for line in lines[:args.top]:
        # perf's last two columns (IPC) read "-" without hardware counters, as in a VM.
        print("  " + re.sub(r"(\s+-)*$", "", re.sub(r"\s+", " ", line.strip()))[:110])
    sys.exit(report.returncode)


if __name__ == "__main__":
    main()
