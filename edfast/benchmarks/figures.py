"""Derived figures: edfast/competitor ratios on every row, and the issues' targets (Checks).

Rows are plain dicts (one per case, M and competitor; see edfast/benchmarks/run.py). Ratios
are always the case's primary edfast configuration over the row's competitor, taken from the
same run: below 1 means edfast is faster (or smaller).
"""
from __future__ import annotations

from typing import Dict, List, Optional

from edfast.benchmarks import MeasurementError
from edfast.benchmarks.cases import Case, Check


def primary_name(case: Case) -> str:
    chunk = case.edfast_chunks[0]
    return "edfast" if chunk is None else f"edfast chunk={chunk}"


def _find(rows: List[dict], case: str, competitor: str, m: int) -> Optional[dict]:
    for row in rows:
        if row["case"] == case and row["competitor"] == competitor and row["m"] == m:
            return row
    return None


def _ratio(numerator, denominator) -> Optional[float]:
    """numerator / denominator; None when either is missing (a figure skipped on purpose, or
    a competitor that is unavailable), inf for x / 0 with x > 0 (a peak too small to see)."""
    if numerator is None or denominator is None:
        return None
    if denominator <= 0:
        return 1.0 if numerator <= 0 else float("inf")
    return numerator / denominator


def add_ratios(rows: List[dict], cases: Dict[str, Case]) -> None:
    """Sets ``time_ratio`` and ``memory_ratio`` (primary edfast / this row) on every row."""
    for row in rows:
        base = _find(rows, row["case"], primary_name(cases[row["case"]]), row["m"])
        row["time_ratio"] = _ratio(base and base.get("median_s"), row.get("median_s"))
        row["memory_ratio"] = _ratio(base and base.get("peak_bytes"), row.get("peak_bytes"))


def _needed(rows: List[dict], case: str, competitor: str, m: int, key: str) -> dict:
    """The row of ``competitor`` at ``m`` with figure ``key``; raises :class:`MeasurementError`
    saying why when there is none (a figure skipped on purpose is the caller's business)."""
    row = _find(rows, case, competitor, m)
    if row is None:
        raise MeasurementError(f"no row for {competitor} at M={m} (was it run?)")
    if row["status"] != "ok":
        raise MeasurementError(f"{competitor} at M={m} is {row['status']}: {row['note']}")
    if row.get(key) is None and not (key == "peak_bytes" and row.get("memory_skipped")):
        raise MeasurementError(f"{competitor} at M={m} has no {key}")
    if row.get(key) is not None and row[key] <= 0 and not (key == "peak_bytes" and row.get("memory_resolution")):
        raise MeasurementError(f"{competitor} at M={m} has {key} = {row[key]}, too small to divide by")
    return row


def _peak(row: dict) -> float:
    """A peak as the memory targets use it: never below the measurement's resolution
    (``memory_resolution``: CPU resident-size counters lag by up to 64 pages per thread;
    0 on CUDA). A peak that small cannot be told from one at the resolution, so a target
    reads it as the resolution: flat when every peak is below it, and never a smaller
    numerator of a ratio than what could be measured (a denominator is taken as measured)."""
    return max(row["peak_bytes"], row.get("memory_resolution") or 0)


def _mb(row: dict) -> str:
    shown = f"{row['peak_bytes'] * 2.0**-20:.1f} MB"
    if row["peak_bytes"] < (row.get("memory_resolution") or 0):
        shown += f" (< resolution {row['memory_resolution'] * 2.0**-20:.2f} MB)"
    return shown


def evaluate(check: Check, case: Case, rows: List[dict]) -> dict:
    """``{"case", "label", "value", "target", "ok", "detail"}`` for one check. A memory check
    whose peaks were skipped on purpose (``memory_skipped``: --no-memory) has value and ok None
    and says so in ``detail``; a figure that is missing otherwise raises
    :class:`MeasurementError` naming the target."""
    primary = primary_name(case)
    key = "median_s" if check.kind == "time_ratio" else "peak_bytes"
    if check.kind in ("time_ratio", "memory_ratio"):
        needed = {case.m: [primary, check.against]}
    elif check.kind == "memory_flatness":
        needed = {m: [primary] for m in check.ms}
    else:
        raise ValueError(f"unknown check kind {check.kind!r}")
    try:
        found = {(name, m): _needed(rows, case.name, name, m, key) for m, names in needed.items() for name in names}
    except MeasurementError as err:
        raise MeasurementError(f"target {check.label!r} of {case.name}: {err}") from None
    result = {"case": case.name, "label": check.label, "target": check.target, "value": None, "ok": None}
    skipped = [r["memory_skipped"] for r in found.values() if r.get(key) is None]
    if skipped:
        return dict(result, detail=f"skipped: peak memory not measured ({skipped[0]})")
    if check.kind == "memory_flatness":
        peaks = {m: _peak(found[primary, m]) for m in check.ms}
        value = max(peaks.values()) / min(peaks.values()) - 1
        detail = ", ".join(f"M={m}: {_mb(found[primary, m])}" for m in check.ms)
    elif key == "peak_bytes":
        mine, theirs = found[primary, case.m], found[check.against, case.m]
        if theirs[key] <= 0:
            raise MeasurementError(f"target {check.label!r} of {case.name}: {check.against} at M={case.m} "
                                   f"has {key} = {theirs[key]}, too small to divide by")
        value = _peak(mine) / theirs[key]
        detail = f"{primary} {_mb(mine)} / {check.against} {_mb(theirs)} at M={case.m}"
    else:
        mine, theirs = found[primary, case.m], found[check.against, case.m]
        value = mine[key] / theirs[key]
        detail = (f"{primary} {mine[key] * 1e3:.1f} ms / {check.against} "
                  f"{theirs[key] * 1e3:.1f} ms at M={case.m}")
    return dict(result, value=value, ok=value <= check.target, detail=detail)


def evaluate_all(cases: List[Case], rows: List[dict]) -> List[dict]:
    """Every check of ``cases``; raises one :class:`MeasurementError` naming every target
    whose figures are missing."""
    checks, missing = [], []
    for case in cases:
        for check in case.checks:
            try:
                checks.append(evaluate(check, case, rows))
            except MeasurementError as err:
                missing.append(str(err))
    if missing:
        raise MeasurementError("targets could not be evaluated:\n  " + "\n  ".join(missing))
    return checks
