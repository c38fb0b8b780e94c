"""airspeed-velocity (asv 0.6.6) suites for covertreex; see docs/asv.md.

asv imports this directory as a package (it needs this file). The suites size their workloads
from ``covertreex_bench.workloads``: the quick presets by default, the gold presets when
``COVERTREEX_ASV_PROFILE=gold``.
"""
