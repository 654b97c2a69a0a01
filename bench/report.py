"""What a benchmark suite returns, and how the runner prints and saves it.

A suite produces :class:`Figure` records. Each carries its own statistics, the references or
floors it is compared with (measured in the same run), the ratio, the target and whether it
passed; informational figures have ``passed=None``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from timing import Stats

__all__ = ["Figure", "Reference", "SuiteResult", "format_summary", "format_table"]


@dataclass
class Reference:
    """A floor or reference an operation is compared with.

    ``kind`` is ``"floor"`` (the least any implementation must spend, e.g. a bare compiled
    forward pass) or ``"reference"`` (what a plain alternative costs, e.g. a matplotlib redraw).
    ``ratio`` is computed from medians; ``ratio_of`` says which way round.
    """

    name: str
    kind: str
    median: float
    p95: float
    n: int
    ratio: float
    ratio_of: str

    @classmethod
    def from_stats(
        cls, name: str, kind: str, stats: Stats, ours: Stats, *, ours_over_ref: bool
    ) -> Reference:
        """Build a reference from its timings and ours (ratio of medians)."""
        if ours_over_ref:
            ratio, ratio_of = ours.median / stats.median, "ours/" + kind
        else:
            ratio, ratio_of = stats.median / ours.median, kind + "/ours"
        return cls(name, kind, stats.median, stats.p95, stats.n, ratio, ratio_of)


@dataclass
class Figure:
    """One measured figure.

    Attributes
    ----------
    name : str
        What was measured.
    unit : str
        ``"ms"`` for timings, ``"MB"`` for memory, ``"bool"`` for checks.
    median, p95 : float or None
        Statistics of the samples (None for a single value).
    n : int
        Number of samples (timed calls, control changes…).
    value : float or None
        The figure itself when it is not a distribution (memory growth); else the median.
    references : list of Reference
        Floors or references measured in the same run; the first one is the one the target uses.
    target : str
        The target in words (``"p95 ≤ 25 ms"``), empty for informational figures.
    threshold : float or None
        The limit actually applied, in ``unit`` (for a ratio target, factor × floor).
    statistic : str
        Which statistic is compared with ``threshold`` (``"p95"``, ``"median"``, ``"value"``).
    passed : bool or None
        Pass/fail, None when informational.
    note : str
        One line of context.
    extra : dict
        Anything else worth keeping (sample details, cache counters…).
    """

    name: str
    unit: str = "ms"
    median: float | None = None
    p95: float | None = None
    n: int = 0
    value: float | None = None
    references: list[Reference] = field(default_factory=list)
    target: str = ""
    threshold: float | None = None
    statistic: str = ""
    passed: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def timed(cls, name: str, stats: Stats, **kwargs: Any) -> Figure:
        """A timing figure from :class:`Stats`."""
        extra = {"mean": stats.mean, "min": stats.min, "max": stats.max}
        extra.update(kwargs.pop("extra", {}))
        return cls(
            name,
            "ms",
            stats.median,
            stats.p95,
            stats.n,
            stats.median,
            extra=extra,
            **kwargs,
        )

    def check(self, statistic: str, threshold: float, target: str, *, strict: bool = False) -> None:
        """Set the target and decide pass/fail: ``statistic`` ≤ ``threshold`` (< if strict)."""
        observed = {"p95": self.p95, "median": self.median, "value": self.value}[statistic]
        self.statistic = statistic
        self.threshold = threshold
        self.target = target
        if observed is None:
            self.passed = False
        else:
            self.passed = observed < threshold if strict else observed <= threshold

    def as_json(self) -> dict[str, Any]:
        """A JSON-friendly dict; the first reference is repeated as ``compared_to``."""
        data = asdict(self)
        first = self.references[0] if self.references else None
        # The floor or reference the target (or the headline ratio) uses.
        data["compared_to"] = asdict(first) if first else None
        data["ratio"] = first.ratio if first else None
        data["ratio_of"] = first.ratio_of if first else None
        data["result"] = {True: "PASS", False: "FAIL", None: "info"}[self.passed]
        return data


@dataclass
class SuiteResult:
    """Everything one suite measured."""

    suite: str
    description: str
    figures: list[Figure]
    context: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "bool":
        return "yes" if value else "no"
    return f"{value:.1f} {unit}"


def format_table(result: SuiteResult) -> str:
    """The suite's figures as a fixed-width text table (ms with one decimal)."""
    labels = [f.name for f in result.figures]
    labels += [f"  {r.kind}: {r.name}" for f in result.figures for r in f.references]
    width_name = max(len(label) for label in labels) + 2
    header = f"{'figure':<{width_name}}{'median':>11}{'p95':>11}{'n':>7}   {'target':<44}result"
    lines = [f"== suite: {result.suite} — {result.description}", header, "-" * (len(header) + 2)]
    for figure in result.figures:
        shown = figure.median if figure.median is not None else figure.value
        result_text = {True: "PASS", False: "FAIL", None: "info"}[figure.passed]
        target = figure.target
        if figure.threshold is not None and "floor" in target:
            # A relative target: show the limit it came to in this run.
            target = f"{target} → {figure.statistic} ≤ {figure.threshold:.1f} {figure.unit}"
        lines.append(
            f"{figure.name:<{width_name}}{_num(shown, figure.unit):>11}"
            f"{_num(figure.p95, figure.unit):>11}{figure.n:>7}   {target:<44}{result_text}"
        )
        for ref in figure.references:
            label = f"  {ref.kind}: {ref.name}"
            lines.append(
                f"{label:<{width_name}}{_num(ref.median, 'ms'):>11}{_num(ref.p95, 'ms'):>11}"
                f"{ref.n:>7}   ratio {ref.ratio_of} = {ref.ratio:.2f}×"
            )
        if figure.note:
            lines.append(f"{'':<4}({figure.note})")
    return "\n".join(lines)


def format_summary(results: list[SuiteResult]) -> str:
    """One line per target with PASS/FAIL, then the totals."""
    lines = ["== summary of targets"]
    passed = failed = 0
    for result in results:
        for figure in result.figures:
            if figure.passed is None:
                continue
            observed = {"p95": figure.p95, "median": figure.median, "value": figure.value}.get(
                figure.statistic, figure.value
            )
            mark = "PASS" if figure.passed else "FAIL"
            passed += figure.passed
            failed += not figure.passed
            seen = _num(observed, figure.unit) if figure.unit != "bool" else _num(observed, "bool")
            lines.append(
                f"  {mark}  [{result.suite}] {figure.name}: {figure.statistic} {seen} "
                f"— target {figure.target}"
            )
    lines.append(f"  {passed} passed, {failed} failed")
    return "\n".join(lines)
