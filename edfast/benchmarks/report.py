"""Writing a run's results: the CSV (one row per case, M and competitor, with the machine),
the Markdown summary (the table README shows), and two plots (step time and peak memory
against M)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Optional

from edfast.benchmarks import MeasurementError

CSV_FIELDS = [
    "suite", "device", "date", "case", "description", "competitor", "m", "batch", "status", "note",
    "median_ms", "iqr_ms", "runs", "time_ratio", "peak_mb", "memory_ratio", "memory_method", "peak_resolution_mb",
    "gflop", "negatives_mb", "floor_ms", "floor_materialised_ms", "floor_fraction",
    "gemm_gflops", "bandwidth_gbs", "load", "cpu", "cores", "threads", "torch", "gpu",
]


def _fmt(value, spec: str = ".3g", scale: float = 1.0) -> str:
    return "" if value is None else format(value * scale, spec)


def csv_row(row: dict) -> Dict[str, str]:
    """A result row as CSV text: seconds -> ms, bytes -> MB, FLOPs -> GFLOP."""
    out = {k: row.get(k, "") for k in CSV_FIELDS}
    out.update({
        "median_ms": _fmt(row.get("median_s"), ".4g", 1e3), "iqr_ms": _fmt(row.get("iqr_s"), ".3g", 1e3),
        "time_ratio": _fmt(row.get("time_ratio"), ".3f"), "memory_ratio": _fmt(row.get("memory_ratio"), ".3f"),
        "peak_mb": _fmt(row.get("peak_bytes"), ".4g", 2.0**-20), "gflop": _fmt(row.get("flops"), ".4g", 1e-9),
        "peak_resolution_mb": _fmt(row.get("memory_resolution"), ".3g", 2.0**-20),
        "negatives_mb": _fmt(row.get("negatives_bytes"), ".4g", 2.0**-20),
        "floor_ms": _fmt(row.get("floor_s"), ".4g", 1e3),
        "floor_materialised_ms": _fmt(row.get("floor_materialised_s"), ".4g", 1e3),
        "floor_fraction": _fmt(row.get("floor_fraction"), ".3f"),
        "gemm_gflops": _fmt(row.get("gemm_rate"), ".4g", 1e-9),
        "bandwidth_gbs": _fmt(row.get("bandwidth"), ".4g", 1e-9), "load": _fmt(row.get("load"), ".2f"),
    })
    return out


def write_csv(rows: List[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow(csv_row(row))


_TIMING_KEYS = ("median_s", "iqr_s", "time_ratio", "floor_fraction")


def _cell(row: dict, key: str, spec: str, scale: float = 1.0) -> str:
    """A figure of an ``ok`` row as table text. A peak memory (or a ratio of peaks) skipped on
    purpose, or a time of a memory-only row (``timing_skipped``: the quick suite's memory
    sweep), reads "skipped"; any other missing figure raises :class:`MeasurementError`: the
    table never shows a hole or "n/a" (DESIGN §6)."""
    if row.get(key) is not None:
        return format(row[key] * scale, spec)
    if key in ("peak_bytes", "memory_ratio") and row.get("memory_skipped"):
        return "skipped"
    if key in _TIMING_KEYS and row.get("timing_skipped"):
        return "skipped"
    raise MeasurementError(f"{row['case']} / {row['competitor']} at M={row['m']}: no {key} to report")


def table(rows: List[dict]) -> str:
    """The Markdown results table (also printed by the runner)."""
    lines = [
        "| case | M | competitor | median ms | IQR ms | edfast/this time | peak MB | edfast/this mem "
        "| GFLOP | floor ms | % of floor |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['case']} | {r['m']} | {r['competitor']} | {r['status']}: {r['note']} "
                         "| | | | | | | |")
            continue
        cells = [_cell(r, "median_s", ".1f", 1e3), _cell(r, "iqr_s", ".1f", 1e3), _cell(r, "time_ratio", ".2f"),
                 _cell(r, "peak_bytes", ".1f", 2.0**-20), _cell(r, "memory_ratio", ".2f"),
                 _cell(r, "flops", ".2f", 1e-9), _cell(r, "floor_s", ".1f", 1e3),
                 _cell(r, "floor_fraction", ".1f", 100)]
        lines.append(f"| {r['case']} | {r['m']} | {r['competitor']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def checks_table(checks: List[dict]) -> str:
    """The targets; a check skipped on purpose (memory under --no-memory) reads "skipped"."""
    lines = ["| case | target | value | limit | met | measured |", "| --- | --- | ---: | ---: | --- | --- |"]
    for c in checks:
        value, met = ("skipped", "skipped") if c["ok"] is None else \
            (f"{c['value']:.3f}", "yes" if c["ok"] else "**no**")
        lines.append(f"| {c['case']} | {c['label']} | {value} | {c['target']:g} | {met} | {c['detail']} |")
    return "\n".join(lines)


def markdown(rows: List[dict], checks: List[dict], header: Dict[str, str]) -> str:
    """The summary: how it was measured, the table, the targets."""
    lines = [f"# edfast benchmarks: {header['title']}", ""]
    lines += [f"- {key}: {value}" for key, value in header.items() if key != "title"]
    lines += ["", table(rows), "", "## Targets", "", checks_table(checks), ""]
    return "\n".join(lines)


def plot(rows: List[dict], key: str, ylabel: str, scale: float, path: Path) -> Optional[Path]:
    """One panel per case, one line per competitor, ``key`` against M (log-log); None when
    matplotlib is missing or nothing was measured."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    cases = list(dict.fromkeys(r["case"] for r in rows if r.get(key)))
    swept = [c for c in cases if len({r["m"] for r in rows if r["case"] == c and r.get(key)}) > 1]
    cases = swept or cases  # a curve needs several Ms; single-M cases are in the table
    if not cases:
        return None
    fig, axes = plt.subplots(1, len(cases), figsize=(4.5 * len(cases), 3.6), squeeze=False)
    for ax, case in zip(axes[0], cases):
        mine = [r for r in rows if r["case"] == case and r.get(key)]
        for competitor in dict.fromkeys(r["competitor"] for r in mine):
            points = sorted((r["m"], r[key] * scale) for r in mine if r["competitor"] == competitor)
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=competitor)
        values = [r[key] for r in mine]
        ax.set_xscale("log", base=2)
        if max(values) > 4 * min(values):  # log only where it spans a range; else it hides ticks
            ax.set_yscale("log")
        ax.set_ylim(bottom=0 if ax.get_yscale() == "linear" else None)
        ax.set_title(case, fontsize=9)
        ax.set_xlabel("M (negatives per data point)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
