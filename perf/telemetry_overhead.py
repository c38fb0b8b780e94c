"""What telemetry costs: builds of a preset with recording on and off, alternating, medians.

    .venv/bin/python perf/telemetry_overhead.py [--preset quick] [--rounds 7]

Prints both medians, every run, and the overhead (median on / median off - 1). Issue limit: 3 %.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

from covertreex import CoverTree
from covertreex.threads import configure_threading
from covertreex_bench.runtime import make_runtime, warm_up
from covertreex_bench.workloads import get_preset, load_workload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        configure_threading()
    preset = get_preset(args.preset)
    work = load_workload(preset)
    runtime = make_runtime(preset)
    warm_up(preset)
    for flag in (True, False):
        CoverTree(runtime).fit(work.fit_input, telemetry=flag)
    runs = {True: [], False: []}
    for _ in range(args.rounds):
        for flag in (True, False):
            start = time.perf_counter()
            CoverTree(runtime).fit(work.fit_input, telemetry=flag)
            runs[flag].append((time.perf_counter() - start) * 1e3)
    on, off = statistics.median(runs[True]), statistics.median(runs[False])
    print(f"{preset.name}: build ms with telemetry median {on:.1f}, runs {[round(x) for x in runs[True]]}")
    print(f"{preset.name}: build ms without      median {off:.1f}, runs {[round(x) for x in runs[False]]}")
    print(f"overhead (on / off - 1): {(on / off - 1) * 100:+.2f} %")


if __name__ == "__main__":
    main()
