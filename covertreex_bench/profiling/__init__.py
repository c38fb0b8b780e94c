"""Profiling suite: pyinstrument captures, Python-callout and GIL evidence (docs/design.md, "Harness").

``covertreex profile --preset NAME`` (``covertreex_bench.profiling.cli``) writes per phase setting
the pyinstrument HTML, session, JSON and speedscope files, and ``summary.json``::

    {
      "schema": "covertreex.profile", "version": 1,
      "created_unix": float, "command": [str, ...],
      "preset": {"name", "base", "metric", "n", "d", "k", "queries", "inducing",
                 "predecessor_mode", "scaled"},
      "data_ms": float,                      # workload (backend) construction, not profiled
      "environment": {...},                  # covertreex_bench.environment.environment(): versions, threads
      "git_commit": str | null, "git_dirty": bool | null,
      "runs": [                              # one per phase setting ("all", "baseline")
        {"phases": "all", "phase_flags": {name: bool}, "warm_s": float,
         "files": {"html", "session", "json", "speedscope"},   # names inside the out dir
         "build_wall_ms", "query_wall_ms",                      # measured under the profiler
         "build_summary": BuildReport.summary(), "query": QueryReport fields,
         "profile": {"interval_s", "build_duration_s", "query_duration_s",
                     "build_samples", "query_samples", "note"},
         "callouts": {"build" | "build_hot" | "query": {
             "total_ms", "records",
             "categories_ms": {"covertreex_python", "numba_kernels", "numpy_blas", "other"},
             "shares": {same keys: fraction of total_ms},
             "python_share", "compiled_share",       # covertreex_python; numba + numpy_blas
             "python_called_from_kernels_ms",        # Python frames below a Numba frame
             "top_kernels": [{"kernel", "ms"}],
             "top_lines": [{"where": "covertreex/x.py:LINE", "ms", "category", "text"}],
             "top_other": [{"frame", "ms"}]}}},
        {"phases": "baseline", ...}          # or {"phases", "error"} when a capture failed
      ],
      "callout_comparison": {"region": "build_hot",
                             "python_share" | "numba_share" | "numpy_blas_share" |
                             "compiled_share" | "total_ms": {phases label: value}},
      "gil": {                               # or {"skipped": true, "note"[, "error"]}
        "preset", "n", "warm_s", "modules": [str], "module_errors": {module: error},
        "kernels": [{"kernel", "module", "name", "nogil", "parallel", "inline",
                     "signatures", "compiled", "ir_source": "dispatcher" | "recompiled",
                     "sites": {"wrapper" | "parfor_launch" | "error_path" | "hot":
                               {symbol: count}},
                     "hot_sites": [{"function", "block", "symbol", "instruction"}],
                     "clean": bool, "ok": bool, "error": str | null}],
        "llvm_clean": bool,                  # every compiled kernel ok (nogil, no hot site)
        "scenario_notes": [str],
        "heartbeat": [{"scenario", "description", "kernels", "threads", "duration_ms", "calls",
                       "call_ms_median", "call_ms_max", "beats", "period_ms", "max_gap_ms",
                       "p99_gap_ms", "median_gap_ms", "switch_interval_ms", "limit_ms",
                       "discriminating", "held_gap_ms",   # the GIL-holding control's max gap
                       "released": true (max gap <= limit / 2) | false (>= held_gap_ms)
                                   | null (inconclusive, in between)}],
        "two_thread": [{"scenario", "description", "kernels", "units_per_thread",
                        "one_thread_s", "two_threads_s", "throughput_1", "throughput_2",
                        "speedup", "cpu_util_1", "cpu_util_2", "cores", "loadavg_1min",
                        "machine_busy", "errors",
                        "released": bool | null}],
        "py_spy": {"available", "skipped", "note", "runs": [
                       {"scenario", "samples", "gil_samples", "gil_share",
                        "top_leaf_frames": [[frame, samples]]} | {"scenario", "error"}]
                   [, "executable", "seconds", "scenario", "gil_share"]}   # first non-control run
      }
    }

Scenarios ``control_nogil`` / ``control_gil`` run the same loop compiled with and without
``nogil``: they show that the heartbeat and two-thread probes tell the two apart.
"""

SCHEMA_ID = "covertreex.profile"
SCHEMA_VERSION = 1
