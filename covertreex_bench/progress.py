"""Progress of the harness's long phases (data, backend, build, queries, reference) on stderr.

The line follows tqdm's and asv's conventions: a label, done/total with a unit, the percentage,
the elapsed time and an ETA from the rate so far, rewritten in place on a terminal and at most
every ``interval`` seconds (tqdm's ``mininterval``), so a callback per block costs nothing.
Where the stream is not a terminal (CI logs, pipes, files) nothing at all is written: a log
keeps the results, not the rewrites of a progress line.

A class of our own rather than tqdm: this is all the harness needs, the index may not depend on
tqdm anyway (it only calls a ``callable(done, total)``), and the silence off a terminal, which
tqdm gives only with ``disable=None``, is the default here.
"""

from __future__ import annotations

import math
import sys
import time

REDRAW_INTERVAL = 0.1


class Progress:
    """A ``callable(done, total)`` progress line for ``CoverTree.fit``, ``knn_report``,
    ``build_residual_backend`` and the harness's own loops; one instance per phase, called
    from one thread.

    On a terminal (``tty=None`` asks ``stream.isatty()``) the line reads
    ``label: done/total unit (pct%), MM:SS elapsed, ETA MM:SS`` (``ETA -`` until a rate is
    known); it ends with a newline when done >= total or on ``close()``. Elsewhere the object
    writes nothing. stream: default sys.stderr.
    """

    def __init__(self, label: str, unit: str = "rows", stream=None, tty: bool | None = None,
                 interval: float = REDRAW_INTERVAL):
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _isatty(self.stream) if tty is None else bool(tty)
        self.interval = interval
        self.start = time.perf_counter()
        self._drawn = -math.inf
        self._last = None
        self._ended = False

    def __call__(self, done: int, total: int) -> None:
        if not self.tty or self._ended:
            return
        self._last = (done, total)
        now = time.perf_counter()
        if done >= total:
            self._draw(now, end=True)
        elif now - self._drawn >= self.interval:
            self._draw(now, end=False)

    def close(self) -> None:
        """End the line (showing the latest counts) if one is open; idempotent."""
        if self.tty and not self._ended and self._last is not None:
            self._draw(time.perf_counter(), end=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def line(self, done: int, total: int, elapsed: float) -> str:
        """The text shown for ``done`` of ``total`` after ``elapsed`` seconds."""
        eta = "-"
        if done > 0 and elapsed > 0:
            eta = _clock(max(total - done, 0) * elapsed / done)
        return (f"{self.label}: {done}/{total} {self.unit} ({100.0 * done / max(total, 1):3.0f}%), "
                f"{_clock(elapsed)} elapsed, ETA {eta}")

    def _draw(self, now: float, end: bool) -> None:
        done, total = self._last
        # Carriage return and erase-to-end-of-line: a shorter line leaves nothing behind.
        text = "\r\x1b[K" + self.line(done, total, now - self.start)
        self.stream.write(text + "\n" if end else text)
        self.stream.flush()
        self._drawn = now
        self._ended = end


def _clock(seconds: float) -> str:
    """MM:SS, or H:MM:SS from an hour on (tqdm's format_interval)."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
