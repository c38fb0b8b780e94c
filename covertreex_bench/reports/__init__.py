"""Static HTML regression report (docs/design.md, "Harness"), the library behind ``covertreex report``
(``covertreex_bench.report_cli``).

``build_report(out_dir, asv=..., gate=[...], bench=[...], logs=[...], profiles=...,
thresholds=...)`` reads asv results, bench / gate JSON, telemetry JSONL logs and profile
summaries (each optional) and writes one self-contained ``index.html`` (inline CSS and SVG,
no script, no network request) plus offline copies of the pyinstrument pages it links.
"""

from .builder import SECTIONS, build_report

__all__ = ["SECTIONS", "build_report"]
