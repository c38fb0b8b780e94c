"""Small HTML pieces of the report: number formatting, tables, charts and empty sections.

Every chart and table carries a stable ``data-section`` attribute; a section without data
keeps its element, marked ``data-empty="true"``, with a visible sentence saying what is
missing and where it was looked for.
"""

from __future__ import annotations

import math
from html import escape


def fmt(v, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int,)) and not isinstance(v, bool):
        return f"{v:,}"
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(x):
        return "–"
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1e4:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.1f}"
    return f"{x:.{digits}g}"


def cell(value, cls: str = "", title: str = "") -> tuple:
    return (value, cls, title)


def table(section: str, headers, rows, *, caption: str = "", empty: str = "") -> str:
    """A table with data-section; rows hold plain values or ``cell(...)`` tuples."""
    if not rows:
        return empty_block(section, empty or "no data", "table")
    out = [f'<div class="tw"><table data-section="{section}">']
    if caption:
        out.append(f"<caption>{escape(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{escape(str(h))}</th>" for h in headers) + "</tr></thead><tbody>")
    for row in rows:
        tds = []
        for c in row:
            value, cls, title = c if isinstance(c, tuple) else (c, "", "")
            if isinstance(value, _Raw):
                text = str(value)
            else:
                text = escape(value if isinstance(value, str) else fmt(value))
            attrs = (f' class="{cls}"' if cls else "") + (f' title="{escape(title)}"' if title else "")
            tds.append(f"<td{attrs}>{text}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


class _Raw(str):
    """Trusted HTML for a table cell (a link built here)."""


def link(href: str, text: str) -> _Raw:
    return _Raw(f'<a href="{escape(href)}">{escape(text)}</a>')


def empty_block(section: str, message: str, kind: str) -> str:
    return (f'<div class="empty" data-section="{section}" data-kind="{kind}" data-empty="true">'
            f"<p>{escape(message)}</p></div>")


def empty_group(sections, message: str) -> str:
    """Empty sections [(id, kind)] of one group as one visible line: the first carries the
    message, the others are hidden markers with the same message (so every id is present)."""
    first, *rest = sections
    return empty_block(first[0], message, first[1]) + "".join(
        empty_block(s, message, k).replace('data-empty="true">', 'data-empty="true" hidden>', 1)
        for s, k in rest)


def chart_block(section: str, svg_text: str, note: str = "") -> str:
    return (f'<figure data-section="{section}" data-kind="chart">{svg_text}'
            + (f"<figcaption>{escape(note)}</figcaption>" if note else "") + "</figure>")


def short(commit) -> str:
    if not isinstance(commit, str) or not commit:
        return "unknown"
    base, _, dirty = commit.partition("+")
    return base[:8] + ("*" if dirty else "")
