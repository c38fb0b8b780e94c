"""The machines and environments behind the report's figures, numbered E1, E2, ..."""

from __future__ import annotations

import os

from .html import empty_block, table
from .loaders import Inputs

SECTIONS = (("environment-table", "table"),)


class Environments:
    """Distinct environments that produced figures, numbered E1, E2, ..."""

    def __init__(self):
        self.rows = []
        self._ids = {}

    def add(self, kind: str, key: tuple, info: dict) -> str:
        if key not in self._ids:
            self._ids[key] = f"E{len(self._ids) + 1}"
            self.rows.append({"id": self._ids[key], "kind": kind, **info, "files": []})
        return self._ids[key]

    def note_file(self, env_id: str, path: str) -> None:
        for row in self.rows:
            if row["id"] == env_id and path not in row["files"]:
                row["files"].append(path)


def bench_env(envs: Environments, row, kind: str = "covertreex bench") -> str:
    e = row.get("environment") or {}
    blas = ", ".join(f"{p.get('internal_api')} {p.get('version') or ''} x{p.get('num_threads')}"
                     for p in (e.get("threadpools") or []) if p.get("user_api") == "blas")
    info = {"machine": e.get("hostname") or "unknown", "cpu": e.get("cpu_model"),
            "cores": e.get("cpu_affinity") or e.get("cpu_count"), "ram": None,
            "os": e.get("platform"), "python": e.get("python"),
            "libraries": ", ".join(f"{k} {e[k]}" for k in ("numpy", "numba", "scipy") if e.get(k)),
            "threads": "; ".join(x for x in (
                ", ".join(f"{k}={v}" for k, v in (e.get("thread_env") or {}).items() if v),
                f"numba {e.get('numba_threads')} ({e.get('numba_threading_layer')})"
                if e.get("numba_threads") else "",
                f"BLAS {blas}" if blas else "") if x)}
    key = ("bench", info["machine"], info["cpu"], info["cores"], info["python"], info["libraries"],
           info["threads"])
    env_id = envs.add(kind, key, info)
    envs.note_file(env_id, row.get("file"))
    for r in envs.rows:
        if r["id"] == env_id and kind not in r["kind"]:
            r["kind"] += f" / {kind}"
    return env_id


def asv_env(envs: Environments, env: dict) -> str:
    p = env.get("params") or {}
    ram = p.get("ram")
    try:
        ram = f"{int(ram) / 2 ** 30:.1f} GiB"
    except (TypeError, ValueError):
        pass
    reqs = env.get("requirements") or {}
    info = {"machine": env.get("machine"), "cpu": p.get("cpu"), "cores": p.get("num_cpu"),
            "ram": ram, "os": p.get("os"), "python": env.get("python") or p.get("python"),
            "libraries": ", ".join(f"{k.replace('pip+', '')} {v}" for k, v in reqs.items()
                                   if isinstance(v, str) and v) or env.get("env_name"),
            "threads": None}
    key = ("asv", info["machine"], info["cpu"], info["python"], env.get("env_name"))
    env_id = envs.add("asv", key, info)
    envs.note_file(env_id, env.get("file"))
    return env_id


def section_environment(envs: Environments, inputs: Inputs) -> str:
    for path, doc in inputs.profiles:
        e = doc.get("environment") or {}
        bench_env(envs, {"environment": e, "file": str(path)}, kind="covertreex profile")
    if not envs.rows:
        return empty_block("environment-table", "No machine or environment information: no asv "
                           "results, bench / gate JSON or profiles were read.", "table")
    rows = [[r["id"], r["kind"], r.get("machine"), r.get("cpu"), r.get("cores"), r.get("ram") or "–",
             r.get("os"), r.get("python"), r.get("libraries") or "–", r.get("threads") or "–",
             ", ".join(os.path.basename(f) for f in r["files"][:6]) + (" …" if len(r["files"]) > 6 else "")]
            for r in envs.rows]
    return table("environment-table", ["env", "source", "machine", "CPU", "cores", "RAM", "OS",
                                       "Python", "libraries", "threads", "files"], rows,
                 caption="Machines and environments that produced the figures (ids used in the "
                         "tables and chart tooltips)")
