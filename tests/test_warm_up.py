"""The harness's warm-up leaves nothing for a timed run to compile.

A query's figure must not hold Numba's compile time. Whether a kernel was compiled or loaded
from Numba's cache, it shows up as a new overload of its dispatcher, so the probe runs in a
fresh process (this one has compiled everything already) and lists the overloads that
appear after ``warm_up``.
"""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = r"""
import dataclasses, gc, json, warnings
warnings.simplefilter("ignore", RuntimeWarning)  # the thread-guard note
from numba.core.registry import CPUDispatcher
from covertreex import CoverTree
from covertreex.runtime import auto_brute
from covertreex_bench.runtime import make_runtime, warm_up
from covertreex_bench.workloads import get_preset, load_workload, scaled


def loaded():
    return {f"{d.py_func.__qualname__}{sig}" for d in gc.get_objects()
            if type(d) is CPUDispatcher for sig in d.overloads}


preset = get_preset("vecchia-d3")
start = loaded()
warm_up(preset)
warmed = loaded()
# The preset's own tree scans its rows up to auto_brute and walks the rest; at this size
# every row would be scanned, so the scan's bound is set to walk the upper half.
small = scaled(preset, 1200)
work = load_workload(small)
bound = 600
assert bound < auto_brute(preset.metric, small.n)
tree = CoverTree(dataclasses.replace(make_runtime(small), query_brute=bound)).fit(work.fit_input)
tree.knn_report(None, small.k, predecessor_mode=True)
print(json.dumps({"warm_up": sorted(warmed - start), "query": sorted(loaded() - warmed)}))
"""


def test_a_predecessor_query_with_walked_rows_compiles_nothing_after_warm_up():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         check=True)
    new = json.loads(out.stdout.splitlines()[-1])
    # The timed query, scanned rows and walked ones, needs nothing warm_up did not bring in...
    assert new["query"] == [], f"compiled or loaded inside the query: {new['query']}"
    # ...and the probe does see what warm_up brings in, the walk's kernels among them.
    assert any(name.startswith("walk_block_kernel[residual") for name in new["warm_up"])
    assert any(name.startswith("seed_block_kernel[residual") for name in new["warm_up"])
