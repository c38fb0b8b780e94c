"""Inline SVG charts: line charts with threshold lines, stacked bars. No dependencies.

Every function returns one ``<svg>`` element as a string; text is escaped; colours come from
one palette so series keep their colour within a chart.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f", "#d62728", "#393b79", "#637939", "#8c6d31", "#843c39")
THRESHOLD_COLOURS = {"gate": "#d62728", "other": "#999999"}


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.2g}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.floor(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 0.5 and len(ticks) < 50:
        ticks.append(round(v, 12))
        v += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    ticks = []
    for e in range(a, b + 1):
        for m in ((1, 2, 5) if b - a <= 3 else (1,)):
            v = m * 10 ** e
            if lo / 1.001 <= v <= hi * 1.001:
                ticks.append(float(v))
    return ticks or [lo, hi]


def power_ticks(lo: float, hi: float, base: int | None = None, most: int = 12) -> list[float]:
    """Ticks at powers of ``base`` (default: 10, or 2 where fewer than three powers of 10
    span the range) from the largest power <= lo to the smallest >= hi, at least three and
    thinned to at most ``most``; lo, hi > 0."""
    for b in (base,) if base else (10, 2):
        first = math.floor(math.log(lo, b) + 1e-9)
        last = math.ceil(math.log(hi, b) - 1e-9)
        if last - first >= 2 or b == 2 or base:
            break
    if last - first < 2:
        first, last = first - (last - first < 1), last + 1
    step = max(1, math.ceil((last - first) / (most - 1)))
    last = first + step * math.ceil((last - first) / step)
    return [float(b) ** e for e in range(first, last + 1, step)]


def _legend(names, x0, y0, width, swatch="line"):
    """Legend entries laid out in rows; returns (svg, height)."""
    parts, x, y = [], x0, y0
    row_h = 16
    for i, (name, col, dashed) in enumerate(names):
        w = 26 + 6.4 * len(name)
        if x + w > x0 + width and x > x0:
            x, y = x0, y + row_h
        if swatch == "line":
            dash = ' stroke-dasharray="5,3"' if dashed else ""
            parts.append(f'<line x1="{x}" y1="{y - 4}" x2="{x + 18}" y2="{y - 4}" stroke="{col}" '
                         f'stroke-width="2.5"{dash}/>')
        else:
            parts.append(f'<rect x="{x + 4}" y="{y - 10}" width="11" height="11" fill="{col}"/>')
        parts.append(f'<text x="{x + 22}" y="{y}" class="lg">{escape(name)}</text>')
        x += w
    return "".join(parts), (y - y0) + row_h


def line_chart(series, x_labels, *, title: str = "", y_label: str = "", thresholds=(),
               width: int = 760, height: int = 300, log: bool | None = None,
               section: str | None = None) -> str:
    """series: [{"name", "points": [(x_index, y, tooltip)], "dashed": bool}];
    thresholds: [{"value", "label", "kind": "gate" | "other"}]."""
    values = [p[1] for s in series for p in s["points"] if p[1] is not None and math.isfinite(p[1])]
    tvalues = [t["value"] for t in thresholds if t.get("value") is not None and math.isfinite(t["value"])]
    allv = values + tvalues
    if not allv:
        allv = [0.0, 1.0]
    lo, hi = min(allv), max(allv)
    if log is None:
        log = lo > 0 and hi / lo > 30
    if log and lo <= 0:
        log = False
    left, right, top = 64, 16, 28
    legend_items = [(s["name"], colour(i), s.get("dashed", False)) for i, s in enumerate(series)]
    legend_svg, legend_h = _legend(legend_items, left, 0, width - left - right)
    plot_h = height - top - 58
    plot_w = width - left - right
    # Rotated x labels need room below the plot: about sin(20 deg) of their length.
    longest = max((len(str(x)) for x in x_labels), default=4)
    bottom = 30 + min(110, 0.36 * 6.4 * longest)
    height = top + plot_h + bottom
    total_h = height + legend_h + 6
    if log:
        lo_v, hi_v = lo / 1.25, hi * 1.25
        ticks = log_ticks(lo_v, hi_v)
        lo_v, hi_v = min(lo_v, ticks[0]), max(hi_v, ticks[-1])

        def ypos(v):
            return top + plot_h * (1 - (math.log10(v) - math.log10(lo_v)) /
                                   (math.log10(hi_v) - math.log10(lo_v)))
    else:
        span = hi - lo
        lo_v = 0.0 if lo >= 0 else lo - 0.08 * (span or abs(lo) or 1)
        hi_v = hi + 0.08 * (span or abs(hi) or 1)
        ticks = nice_ticks(lo_v, hi_v)
        lo_v, hi_v = min(lo_v, ticks[0]), max(hi_v, ticks[-1])

        def ypos(v):
            return top + plot_h * (1 - (v - lo_v) / ((hi_v - lo_v) or 1))
    n = max(len(x_labels), 1)

    def xpos(i):
        return left + (plot_w * (i + 0.5) / n)

    out = _frame(width, total_h, section, title, left, top, plot_w, plot_h, ticks, ypos,
                 f"{y_label} (log)" if y_label and log else y_label)
    step = max(1, math.ceil(n / 14))
    for i, lab in enumerate(x_labels):
        if i % step == 0 or i == n - 1:
            x = xpos(i)
            out.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" class="xt" '
                       f'transform="rotate(-20 {x:.1f} {top + plot_h + 16})">{escape(str(lab))}</text>')
    for t in thresholds:
        v = t.get("value")
        if v is None or not math.isfinite(v) or (log and v <= 0):
            continue
        y = ypos(v)
        col = THRESHOLD_COLOURS.get(t.get("kind", "gate"), "#d62728")
        dash = "6,4" if t.get("kind", "gate") == "gate" else "2,3"
        out.append(f'<g class="threshold"><line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" '
                   f'y2="{y:.1f}" stroke="{col}" stroke-width="1.5" stroke-dasharray="{dash}"/>'
                   f'<text x="{left + plot_w - 4}" y="{y - 4:.1f}" class="tl" fill="{col}">'
                   f'{escape(t.get("label", ""))}</text></g>')
    for i, s in enumerate(series):
        col = colour(i)
        pts = [(xpos(x), ypos(y), tip) for x, y, tip in s["points"]
               if y is not None and math.isfinite(y) and (not log or y > 0)]
        if not pts:
            continue
        dash = ' stroke-dasharray="6,3"' if s.get("dashed") else ""
        if len(pts) > 1:
            d = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in pts)
            out.append(f'<polyline points="{d}" fill="none" stroke="{col}" stroke-width="2"{dash}/>')
        for x, y, tip in pts:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{col}">'
                       f"<title>{escape(tip)}</title></circle>")
    out.append(f'<g transform="translate(0 {height + 2})">{legend_svg}</g>')
    out.append("</svg>")
    return "".join(out)


def loglog_chart(series, *, title: str = "", x_label: str = "", y_label: str = "",
                 width: int = 760, height: int = 320, section: str | None = None) -> str:
    """Lines over a numeric x, both axes logarithmic: x ticks at powers of 2 (labelled as
    integers), y ticks at powers of 10 or 2 (``power_ticks``).

    series: [{"name", "points": [(x, y, tooltip, hollow)], "dashed": bool}], x and y > 0
    (other points are left out); a hollow point is drawn as a ring. Every point carries its
    values as ``data-x`` / ``data-y``."""
    pts = [(p[0], p[1]) for s in series for p in s["points"] if _positive(p[0]) and _positive(p[1])]
    xs, ys = [x for x, _ in pts] or [1.0], [y for _, y in pts] or [1.0]
    x_ticks = power_ticks(min(xs), max(xs), base=2)
    y_ticks = power_ticks(min(ys), max(ys))
    left, right, top, bottom = 64, 24, 28, 50
    legend_svg, legend_h = _legend([(s["name"], colour(i), s.get("dashed", False))
                                    for i, s in enumerate(series)], left, 0, width - left - right)
    plot_w, plot_h = width - left - right, height - top - bottom
    total_h = height + legend_h + 6

    def scale(v, ticks, length):
        lo, hi = math.log(ticks[0]), math.log(ticks[-1])
        return length * (math.log(v) - lo) / ((hi - lo) or 1.0)

    def xpos(v):
        return left + scale(v, x_ticks, plot_w)

    def ypos(v):
        return top + plot_h - scale(v, y_ticks, plot_h)

    out = _frame(width, total_h, section, title, left, top, plot_w, plot_h, y_ticks, ypos,
                 f"{y_label} (log)" if y_label else "")
    for t in x_ticks:
        x = xpos(t)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" class="grid"/>'
                   f'<text x="{x:.1f}" y="{top + plot_h + 15}" class="xt0">{int(t):,}</text>')
    if x_label:
        out.append(f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 34}" class="xt0">'
                   f"{escape(x_label)} (log)</text>")
    for i, s in enumerate(series):
        col = colour(i)
        line = sorted((p for p in s["points"] if _positive(p[0]) and _positive(p[1])),
                      key=lambda p: p[0])
        if len(line) > 1:
            dash = ' stroke-dasharray="6,3"' if s.get("dashed") else ""
            d = " ".join(f"{xpos(x):.1f},{ypos(y):.1f}" for x, y, *_ in line)
            out.append(f'<polyline points="{d}" fill="none" stroke="{col}" stroke-width="2"{dash}/>')
        for x, y, tip, hollow in line:
            fill = f'fill="#fff" stroke="{col}" stroke-width="2"' if hollow else f'fill="{col}"'
            out.append(f'<circle cx="{xpos(x):.1f}" cy="{ypos(y):.1f}" r="4" {fill} '
                       f'data-x="{x:g}" data-y="{y:g}"><title>{escape(tip)}</title></circle>')
    out.append(f'<g transform="translate(0 {height + 2})">{legend_svg}</g>')
    out.append("</svg>")
    return "".join(out)


def _positive(v) -> bool:
    return v is not None and math.isfinite(v) and v > 0


def _open(width, total_h, section, title, left):
    """The svg element, its title and the visible title line: the list to append to."""
    out = [f'<svg class="chart" viewBox="0 0 {width} {total_h}" '
           f'width="{width}" height="{total_h}" role="img"'
           + (f' data-chart="{escape(section)}"' if section else "") + ">"]
    out.append(f"<title>{escape(title)}</title>")
    if title:
        out.append(f'<text x="{left}" y="16" class="ct">{escape(title)}</text>')
    return out


def _frame(width, total_h, section, title, left, top, plot_w, plot_h, ticks, ypos, y_label):
    """Opening parts of a chart: ``_open``, then the plot area, grid lines with their tick
    labels (those inside the plot) and the y-axis label. Returns the list to append to."""
    out = _open(width, total_h, section, title, left)
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" class="plot"/>')
    for t in ticks:
        y = ypos(t)
        if top - 0.5 <= y <= top + plot_h + 0.5:
            out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" class="grid"/>')
            out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="yt">{_fmt(t)}</text>')
    if y_label:
        out.append(f'<text transform="translate(14 {top + plot_h / 2}) rotate(-90)" class="yl">'
                   f"{escape(y_label)}</text>")
    return out


def stacked_bars(categories, stacks, *, title: str = "", y_label: str = "", width: int = 900,
                 height: int = 280, section: str | None = None) -> str:
    """Vertical stacked bars: categories (x labels), stacks [{"name", "values": [per x]}]."""
    totals = [sum((s["values"][i] or 0) for s in stacks) for i in range(len(categories))]
    hi = max(totals or [1.0]) or 1.0
    left, right, top, bottom = 64, 16, 28, 46
    legend_svg, legend_h = _legend([(s["name"], colour(i), False) for i, s in enumerate(stacks)],
                                   left, 0, width - left - right, swatch="box")
    plot_w, plot_h = width - left - right, height - top - bottom
    ticks = nice_ticks(0, hi * 1.05)
    top_v = ticks[-1] or 1.0
    n = max(len(categories), 1)
    bw = plot_w / n
    total_h = height + legend_h + 6

    def ypos(v):
        return top + plot_h * (1 - v / top_v)

    out = _frame(width, total_h, section, title, left, top, plot_w, plot_h, ticks, ypos, y_label)
    step = max(1, math.ceil(n / 24))
    for i, cat in enumerate(categories):
        x0 = left + i * bw
        base = 0.0
        for j, s in enumerate(stacks):
            v = s["values"][i] or 0.0
            if v <= 0:
                continue
            y1, y0 = ypos(base + v), ypos(base)
            out.append(f'<rect x="{x0 + bw * 0.12:.1f}" y="{y1:.1f}" width="{bw * 0.76:.1f}" '
                       f'height="{max(y0 - y1, 0.5):.1f}" fill="{colour(j)}"><title>'
                       + escape(f"{cat}: {s['name']} {_fmt(v)}") + "</title></rect>")
            base += v
        if i % step == 0 or i == n - 1:
            out.append(f'<text x="{x0 + bw / 2:.1f}" y="{top + plot_h + 14}" class="xt0">'
                       f"{escape(str(cat))}</text>")
    out.append(f'<g transform="translate(0 {height + 2})">{legend_svg}</g>')
    out.append("</svg>")
    return "".join(out)


def share_bars(rows, categories, *, title: str = "", width: int = 900,
               section: str | None = None) -> str:
    """Horizontal 100 % bars: rows [(label, {category: value})]; each row is normalised."""
    left, right, top, row_h = 230, 20, 28, 26
    legend_svg, legend_h = _legend([(c, colour(i), False) for i, c in enumerate(categories)],
                                   left, 0, width - left - right, swatch="box")
    plot_w = width - left - right
    height = top + row_h * max(len(rows), 1) + 24
    total_h = height + legend_h + 6
    out = _open(width, total_h, section, title, left)
    for pct in (0, 25, 50, 75, 100):
        x = left + plot_w * pct / 100
        out.append(f'<line x1="{x:.1f}" y1="{top - 2}" x2="{x:.1f}" y2="{top + row_h * len(rows)}" '
                   f'class="grid"/><text x="{x:.1f}" y="{top + row_h * len(rows) + 14}" '
                   f'class="xt0">{pct} %</text>')
    for r, (label, values) in enumerate(rows):
        y = top + r * row_h
        total = sum(v or 0 for v in values.values()) or 1.0
        x = left
        out.append(f'<text x="{left - 8}" y="{y + row_h * 0.62:.1f}" class="yt">{escape(label)}</text>')
        for i, c in enumerate(categories):
            v = (values.get(c) or 0) / total
            if v <= 0:
                continue
            w = plot_w * v
            out.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" '
                       f'fill="{colour(i)}"><title>{escape(f"{label}: {c} {100 * v:.1f} %")}</title></rect>')
            if w > 38:
                out.append(f'<text x="{x + w / 2:.1f}" y="{y + row_h * 0.62:.1f}" class="bl">'
                           f"{100 * v:.0f} %</text>")
            x += w
    out.append(f'<g transform="translate(0 {height + 2})">{legend_svg}</g>')
    out.append("</svg>")
    return "".join(out)


CHART_CSS = """
svg.chart { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; max-width: 100%; height: auto; }
svg.chart .plot { fill: #fcfcfd; stroke: #d0d4da; }
svg.chart .grid { stroke: #e6e8eb; stroke-width: 1; }
svg.chart .ct { font-size: 13px; font-weight: 600; fill: #222; }
svg.chart .yt { font-size: 11px; fill: #555; text-anchor: end; }
svg.chart .xt { font-size: 11px; fill: #555; text-anchor: end; }
svg.chart .xt0 { font-size: 11px; fill: #555; text-anchor: middle; }
svg.chart .yl { font-size: 11px; fill: #555; text-anchor: middle; }
svg.chart .lg { font-size: 11px; fill: #333; }
svg.chart .tl { font-size: 10.5px; text-anchor: end; }
svg.chart .bl { font-size: 10.5px; fill: #fff; text-anchor: middle; font-weight: 600; }
"""
