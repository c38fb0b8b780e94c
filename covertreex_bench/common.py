"""Names every layer of the harness shares: the bench JSON schema, the console and ladder
columns, and the one-line request error. It imports nothing, so any module may import it."""

from __future__ import annotations

SCHEMA_ID = "covertreex_bench.bench"
SCHEMA_VERSION = 1

# Batch figures shown in the console table (sums and medians come from BuildReport.summary()).
TABLE_FIGURES = ("traversal_ms", "whitened_block_ms", "kernel_provider_ms", "conflict_graph_ms")
# Ladder columns: (figure key in the result, header). Ratios are taken against the step before.
# The bench console and the HTML report draw the same columns.
LADDER_FIGURES = (
    ("build_wall_ms", "build wall ms"),
    ("traversal_ms_sum", "traversal ms"),
    ("whitened_block_ms_sum", "whitened_block ms"),
    ("kernel_provider_ms_sum", "kernel_provider ms"),
    ("conflict_graph_ms_sum", "conflict_graph ms"),
    ("query_wall_ms", "query wall ms"),
)

# What to tell a user whose install lacks a harness dependency (pandas, pyinstrument, asv).
INSTALL_HINT = "pip install 'covertreex[bench]'"


class BenchError(ValueError):
    """A problem with the request (unknown preset, bad thresholds file, ...): one line for the user."""
