"""Cold start: a fresh interpreter with an empty Numba cache fits and queries tiny trees.

This is what a user's first call costs: interpreter start, imports and the JIT compilation of
every kernel a residual and a Euclidean fit + knn take (cached kernels are compiled too, since
NUMBA_CACHE_DIR points to a new empty directory each time). The other suites compile in setup
and measure warm code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from . import _common as c

# The harness's warm-up of both metrics (small copies of the quick presets) in a fresh
# interpreter with an empty Numba cache: imports plus every first compilation.
SCRIPT = f"""
import importlib.util
spec = importlib.util.spec_from_file_location("harness_runtime", {str(c.HARNESS_RUNTIME)!r})
harness = importlib.util.module_from_spec(spec)
spec.loader.exec_module(harness)
for name in ("quick", "euclid-32k"):
    harness.warm_up(harness.workloads_module().get_preset(name))
"""


class ColdStart:
    number = 1
    rounds = 1
    warmup_time = 0
    repeat = (2, 3, 60.0)
    timeout = 600

    def setup(self):
        c.workloads()  # NotImplementedError (skipped) on a commit without workloads
        self.dirs = []

    def teardown(self):
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)

    def time_cold_start(self):
        cache = tempfile.mkdtemp(prefix="covertreex-asv-numba-")
        self.dirs.append(cache)
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"cold-start subprocess failed ({proc.returncode}):\n{proc.stderr}")
