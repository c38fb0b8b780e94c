"""Names every layer of the harness shares: the bench JSON schema, the console and ladder
columns, the one-line request error, the argument parsing of the subcommands that parse
their own and the one atomic file writer. It imports nothing of the harness or the index, so
any module may import it."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

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


def parse_arguments(args, prog: str, description: str, epilog: str, add_arguments):
    """The namespace of ``covertreex profile`` / ``covertreex report``, which parse their own
    arguments: ``args`` is an argv list (what covertreex_bench.cli passes), None for sys.argv,
    or a namespace already parsed by a parser that ``add_arguments`` filled.

    Returns (namespace, None), or (None, exit status) after --help or a usage error.
    """
    if args is not None and not isinstance(args, (list, tuple)):
        return args, None
    argv = list(sys.argv[1:] if args is None else args)
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    try:
        namespace = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed)
        return None, exc.code if isinstance(exc.code, int) else 2
    namespace.argv = argv
    return namespace, None


def write_atomic(path, text: str) -> None:
    """Replace the file ``path`` by ``text`` (UTF-8) in one step: the text goes to a unique
    temporary file in the target's folder (``tempfile.mkstemp``), then ``os.replace`` moves it
    over ``path``. Concurrent writers never collide (the last rename wins) and readers see the
    old file or the new one, never a partial one. Creates the folder; OSError naming ``path``
    when it cannot be written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_writable(path, what: str = "output") -> None:
    """BenchError naming ``path`` and the fix unless a file can be created at ``path``: its folder
    exists or can be made, is a folder and accepts a new file. Called before any slow work."""
    target = Path(path)
    if target.is_dir():
        raise BenchError(f"{what} path {target} is a directory; give a file name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise BenchError(f"{what} path {target} cannot be written ({exc.strerror or exc}); "
                         f"choose a writable folder") from None
