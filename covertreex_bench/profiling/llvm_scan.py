"""Probe (a) of the GIL evidence: a static scan of the LLVM IR of compiled Numba kernels for
calls that take the GIL or call the interpreter (the classification is described in
``covertreex_bench.profiling.gil``). It reads dispatchers only; which dispatchers are the hot
kernels is ``kernels.hot_kernels``.
"""

from __future__ import annotations

import re
import warnings

# Symbols whose calls mean "takes the GIL" or "calls the interpreter".
GIL_SYMBOLS = ("numba_gil_ensure", "PyGILState_Ensure", "PyObject_Call", "numba_unpickle")
SITE_KINDS = ("wrapper", "parfor_launch", "error_path", "hot")

_FUNC_RE = re.compile(r'^define\b[^\n@]*@("[^"]+"|[\w.$]+)\(.*?^}', re.M | re.S)
_WEIGHTS_RE = re.compile(r'^(!\d+) = !\{!"branch_weights"((?:, i32 \d+)+)\}', re.M)
_CALL_RE = re.compile(r'@"?(%s)[\w.]*"?\(' % "|".join(GIL_SYMBOLS))
_LABEL_RE = re.compile(r'^([\w.$-]+|"[^"]+"):')
_BR_RE = re.compile(r'\bbr i1 [^,]+, label %("[^"]+"|[\w.$-]+), label %("[^"]+"|[\w.$-]+)(?:, !prof (!\d+))?')
_SUCC_RE = re.compile(r'label %("[^"]+"|[\w.$-]+)')


def _function_kind(name: str) -> str:
    bare = name.strip('"')
    if bare.startswith("_ZN7cpython") or bare.startswith("cpython.") or bare.startswith("cfunc."):
        return "wrapper"
    return "native"


def _blocks(body: str) -> list[tuple[str, list[str]]]:
    """(label, instruction lines) of each basic block of one function definition."""
    lines = body.splitlines()[1:-1]  # drop 'define ... {' and '}'
    blocks, label, cur = [], "entry", []
    for line in lines:
        m = _LABEL_RE.match(line)
        if m and not line.startswith(" "):
            blocks.append((label, cur))
            label, cur = m.group(1).strip('"'), []
        else:
            cur.append(line.strip())
    blocks.append((label, cur))
    return blocks


def _cold_labels(blocks, weights: dict[str, list[int]]) -> set[str]:
    """Labels that are the unlikely side of a weighted conditional branch."""
    cold = set()
    for _, insts in blocks:
        _cold_switch_targets(insts, weights, cold)
        for inst in insts:
            m = _BR_RE.search(inst)
            if not m or not m.group(3) or m.group(3) not in weights:
                continue
            w = weights[m.group(3)]
            if len(w) != 2:
                continue
            t, f = m.group(1).strip('"'), m.group(2).strip('"')
            if w[0] * 8 < w[1]:
                cold.add(t)
            elif w[1] * 8 < w[0]:
                cold.add(f)
    # A block reached only from cold blocks is cold too.
    preds: dict[str, set] = {}
    for label, insts in blocks:
        for inst in insts:
            for succ in _SUCC_RE.findall(inst):
                preds.setdefault(succ.strip('"'), set()).add(label)
    entry = blocks[0][0] if blocks[0][1] else (blocks[1][0] if len(blocks) > 1 else None)
    changed = True
    while changed:
        changed = False
        for label, _ in blocks:
            if label in cold or label == entry:
                continue
            p = preds.get(label)
            if p and p <= cold:
                cold.add(label)
                changed = True
    return cold


def _cold_switch_targets(insts, weights, cold) -> None:
    """Add the unlikely targets of a weighted ``switch`` (weights: default, then cases)."""
    i = 0
    while i < len(insts):
        m = re.match(r'switch \S+ [^,]+, label %("[^"]+"|[\w.$-]+) \[', insts[i])
        if not m:
            i += 1
            continue
        targets = [m.group(1).strip('"')]
        i += 1
        prof = None
        while i < len(insts):
            line = insts[i]
            if line.startswith("]"):
                pm = re.search(r"!prof (!\d+)", line)
                prof = pm.group(1) if pm else None
                break
            targets += [t.strip('"') for t in _SUCC_RE.findall(line)]
            i += 1
        w = weights.get(prof) if prof else None
        if w and len(w) == len(targets):
            top = max(w)
            by_target: dict[str, int] = {}
            for t, wt in zip(targets, w):
                by_target[t] = max(by_target.get(t, 0), wt)
            cold.update(t for t, wt in by_target.items() if wt * 8 < top)
        i += 1


_ERROR_MARKERS = ("@Py_FatalError", "@PyErr_", "unreachable")


def _classify_site(blocks, index, pos, symbol, cold, by_label) -> str:
    label, insts = blocks[index]
    following = insts[pos + 1:pos + 4]
    if symbol in ("numba_gil_ensure", "PyGILState_Ensure") and any(
            "@PyEval_SaveThread" in inst for inst in following):
        return "parfor_launch"
    if label in cold:
        return "error_path"
    rest = insts[pos + 1:]
    if any(marker in inst for inst in rest for marker in _ERROR_MARKERS):
        return "error_path"
    # Successors of this block that die at once (a raise or an abort) also mark an error path.
    succs = [s.strip('"') for inst in rest[-1:] for s in _SUCC_RE.findall(inst)]
    if succs and all(any(marker in inst for inst in by_label.get(s, ()) for marker in _ERROR_MARKERS)
                     or s in cold for s in succs):
        return "error_path"
    return "hot"


def scan_llvm_ir(ir: str) -> dict:
    """Call sites of GIL_SYMBOLS in one compiled signature's IR, by kind.

    Returns {"sites": {kind: {symbol: count}}, "hot_sites": [{"function", "block", "symbol"}],
    "functions": number of function definitions scanned}.
    """
    sites = {kind: {} for kind in SITE_KINDS}
    hot_sites = []
    n_functions = 0
    # The text holds several LLVM modules (the kernel's and the libraries linked into it), each
    # with its own metadata numbering.
    for module in _MODULE_RE.split(ir):
        n_functions += _scan_module(module, sites, hot_sites)
    return {"sites": sites, "hot_sites": hot_sites, "functions": n_functions}


_MODULE_RE = re.compile(r"^(?=; ModuleID = )", re.M)


def _scan_module(ir: str, sites: dict, hot_sites: list) -> int:
    weights = {m.group(1): [int(x) for x in re.findall(r"i32 (\d+)", m.group(2))]
               for m in _WEIGHTS_RE.finditer(ir)}
    n_functions = 0
    for fm in _FUNC_RE.finditer(ir):
        n_functions += 1
        fname, body = fm.group(1), fm.group(0)
        if not _CALL_RE.search(body):
            continue
        fkind = _function_kind(fname)
        blocks = _blocks(body)
        cold = _cold_labels(blocks, weights)
        by_label = {label: insts for label, insts in blocks}
        for bi, (label, insts) in enumerate(blocks):
            for pos, inst in enumerate(insts):
                if "call " not in inst and "invoke " not in inst:
                    continue
                m = _CALL_RE.search(inst)
                if not m:
                    continue
                symbol = m.group(1)
                kind = "wrapper" if fkind == "wrapper" else _classify_site(
                    blocks, bi, pos, symbol, cold, by_label)
                sites[kind][symbol] = sites[kind].get(symbol, 0) + 1
                if kind == "hot":
                    hot_sites.append({"function": fname.strip('"')[:160], "block": label,
                                      "symbol": symbol, "instruction": inst[:200]})
    return n_functions


def _recompiled_ir(dispatcher) -> dict:
    """IR of a fresh, uncached copy of the dispatcher for each of its signatures (used when
    the loaded overloads came from Numba's cache and carry no IR)."""
    from numba import njit

    options = {k: v for k, v in dispatcher.targetoptions.items() if k not in ("cache",)}
    twin = njit(**options)(dispatcher.py_func)
    for sig in dispatcher.signatures:
        twin.compile(sig)
    return twin.inspect_llvm()


def llvm_scan(kernels) -> list[dict]:
    """Probe (a) for every kernel; kernels without compiled signatures are listed as such."""
    out = []
    for k in kernels:
        d = k.dispatcher
        opts = dict(d.targetoptions)
        entry = {
            "kernel": k.qualname, "module": k.module, "name": k.name,
            "nogil": bool(opts.get("nogil", False)), "parallel": bool(opts.get("parallel", False)),
            "inline": opts.get("inline", "never"), "signatures": len(d.signatures),
            "compiled": bool(d.signatures), "ir_source": None, "sites": {kind: {} for kind in SITE_KINDS},
            "hot_sites": [], "clean": None, "ok": None, "error": None,
        }
        if d.signatures:
            try:
                try:
                    with warnings.catch_warnings():
                        # "Inspection disabled for cached code": handled by recompiling.
                        warnings.simplefilter("ignore")
                        irs = d.inspect_llvm()
                    entry["ir_source"] = "dispatcher"
                    if not irs or not all(irs.values()):
                        raise ValueError("empty IR")
                except Exception:
                    irs = _recompiled_ir(d)
                    entry["ir_source"] = "recompiled"
                for ir in irs.values():
                    res = scan_llvm_ir(ir)
                    for kind, counts in res["sites"].items():
                        for sym, c in counts.items():
                            entry["sites"][kind][sym] = entry["sites"][kind].get(sym, 0) + c
                    entry["hot_sites"].extend(res["hot_sites"])
                entry["clean"] = not entry["hot_sites"]
                # nogil=False holds the GIL for the whole call without any call site to find.
                entry["ok"] = entry["clean"] and entry["nogil"]
            except Exception as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
        out.append(entry)
    return out
