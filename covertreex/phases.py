"""Audit phases 1-7 as feature flags (docs/design.md, "Audit phases").

Each flag switches one change of the residual audit plan on; off keeps the
pre-audit behaviour so the harness can measure what the phase buys. Phase 0
(telemetry) is always recorded. Every combination returns the same neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

PHASE_NUMBERS = {
    "block_gemm": 1,
    "gemm_kernel_provider": 2,
    "pairwise_reuse": 3,
    "float32_staging": 4,
    "topk_selection": 5,
    "nopython_chunk_loop": 6,
    "thread_guard": 7,
}


@dataclass(frozen=True)
class Phases:
    """One boolean per audit phase.

    block_gemm:           residual tiles as V_Q V_T^T by GEMM (off: a dot product per pair)
    gemm_kernel_provider: kernel tiles from |a|^2 + |b|^2 - 2ab by GEMM on cached norms
                          (off: a broadcast (rows x cols x d) float64 difference tile)
    pairwise_reuse:       the conflict graph reuses the batch distances of the traversal
                          (off: it recomputes them pair by pair)
    float32_staging:      rows whose p allows it take V_Q V_T^T from a float32 GEMM in the
                          nopython tiles (with block_gemm and nopython_chunk_loop); a pair
                          keeps its float32 distance only where the rigorous error bound
                          shows the walk would prune it anyway, the rest and every tiny-p row
                          are float64 (README, "float32 staging"; off: float64 throughout)
    topk_selection:       each tile's pairs are offered to bounded max-heaps of k (off: every
                          tile is fully sorted together with the row's current k best)
    nopython_chunk_loop:  the tile loop runs in Numba without Python calls (off: Python
                          calls the kernel provider for every chunk)
    thread_guard:         BLAS/OpenMP/Numba thread counts pinned (off: library defaults)
    """

    block_gemm: bool = True
    gemm_kernel_provider: bool = True
    pairwise_reuse: bool = True
    float32_staging: bool = True
    topk_selection: bool = True
    nopython_chunk_loop: bool = True
    thread_guard: bool = True

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, bool):
                raise TypeError(f"Phases.{f.name} must be True or False, got {value!r}")

    @classmethod
    def all(cls) -> "Phases":
        return cls()

    @classmethod
    def baseline(cls) -> "Phases":
        return cls(**{name: False for name in PHASE_NUMBERS})

    @classmethod
    def ladder(cls) -> list[tuple[str, "Phases"]]:
        """Cumulative steps: baseline, +1, +1+2, ... up to all, as (label, Phases)."""
        steps = [("baseline", cls.baseline())]
        current = cls.baseline()
        for name, number in sorted(PHASE_NUMBERS.items(), key=lambda item: item[1]):
            current = replace(current, **{name: True})
            steps.append((f"+{number} {name}", current))
        return steps

    @classmethod
    def parse(cls, spec: str) -> "Phases":
        """'all', 'baseline', or 'NAME=0|1,...' applied to all (names as in PHASE_NUMBERS)."""
        spec = spec.strip()
        if spec in ("all", ""):
            return cls.all()
        if spec == "baseline":
            return cls.baseline()
        changes = {}
        for item in spec.split(","):
            name, sep, value = item.partition("=")
            name = name.strip()
            if not sep:
                raise ValueError(
                    f"phase setting {item!r} is not NAME=0|1; known names: {', '.join(PHASE_NUMBERS)}"
                )
            changes[check_name(name)] = parse_bool(value, f"phase {name}")
        return replace(cls.all(), **changes)

    def as_dict(self) -> dict[str, bool]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def label(self) -> str:
        on = [name for name, value in self.as_dict().items() if value]
        if len(on) == len(PHASE_NUMBERS):
            return "all"
        if not on:
            return "baseline"
        return ",".join(f"{name}={int(value)}" for name, value in self.as_dict().items())


def check_name(name: str) -> str:
    if name not in PHASE_NUMBERS:
        raise ValueError(f"unknown phase {name!r}; known phases: {', '.join(PHASE_NUMBERS)}")
    return name


def parse_bool(value: str, what: str) -> bool:
    value = value.strip()
    if value in ("1", "true", "True", "on"):
        return True
    if value in ("0", "false", "False", "off"):
        return False
    raise ValueError(f"{what} must be 0 or 1, got {value!r}")
