"""Small shared helpers for intentflow's benchmarks: robust summaries, machine facts, tables.

Benchmarks here report the *median of sample means* with the 10th and 90th percentiles, never
a single mean: a sample hit by a GC pause, a page fault or another process is an outlier, and
the median ignores it while p10/p90 still show how noisy the run was.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any

__all__ = [
    "Summary",
    "machine_info",
    "markdown_table",
    "package_versions",
    "paired_differences",
    "summarize",
]


@dataclass(frozen=True, slots=True)
class Summary:
    """The distribution of a set of sample values (for example µs per call, one per sample)."""

    median: float
    p10: float
    p90: float
    n: int

    def to_dict(self, digits: int = 3) -> dict[str, float | int]:
        """The summary as JSON-ready numbers, rounded to ``digits`` decimals."""
        return {k: v if isinstance(v, int) else round(v, digits) for k, v in asdict(self).items()}


def summarize(values: Sequence[float]) -> Summary:
    """Median, 10th and 90th percentile of ``values`` (inclusive method: stays inside the data)."""
    if not values:
        raise ValueError("no values to summarize")
    if len(values) == 1:
        v = float(values[0])
        return Summary(v, v, v, 1)
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    return Summary(statistics.median(values), deciles[0], deciles[-1], len(values))


def paired_differences(subject: Sequence[float], baseline: Sequence[float]) -> Summary:
    """The distribution of ``subject[i] - baseline[i]`` over interleaved samples.

    When samples are interleaved, sample ``i`` of both ran under the same machine conditions,
    so the spread of the paired difference is a fairer error bar for an overhead than the two
    separate spreads.
    """
    if len(subject) != len(baseline):
        raise ValueError("paired samples must have the same length")
    return summarize([s - b for s, b in zip(subject, baseline, strict=True)])


def _cpu_model() -> str:
    # /proc/cpuinfo names the actual CPU on Linux; platform.processor() is often empty there.
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: CPU, core count, OS, Python build."""
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "python_build": " ".join(platform.python_build()),
    }


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Installed versions of ``names`` (``None`` for a package that is not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def markdown_table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], align: str | None = None
) -> str:
    """A GitHub-flavoured Markdown table; ``align`` has one ``l``/``r`` per column (default l)."""
    body = [[str(cell) for cell in row] for row in rows]
    spec = align or "l" * len(headers)
    if len(spec) != len(headers) or any(len(row) != len(headers) for row in body):
        raise ValueError("every row and the alignment need one entry per header")
    widths = [max([len(h), *(len(row[i]) for row in body)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = (
            c.rjust(w) if a == "r" else c.ljust(w)
            for c, w, a in zip(cells, widths, spec, strict=True)
        )
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        "-" * (w + 1) + ":" if a == "r" else "-" * (w + 2)
        for w, a in zip(widths, spec, strict=True)
    )
    return "\n".join([line(headers), rule + "|", *(line(row) for row in body)])
