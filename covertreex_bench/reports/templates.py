"""The page skeleton and its inline stylesheet (no external resource of any kind)."""

from __future__ import annotations

from html import escape

from .svg import CHART_CSS

CSS = """
:root { --fg: #1d2127; --muted: #5f6b7a; --line: #dfe3e8; --bg: #ffffff; --soft: #f5f7f9;
        --bad: #fde2e1; --badfg: #a4161a; --good: #e3f4e6; --goodfg: #1b6b30; --skip: #f3f0e0; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
header { padding: 18px 28px 10px; border-bottom: 1px solid var(--line); background: var(--soft); }
header h1 { margin: 0 0 4px; font-size: 21px; }
header p { margin: 2px 0; color: var(--muted); }
nav { padding: 8px 28px; border-bottom: 1px solid var(--line); position: sticky; top: 0;
      background: var(--bg); z-index: 2; }
nav a { margin-right: 16px; color: #1f5fbf; text-decoration: none; }
main { padding: 6px 28px 40px; max-width: 1500px; }
section { margin-top: 22px; }
h2 { font-size: 18px; border-bottom: 2px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.counts span { display: inline-block; margin-right: 14px; }
.counts b { font-variant-numeric: tabular-nums; }
figure { margin: 6px 0 14px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fill, minmax(640px, 1fr)); gap: 0 28px; }
.grid2 h3 { margin-top: 10px; }
figcaption { color: var(--muted); font-size: 12.5px; }
.tw { overflow-x: auto; margin: 6px 0 14px; }
table { border-collapse: collapse; font-size: 12.5px; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); padding: 2px 0 6px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; white-space: nowrap; }
td { max-width: 520px; overflow-wrap: break-word; }
td.bad, td.fail { background: var(--bad); color: var(--badfg); font-weight: 600; }
td.good, td.pass { background: var(--good); color: var(--goodfg); }
td.skip { background: var(--skip); }
td.goal { background: var(--skip); font-style: italic; }
td.hl { font-weight: 600; }
.empty { border: 1px dashed #c9ced6; background: #fafbfc; padding: 6px 14px; margin: 6px 0 14px;
         color: var(--muted); }
.note { color: var(--muted); }
""" + CHART_CSS

INTRO = {
    "trends": "Figures per commit from asv results (asv_bench/results) and covertreex bench / gate "
              "JSON, oldest commit left. Series named asv … come from asv; gate … and bench … from "
              "the JSON files. A commit marked * ran with uncommitted changes.",
    "ladder": "The audit phases switched on one after the other (baseline, +1, +1+2, …, all): "
              "what each phase buys.",
    "regressions": "The newest value of every series against the commit before it and against "
                   "the base commit.",
    "scaling": "Time against problem size on the Vecchia workloads (vecchia-d3, vecchia-65k, "
               "vecchia-131k and scaled copies), per machine: ours against the float64 brute "
               "force, with the query phase's figures.",
    "verdicts": "Each threshold of the thresholds file judged on the newest run of its presets.",
    "telemetry": "Per-batch records of the telemetry logs (covertreex bench --log).",
    "profiles": "pyinstrument captures (covertreex profile): where sampled time goes in the build's "
                "hot phase and in the queries, and the evidence that hot Numba kernels run without "
                "the GIL.",
    "environment": "The machine and library versions behind each figure.",
    "inputs": "What was read, what was skipped and why.",
}


def page(title: str, generated: str, counts: dict, blocks, factor: float) -> str:
    nav = "".join(f'<a href="#{key}">{escape(name)}</a>' for key, name, _ in blocks)
    count_html = "".join(f"<span>{escape(k)}: <b>{v}</b></span>" for k, v in counts.items())
    body = "".join(
        f'<section id="{key}" data-block="{key}"><h2>{escape(name)}</h2>'
        f'<p class="note">{escape(INTRO.get(key, ""))}</p>{html}</section>'
        for key, name, html in blocks)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p>generated {escape(generated)} · regression factor "
        f"{factor:g} · self-contained page: no script, no network</p>"
        f'<p class="counts">{count_html}</p></header>'
        f"<nav>{nav}</nav><main>{body}</main></body></html>\n"
    )
