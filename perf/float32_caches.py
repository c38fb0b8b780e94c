"""Memory of the residual metric's caches with float32 staging on and off.

    .venv/bin/python perf/float32_caches.py [--preset gold-d8 ...]

Prints, per preset and setting, the bytes of every array ResidualMetric keeps (V, its float32
copy, p, centred coordinates and norms, the staging scale and row flags) and how many rows
stage in float32.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from covertreex import Phases
from covertreex.metrics.residual.metric import ResidualMetric
from covertreex_bench.workloads import load_workload

MIB = 2 ** 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", help="residual preset(s) (default: gold-d3, gold-d8)")
    args = parser.parse_args()
    for name in args.preset or ["gold-d3", "gold-d8"]:
        work = load_workload(name)
        if work.backend is None:
            parser.error(f"preset {name!r} is not residual")
        for label, phases in (("on", Phases.all()), ("off", replace(Phases.all(), float32_staging=False))):
            m = ResidualMetric(work.backend, phases)
            caches = (m.v, m.v32, m.p, m.centred, m.sq_norms, m.f32_scale, m.f32_ok)
            total = sum(a.nbytes for a in caches)
            print(f"{name} float32_staging {label}: caches {total / MIB:.1f} MiB "
                  f"(V {m.v.nbytes / MIB:.1f}, float32 V {m.v32.nbytes / MIB:.1f}), "
                  f"rows staged {int(m.f32_ok.sum())} of {m.n}")


if __name__ == "__main__":
    main()
