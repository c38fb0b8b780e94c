"""Static HTML regression report (DESIGN section 8): ``covertreex report``.

``build_report(out_dir, asv=..., gate=[...], bench=[...], logs=[...], profiles=...,
thresholds=...)`` reads asv results, bench / gate JSON, telemetry JSONL logs and profile
summaries (each optional) and writes one self-contained ``index.html`` (inline CSS and SVG,
no script, no network request) plus offline copies of the pyinstrument pages it links.
"""

from .builder import SECTIONS, build_report

__all__ = ["SECTIONS", "build_report", "main"]


def main(argv=None) -> int:
    """``covertreex report`` (see covertreex_bench.report_cli)."""
    from ..report_cli import main as _main

    return _main(argv)
