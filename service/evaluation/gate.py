"""The quality gate (trafilatura style): measured totals against pinned floors in a JSON file.

Floors only move up on their own (``--raise-floors``); lowering one needs an explicit reason,
which is recorded in the file's ``history`` — never silently.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

LOWER_IS_BETTER = frozenset({"false_abstention_rate", "false_abstention_without_extract"})


@dataclass(frozen=True, slots=True)
class GateFailure:
    metric: str
    value: float | None
    floor: float

    def __str__(self) -> str:
        relation = "above the ceiling" if self.metric.split(".", 1)[-1] in LOWER_IS_BETTER else "below the floor"
        return f"{self.metric} = {self.value} is {relation} {self.floor}"


def check_gate(totals_by_set: dict[str, dict[str, float | None]], floors: dict[str, float]) -> list[GateFailure]:
    """Metrics are named ``SET.METRIC``; a missing value fails too (the gate must not pass by omission)."""
    failures = []
    for key, floor in sorted(floors.items()):
        set_name, _, metric = key.partition(".")
        value = totals_by_set.get(set_name, {}).get(metric)
        worse = value is None or (value > floor if metric in LOWER_IS_BETTER else value < floor)
        if worse:
            failures.append(GateFailure(key, value, floor))
    return failures


def raise_floors(
    gate: dict[str, Any], totals_by_set: dict[str, dict[str, float | None]], *, margin: float = 0.05
) -> dict[str, float]:
    """Move each floor up to (measured - margin) where that is higher; never down. Returns the changes."""
    changes: dict[str, float] = {}
    floors: dict[str, float] = gate["floors"]
    for key, floor in floors.items():
        set_name, _, metric = key.partition(".")
        value = totals_by_set.get(set_name, {}).get(metric)
        if value is None:
            continue
        candidate = round(value + margin if metric in LOWER_IS_BETTER else value - margin, 3)
        better = candidate < floor if metric in LOWER_IS_BETTER else candidate > floor
        if better:
            changes[key] = candidate
    if changes:
        floors.update(changes)
        gate.setdefault("history", []).append(
            {"date": time.strftime("%Y-%m-%d"), "change": "raised", "floors": dict(changes)}
        )
    return changes


def lowered_without_reason(gate: dict[str, Any]) -> list[str]:
    """Floors below an earlier recorded value with no 'lowered' history entry giving a reason."""
    problems = []
    best: dict[str, float] = {}
    for entry in gate.get("history", []):
        for key, value in entry.get("floors", {}).items():
            lower_better = key.split(".", 1)[-1] in LOWER_IS_BETTER
            if entry.get("change") == "lowered":
                if not entry.get("reason"):
                    problems.append(f"{key}: lowered in history without a reason")
                best[key] = value
            elif key not in best or (value < best[key] if lower_better else value > best[key]):
                best[key] = value
    for key, floor in gate["floors"].items():
        if key in best:
            lower_better = key.split(".", 1)[-1] in LOWER_IS_BETTER
            if (floor > best[key]) if lower_better else (floor < best[key]):
                problems.append(f"{key}: floor {floor} is below its recorded {best[key]} and no reason is given")
    return problems


def gate_problems(gate: dict[str, Any], totals_by_set: dict[str, dict[str, float | None]]) -> list[str]:
    """Everything that fails the gate, as lines to print: floors lowered silently, then totals below them."""
    return lowered_without_reason(gate) + [str(f) for f in check_gate(totals_by_set, gate["floors"])]
