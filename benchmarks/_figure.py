"""A row of the table: what clientreg measured, what it was compared with, the target it must meet.

A measurement declares its rows up front (`Row`), so a measurement that cannot run here (a
feature not landed yet, no PostgreSQL, no Langroid wheel) still shows its rows, marked SKIP
or ERROR with the reason, and the run goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from benchmarks._stats import Sample

Status = Literal["measured", "skipped", "error"]
CONTEXT = "(context)"


class Skip(Exception):
    """Raised by a measurement that cannot run on this machine; the message says why."""


@dataclass(frozen=True)
class Baseline:
    """What clientreg is compared with in one row: a sample, or the reason there is none."""

    name: str
    sample: Sample | None
    missing: str = ""

    def ratio(self, ours: Sample | None) -> float | None:
        """clientreg's median over this baseline's median."""
        if ours is None or self.sample is None or self.sample.median == 0:
            return None
        return ours.median / self.sample.median


@dataclass(frozen=True)
class Figure:
    """One measured (or failed) row."""

    key: str
    label: str
    unit: str  # "s", "bytes" or "count"
    target: str
    conditions: str
    ours: Sample | None
    baselines: tuple[Baseline, ...] = ()
    passed: bool | None = None  # None: context only, or not measured
    note: str = ""
    status: Status = "measured"
    reason: str = ""

    @property
    def result(self) -> str:
        """PASS, FAIL, SKIP, ERROR, or '-' for a context row."""
        if self.status == "skipped":
            return "SKIP"
        if self.status == "error":
            return "ERROR"
        if self.passed is None:
            return "-"
        return "PASS" if self.passed else "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "unit": self.unit,
            "target": self.target,
            "conditions": self.conditions,
            "status": self.status,
            "reason": self.reason,
            "result": self.result,
            "passed": self.passed,
            "clientreg": None if self.ours is None else self.ours.to_json(),
            "baselines": [
                {
                    "name": b.name,
                    "sample": None if b.sample is None else b.sample.to_json(),
                    "missing": b.missing,
                    "ratio": b.ratio(self.ours),
                }
                for b in self.baselines
            ],
            "note": self.note,
        }


@dataclass(frozen=True)
class Row:
    """A row a measurement promises: its key, label, unit, target and conditions."""

    key: str
    label: str
    unit: str
    target: str
    conditions: str

    def for_counts(self, counts: Any) -> Row:
        """The row with ``{field}`` placeholders filled from the run's counts (`benchmarks._context.Counts`)."""
        values = vars(counts)
        return Row(
            self.key,
            self.label.format(**values),
            self.unit,
            self.target.format(**values),
            self.conditions.format(**values),
        )

    def measured(
        self,
        ours: Sample | None,
        baselines: Sequence[Baseline] = (),
        *,
        passed: bool | None = None,
        note: str = "",
        error: str = "",
    ) -> Figure:
        """The row with its values; ``error`` marks clientreg's side as failed (baselines still shown)."""
        status: Status = "error" if error else "measured"
        return Figure(
            self.key,
            self.label,
            self.unit,
            self.target,
            self.conditions,
            ours,
            tuple(baselines),
            None if error else passed,
            note,
            status,
            error,
        )

    def failed(self, status: Status, reason: str) -> Figure:
        """The row when its measurement could not run."""
        return Figure(self.key, self.label, self.unit, self.target, self.conditions, None, (), None, "", status, reason)


@dataclass(frozen=True)
class Measurement:
    """A group of rows measured together; ``section`` is what ``--only`` selects."""

    section: str
    rows: tuple[Row, ...]
    run: Callable[[Any], list[Figure]]  # given the run's Context

    def row(self, key: str) -> Row:
        """The declared row with this key."""
        for row in self.rows:
            if row.key == key:
                return row
        raise KeyError(key)


def describe_error(exc: BaseException) -> str:
    """One line for an exception: its type and the first line of its message, kept short."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
