"""Derived figures: edfast/competitor ratios on every row, and the issues' targets (Checks).

Rows are plain dicts (one per case, M and competitor; see edfast/benchmarks/run.py). Ratios
are always the case's primary edfast configuration over the row's competitor, taken from the
same run: below 1 means edfast is faster (or smaller).
"""
from __future__ import annotations

from typing import Dict, List, Optional

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
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def add_ratios(rows: List[dict], cases: Dict[str, Case]) -> None:
    """Sets ``time_ratio`` and ``memory_ratio`` (primary edfast / this row) on every row."""
    for row in rows:
        base = _find(rows, row["case"], primary_name(cases[row["case"]]), row["m"])
        row["time_ratio"] = _ratio(base and base.get("median_s"), row.get("median_s"))
        row["memory_ratio"] = _ratio(base and base.get("peak_bytes"), row.get("peak_bytes"))


def evaluate(check: Check, case: Case, rows: List[dict]) -> dict:
    """``{"case", "label", "value", "target", "ok", "detail"}`` for one check; value None
    when a figure it needs was not measured (e.g. memory skipped)."""
    primary = primary_name(case)
    value, detail = None, ""
    if check.kind in ("time_ratio", "memory_ratio"):
        key = "median_s" if check.kind == "time_ratio" else "peak_bytes"
        mine, theirs = _find(rows, case.name, primary, case.m), _find(rows, case.name, check.against, case.m)
        value = _ratio(mine and mine.get(key), theirs and theirs.get(key))
        if value is not None:
            scale, unit = (1e3, "ms") if key == "median_s" else (2.0**-20, "MB")
            detail = (f"{primary} {mine[key] * scale:.1f} {unit} / {check.against} "
                      f"{theirs[key] * scale:.1f} {unit} at M={case.m}")
    elif check.kind == "memory_flatness":
        peaks = {m: (_find(rows, case.name, primary, m) or {}).get("peak_bytes") for m in check.ms}
        if all(p is not None and p > 0 for p in peaks.values()):
            value = max(peaks.values()) / min(peaks.values()) - 1
            detail = ", ".join(f"M={m}: {p / 2**20:.1f} MB" for m, p in peaks.items())
    else:
        raise ValueError(f"unknown check kind {check.kind!r}")
    return {"case": case.name, "label": check.label, "value": value, "target": check.target,
            "ok": None if value is None else value <= check.target, "detail": detail}


def evaluate_all(cases: List[Case], rows: List[dict]) -> List[dict]:
    return [evaluate(check, case, rows) for case in cases for check in case.checks]
