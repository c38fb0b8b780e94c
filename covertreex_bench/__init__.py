"""covertreex_bench: the benchmark harness of covertreex (``covertreex bench | diagnostics |
profile | report``), the workloads it names, and the packaged gate thresholds.

Layers, top to bottom (an arrow never points up): ``cli`` -> the commands (``bench``,
``diagnostics``, ``report_cli``, ``profiling.cli``) -> their parts (``reports``, ``profiling``,
``results``, ``console``) -> shared helpers (``thresholds``, ``environment``, ``runtime``,
``workloads``, ``common``). See docs/design.md, "Harness".
"""
