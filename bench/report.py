"""Figures, the printed table and ``results.json``.

A :class:`Figure` carries its own reference, measured in the same run, so that a figure read on a
noisy machine is always judged against a baseline taken under the same noise.

``ratio`` is always ``value / reference``; ``better`` says which direction is good. For a throughput
(``better="higher"``) a ratio of 0.8 means 20 % slower than the reference; for a latency
(``better="lower"``) a ratio of 1.25 means 25 % slower.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

Better = Literal["higher", "lower"]


@dataclass(frozen=True)
class Figure:
    """One measured number, beside the reference it should be read against."""

    name: str
    value: float
    unit: str
    reference_name: str
    reference: float
    better: Better = "higher"

    @classmethod
    def baseline(cls, name: str, value: float, unit: str, better: Better = "higher") -> Figure:
        """A reference figure: its own reference, so its ratio is 1."""
        return cls(name, value, unit, reference_name=name, reference=value, better=better)

    @classmethod
    def against(cls, name: str, value: float, reference: Figure) -> Figure:
        """A figure compared with ``reference`` (same unit and direction)."""
        return cls(
            name,
            value,
            reference.unit,
            reference_name=reference.name,
            reference=reference.value,
            better=reference.better,
        )

    @property
    def ratio(self) -> float | None:
        """``value / reference``, or ``None`` when the reference is zero or not a number."""
        if self.reference == 0 or not math.isfinite(self.reference):
            return None
        return self.value / self.reference


@dataclass(frozen=True)
class Failure:
    """A benchmark module that raised or ran out of time."""

    module: str
    error: str


def median_figures(rounds: Sequence[Sequence[Figure]]) -> list[Figure]:
    """One figure per name: the median value and the median reference over the rounds.

    Order follows the first round that has the figure; a figure missing from some rounds (its
    module failed there) is the median of the rounds that have it.
    """
    by_name: dict[str, list[Figure]] = {}
    for figures in rounds:
        for fig in figures:
            by_name.setdefault(fig.name, []).append(fig)
    return [
        replace(
            figs[0],
            value=statistics.median(f.value for f in figs),
            reference=statistics.median(f.reference for f in figs),
        )
        for figs in by_name.values()
    ]


def to_json(figures: Iterable[Figure]) -> dict[str, dict[str, object]]:
    """The ``results.json`` document: one object per figure, keyed by figure name."""
    out: dict[str, dict[str, object]] = {}
    for fig in figures:
        ratio = fig.ratio
        out[fig.name] = {
            "value": _round(fig.value),
            "unit": fig.unit,
            "reference": _round(fig.reference),
            "reference_name": fig.reference_name,
            "ratio": None if ratio is None else round(ratio, 3),
            "better": fig.better,
        }
    return out


def write_json(path: Path, figures: Iterable[Figure]) -> None:
    """Write ``results.json`` (sorted keys, so that diffs between runs stay readable)."""
    doc = to_json(figures)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")


_HEADER = ("figure", "value", "unit", "reference", "ref value", "ratio")


def format_table(figures: Sequence[Figure], failures: Sequence[Failure] = ()) -> str:
    """A plain-text table; the ratio column gets an arrow telling which direction is better."""
    rows = [_HEADER]
    for fig in figures:
        ratio = fig.ratio
        arrow = "↑" if fig.better == "higher" else "↓"
        rows.append(
            (
                fig.name,
                _format_number(fig.value),
                fig.unit,
                "(itself)" if fig.reference_name == fig.name else fig.reference_name,
                _format_number(fig.reference),
                "-" if ratio is None else f"{ratio:.2f} {arrow}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    numeric = {1, 4, 5}
    lines = []
    for index, row in enumerate(rows):
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.extend(f"FAILED {failure.module}: {failure.error}" for failure in failures)
    return "\n".join(lines)


def _round(value: float) -> float:
    return round(value, 3) if math.isfinite(value) else value


def _format_number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
