"""What machine, libraries and checkout produced a figure: one record for bench, profile and
compare JSON alike (the report groups figures by it)."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import time
from pathlib import Path


def environment() -> dict:
    """Versions, thread counts, CPU model and host of this process (for the JSON record)."""
    import numba
    import numpy as np
    import scipy

    import covertreex
    from covertreex.threads import THREAD_ENV, default_threads

    env = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "scipy": scipy.__version__,
        "covertreex": getattr(covertreex, "__version__", None),
        "covertreex_path": str(Path(covertreex.__file__).resolve().parent),
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": default_threads(),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "thread_env": {key: os.environ.get(key) for key in THREAD_ENV},
        "numba_threads": numba.get_num_threads(),
        "numba_max_threads": numba.config.NUMBA_NUM_THREADS,
        "numba_threading_layer": _threading_layer(),
        "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR"),
        "covertreex_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("COVERTREEX_")},
    }
    try:
        from threadpoolctl import threadpool_info

        env["threadpools"] = [
            {key: pool.get(key) for key in ("user_api", "internal_api", "num_threads", "version")}
            for pool in threadpool_info()
        ]
    except Exception:  # threadpoolctl can fail to introspect exotic builds
        env["threadpools"] = None
    return env


def cpu_model() -> str | None:
    """The 'model name' of /proc/cpuinfo (Linux), else platform.processor(), else None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def _threading_layer() -> str | None:
    import numba

    try:
        return numba.threading_layer()  # only known once a parallel kernel has run
    except ValueError:
        return None


def source_root() -> Path:
    """The directory that holds the covertreex package (the repository root in a checkout)."""
    import covertreex

    return Path(covertreex.__file__).resolve().parent.parent


def git_info(root=None) -> dict:
    """{"commit": HEAD sha or None, "dirty": bool or None} of the checkout holding the package
    (both None for an install outside a checkout)."""
    root = Path(root) if root is not None else source_root()
    out = {"commit": None, "dirty": None}
    if not (root / ".git").exists():
        return out
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if sha.returncode != 0:
            return out
        out["commit"] = sha.stdout.strip() or None
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
        if status.returncode == 0:
            out["dirty"] = bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def attach_context(record: dict) -> dict:
    """Add environment and git information (done once per JSON document)."""
    record["environment"] = environment()
    git = git_info()
    record["git_commit"] = git["commit"]
    record["git_dirty"] = git["dirty"]
    record["created_unix"] = time.time()
    return record
