"""Report sections over ``covertreex profile`` summaries: the pyinstrument captures, the
Python-callout shares and the four GIL probes."""

from __future__ import annotations

import os
import re
from pathlib import Path

from . import svg
from .html import cell, chart_block, empty_block, empty_group, fmt, link, short, table
from .loaders import Inputs

SECTIONS = (
    ("profiles-table", "table"),
    ("callout-chart", "chart"),
    ("callout-table", "table"),
    ("gil-llvm-table", "table"),
    ("gil-heartbeat-table", "table"),
    ("gil-two-thread-table", "table"),
    ("gil-py-spy-table", "table"),
)
CALLOUT_CATEGORIES = ("covertreex_python", "numba_kernels", "numpy_blas", "other")

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def copy_profiles(inputs: Inputs, out_dir: Path) -> dict:
    """Copy each capture's HTML (made offline) to out_dir/profiles; {(summary, phases): href}."""
    from ..profiling.capture import offline_html

    hrefs = {}
    for path, doc in inputs.profiles:
        sub = _SAFE.sub("_", f"{path.parent.name}")
        for run in doc.get("runs") or []:
            name = (run.get("files") or {}).get("html")
            if not name:
                continue
            src = path.parent / name
            if not src.is_file():
                inputs.skipped.append(("profile HTML", str(src), "file not found"))
                continue
            dst_dir = out_dir / "profiles" / sub
            dst_dir.mkdir(parents=True, exist_ok=True)
            dst = dst_dir / _SAFE.sub("_", name)
            dst.write_text(offline_html(src.read_text(encoding="utf-8", errors="replace")),
                           encoding="utf-8")
            hrefs[(str(path), run.get("phases"))] = f"profiles/{sub}/{dst.name}"
    return hrefs


def section_profiles(inputs: Inputs, hrefs: dict) -> str:
    if not inputs.profiles:
        return empty_group(SECTIONS, f"No profiles ({inputs.missing.get('profiles', 'none found')}): "
                           "run `make profile`.")
    out = []
    prow, bars, crow = [], [], []
    for path, doc in inputs.profiles:
        preset = (doc.get("preset") or {}).get("name", "?")
        for run in doc.get("runs") or []:
            label = run.get("phases", "?")
            href = hrefs.get((str(path), label))
            if "error" in run:
                prow.append([preset, label, short(doc.get("git_commit")), "–", "–", cell(run["error"], "fail")])
                continue
            prow.append([preset, label, short(doc.get("git_commit")) + ("*" if doc.get("git_dirty") else ""),
                         run.get("build_wall_ms"), run.get("query_wall_ms"),
                         link(href, os.path.basename(href)) if href else "HTML not found"])
            for region in ("build_hot", "query"):
                reg = (run.get("callouts") or {}).get(region) or {}
                if not reg.get("total_ms"):
                    continue
                bars.append((f"{preset} [{label}] {region}", reg.get("categories_ms") or {}))
                shares = reg.get("shares") or {}
                top_k = ", ".join(f"{k['kernel'].rsplit('.', 1)[-1]} {fmt(k['ms'])}"
                                  for k in (reg.get("top_kernels") or [])[:3])
                top_l = ", ".join(f"{x['where']} {fmt(x['ms'])}" for x in (reg.get("top_lines") or [])[:2]
                                  if x.get("category") == "covertreex_python")
                crow.append([preset, label, region, reg.get("total_ms"),
                             *[cell(f"{100 * shares[c]:.1f} %" if shares.get(c) is not None else "–",
                                    "hl" if c == "covertreex_python" and (shares.get(c) or 0) > 0.05 else "")
                               for c in CALLOUT_CATEGORIES],
                             reg.get("python_called_from_kernels_ms"), top_k or "–", top_l or "–"])
    out.append(table("profiles-table", ["preset", "phases", "commit", "build ms (profiled)",
                                        "queries ms (profiled)", "pyinstrument profile"],
                     prow,
                     caption="pyinstrument captures (copied into this report; open offline)"))
    out.append("<h3>Python-callout evidence</h3>")
    if bars:
        out.append(chart_block("callout-chart", svg.share_bars(
            bars, CALLOUT_CATEGORIES, title="Share of sampled time by kind of frame",
            section="callout-chart"),
            "build_hot = the insertion loop of CoverTree.fit; query = knn_report. Numba kernels and "
            "numpy/BLAS are compiled code; covertreex_python is interpreter time in covertreex frames."))
    else:
        out.append(empty_block("callout-chart", "The profile summaries hold no classified samples.", "chart"))
    out.append(table("callout-table", ["preset", "phases", "region", "sampled ms",
                                      *CALLOUT_CATEGORIES, "Python under kernels ms",
                                      "top kernels (ms)", "top Python lines (ms)"], crow,
                     empty="The profile summaries hold no classified samples."))
    out.append("<h3>GIL evidence</h3>")
    lrows, hrows, trows, srows = [], [], [], []
    for path, doc in inputs.profiles:
        preset = (doc.get("preset") or {}).get("name", "?")
        gil = doc.get("gil") or {}
        if gil.get("skipped"):
            srows.append([preset, cell("skipped", "skip"), gil.get("error") or gil.get("note") or "–", "–"])
            continue
        for k in gil.get("kernels") or []:
            if not k.get("compiled"):
                continue
            sites = k.get("sites") or {}
            fmt_sites = lambda kind: ", ".join(f"{s} {n}" for s, n in (sites.get(kind) or {}).items()) or "0"
            ok = k.get("ok")
            lrows.append([preset, k.get("kernel"), k.get("signatures"),
                          cell(fmt(k.get("nogil")), "" if k.get("nogil") else "fail"),
                          fmt(k.get("parallel")), cell(fmt_sites("hot"), "fail" if k.get("hot_sites") else "pass"),
                          fmt_sites("parfor_launch"), fmt_sites("error_path"), fmt_sites("wrapper"),
                          cell("clean" if ok else ("ERROR" if k.get("error") else "NOT CLEAN"),
                               "pass" if ok else "fail", k.get("error") or "")])
        for h in gil.get("heartbeat") or []:
            if "error" in h:
                hrows.append([preset, h.get("scenario"), cell(h["error"], "fail"), "", "", "", "", ""])
                continue
            rel = h.get("released")
            hrows.append([preset, h.get("scenario"), h.get("call_ms_median"), h.get("max_gap_ms"),
                          h.get("p99_gap_ms"), h.get("limit_ms"), h.get("loadavg_1min"),
                          cell("released" if rel else "held" if rel is False else "inconclusive",
                               "pass" if rel else "fail" if rel is False else "skip")])
        for t in gil.get("two_thread") or []:
            if "error" in t:
                trows.append([preset, t.get("scenario"), cell(t["error"], "fail"), "", "", "", "", "", ""])
                continue
            rel = t.get("released")
            util = (f"{t['cpu_util_1']:.2f} / {t['cpu_util_2']:.2f}"
                    if t.get("cpu_util_1") is not None and t.get("cpu_util_2") is not None else "–")
            trows.append([preset, t.get("scenario"), t.get("throughput_1"), t.get("throughput_2"),
                          cell(f"{t.get('speedup', 0):.2f}×", ""), util, t.get("cores"),
                          t.get("loadavg_1min"),
                          cell("scales" if rel else "does not scale" if rel is False else
                               "inconclusive (machine busy)" if t.get("machine_busy") else "inconclusive",
                               "pass" if rel else "fail" if rel is False else "skip")])
        spy = gil.get("py_spy") or {}
        if spy.get("skipped"):
            srows.append([preset, "–", cell("skipped", "skip"), spy.get("note", "–"), "–"])
        else:
            for run in spy.get("runs") or []:
                if "error" in run:
                    srows.append([preset, run.get("scenario"), cell("failed", "fail"), run["error"], "–"])
                    continue
                share = run.get("gil_share")
                control = run.get("scenario", "").startswith("control")
                srows.append([preset, run.get("scenario"), cell("measured", "pass"),
                              f"{run.get('gil_samples')} of {run.get('samples')} samples hold the GIL"
                              + (" (control: holds the GIL on purpose)" if control else ""),
                              cell(f"{100 * share:.1f} %" if share is not None else "–",
                                   "" if control else ("pass" if share is not None and share < 0.05
                                                       else "fail"))])
    out.append(table("gil-llvm-table", ["preset", "kernel", "signatures", "nogil", "parallel",
                                        "hot-path GIL/Python calls", "parfor launch", "error paths",
                                        "wrappers", "verdict"], lrows,
                     caption="(a) Static scan of the compiled LLVM IR for numba_gil_ensure, "
                             "PyGILState_Ensure, PyObject_Call*, numba_unpickle",
                     empty="No compiled kernel was scanned (GIL probes skipped)."))
    out.append(table("gil-heartbeat-table", ["preset", "scenario", "call ms", "max gap ms",
                                             "p99 gap ms", "limit ms", "load avg", "GIL"], hrows,
                     caption="(b) Longest pause of a 1 ms heartbeat thread while the scenario runs "
                             "(control_gil holds the GIL on purpose)",
                     empty="No heartbeat probe ran."))
    out.append(table("gil-two-thread-table", ["preset", "scenario", "throughput 1 thread /s",
                                              "throughput 2 threads /s", "speedup",
                                              "cores used 1 / 2 threads", "cores", "load avg",
                                              "verdict"], trows,
                     caption="(c) Same work in one thread and in two threads (Numba and BLAS at "
                             "1 thread each)", empty="No two-thread probe ran."))
    out.append(table("gil-py-spy-table", ["preset", "scenario", "py-spy", "figures",
                                          "GIL-held share"], srows,
                     caption="(d) py-spy --gil", empty="No py-spy probe result."))
    return "".join(out)
