"""Large-batch training measured: ``edfast train toy`` at B=65536 against B=1024, one process
against two (issue 12).

Every case is a fresh ``python -m edfast train toy`` (M=32, ``--chunk-size 4``, one torch
thread per process, float32) on this machine's CPU; its metrics.json gives the training
throughput (rows/s = batch size x steps / training time, evaluation excluded) and each
process's peak resident memory at the end of training (VmHWM; the process's whole footprint,
torch's libraries included). Cases run on the loss's default path (``--fused auto``: the fused
MLP kernel where edfast has one, which never materialises the negatives, so ``--chunk-size``
has nothing to bound) and on the generic path (``--fused off``, where ``--chunk-size 4``
evaluates the negatives 4 at a time under recomputation), each for the whole batch at once
and for micro-batches of 1024 rows per process (``--accumulate``).

Check: peak memory at B=65536 <= 2 x the same path's at B=1024 + the batch's own bytes
(B x 2 float32). Results: ``bench/results/large-batch-<date>.md`` and ``.csv``, with the
machine and its load. A figure that cannot be measured fails the run (exit status 1).

    .venv/bin/python bench/large_batch.py            # about 5-10 minutes on 2 cores
    .venv/bin/python bench/large_batch.py --quick    # a smoke test of the script (B=256 vs 1024)
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
M, CHUNK, MICRO = 32, 4, 1024
EVAL = ["--resolution", "20", "--num-samples", "50", "--sample-steps", "2"]  # keep evaluation short


def machine() -> dict:
    """CPU model, cores, memory, torch version, the commit measured."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_gb = None
    try:
        with open("/proc/meminfo") as f:
            mem_gb = round(int(next(l for l in f if l.startswith("MemTotal")).split()[1]) / 2**20, 1)
    except (OSError, StopIteration):
        pass
    torch_version = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                                   capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": mem_gb, "torch": torch_version,
            "python": platform.python_version(), "commit": commit + (" (with uncommitted changes)" if dirty else "")}


def run_case(batch: int, nproc: int, fused: str, micro: bool, steps: int, workdir: Path) -> dict:
    """One training run in fresh processes; returns its figures (raises if one is missing)."""
    accumulate = max(1, batch // nproc // MICRO) if micro else 1
    out = workdir / f"b{batch}-n{nproc}-{fused}-a{accumulate}"
    argv = [sys.executable, "-m", "edfast", "train", "toy", "--batch-size", str(batch), "--m", str(M),
            "--chunk-size", str(CHUNK), "--steps", str(steps), "--accumulate", str(accumulate),
            "--nproc", str(nproc), "--fused", fused, "--threads", "1", "--device", "cpu", "--quiet",
            "--out", str(out), *EVAL]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"case B={batch} nproc={nproc} fused={fused} failed "
                           f"(exit {proc.returncode}): {proc.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    per_rank = metrics.get("train_peak_rss_mb_per_rank") or []
    before = metrics.get("rss_before_train_mb_per_rank") or []
    for name, values in (("peak memory", per_rank), ("memory before training", before)):
        if len(values) != nproc or not all(isinstance(v, (int, float)) and v > 0 for v in values):
            raise RuntimeError(f"case B={batch} nproc={nproc}: no {name} for every rank: {values}")
    if not metrics.get("rows_per_s", 0) > 0:
        raise RuntimeError(f"case B={batch} nproc={nproc}: no throughput in metrics.json")
    return {
        "path": "fused auto" if fused == "auto" else "generic (--fused off)",
        "micro": micro, "batch": batch, "nproc": nproc, "accumulate": accumulate,
        "micro_batch": batch // nproc // accumulate, "steps": steps,
        "rows_per_s": metrics["rows_per_s"], "train_time_s": metrics["train_time_s"],
        "peak_rss_mb_max_rank": max(per_rank), "peak_rss_mb_per_rank": " ".join(map(str, per_rank)),
        # What training added to each process: its peak over its resident size at the start.
        "training_mb_max_rank": round(max(p - b for p, b in zip(per_rank, before)), 1),
        "batch_mb": batch * 2 * 4 / 2**20, "wall_s": round(wall, 1),
        "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", type=int, default=65536, help="the large batch (default: 65536)")
    parser.add_argument("--small", type=int, default=1024, help="the reference batch (default: 1024)")
    parser.add_argument("--large-steps", type=int, default=3, help="steps at the large batch")
    parser.add_argument("--small-steps", type=int, default=30, help="steps at the small batch")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test of the script: B=2048 vs 1024, 2 steps (not a result)")
    args = parser.parse_args(argv)
    if args.quick:
        args.large, args.small, args.large_steps, args.small_steps = 2048, 1024, 2, 2

    info = machine()
    rows = []
    with tempfile.TemporaryDirectory(prefix="edfast-large-batch-") as tmp:
        for fused in ("auto", "off"):
            for nproc in (1, 2):
                for batch, steps, micro in ((args.small, args.small_steps, False),
                                            (args.large, args.large_steps, False),
                                            (args.large, args.large_steps, True)):
                    row = run_case(batch, nproc, fused, micro, steps, Path(tmp))
                    print(json.dumps(row), flush=True)
                    rows.append(row)

    checks = []
    for row in rows:
        if row["batch"] != args.large:
            continue
        small = next(r for r in rows if r["batch"] == args.small and r["path"] == row["path"]
                     and r["nproc"] == row["nproc"] and not r["micro"])
        limit = 2 * small["peak_rss_mb_max_rank"] + row["batch_mb"]
        checks.append({**row, "small_peak": small["peak_rss_mb_max_rank"], "limit": limit,
                       "small_added": small["training_mb_max_rank"],
                       "met": row["peak_rss_mb_max_rank"] <= limit,
                       "speed_vs_small": row["rows_per_s"] / small["rows_per_s"]})
    write(args, info, rows, checks)
    return 0


def write(args, info: dict, rows: list, checks: list) -> None:
    today = datetime.date.today().isoformat()
    name = f"large-batch{'-quick' if args.quick else ''}-{today}"
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / f"{name}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*rows[0], *info])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, **info})

    def speedup(row):  # rows/s against the same case in one process
        one = next(r for r in rows if r["nproc"] == 1 and
                   all(r[k] == row[k] for k in ("path", "batch", "micro")))
        return row["rows_per_s"] / one["rows_per_s"]

    loads = [r["load_before"] for r in rows] + [r["load_after"] for r in rows]
    lines = [
        f"# Large-batch training, `edfast train toy`, CPU ({today})",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB; torch {info['torch']}, "
        f"Python {info['python']}; edfast {info['commit']}. One torch thread per process. "
        f"1-minute load average during the runs: {min(loads):.1f}-{max(loads):.1f} "
        f"(other work on the machine slows every case).",
        "",
        f"Command: `.venv/bin/python bench/large_batch.py{' --quick' if args.quick else ''}`. Each case is a "
        f"fresh `python -m edfast train toy --m {M} --chunk-size {CHUNK} --threads 1` (MLP 2-128-128-"
        "128-128-1, Gaussian noise, float32); rows/s = batch x steps / training time (evaluation "
        "excluded, the first step included); peak memory = each process's VmHWM at the end of "
        "training, its whole resident footprint (torch's libraries included), the largest over "
        "the ranks; added by training = that peak less the process's resident size when training "
        "started (imports, data and model already in memory), the largest over the ranks. Paths: `fused auto` is the default (the fused MLP kernel where edfast has "
        f"one: it never holds the negatives, so `--chunk-size` changes nothing); `generic` is "
        f"`--fused off`, where `--chunk-size {CHUNK}` evaluates the negatives {CHUNK} at a time "
        f"under recomputation. `--accumulate` > 1 rows: micro-batches of {MICRO} rows per process.",
        "",
        "| path | B | processes | accumulate | micro-batch | steps | rows/s | x 1 process | peak MB (max rank) | per rank MB | added by training MB | load before/after |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['path']} | {r['batch']} | {r['nproc']} | {r['accumulate']} | {r['micro_batch']} | "
                     f"{r['steps']} | {r['rows_per_s']:.0f} | {speedup(r):.2f} | {r['peak_rss_mb_max_rank']:.1f} | "
                     f"{r['peak_rss_mb_per_rank']} | {r['training_mb_max_rank']:.1f} | "
                     f"{r['load_before']}/{r['load_after']} |")
    lines += [
        "",
        f"## Peak memory at B={args.large} <= 2 x B={args.small}'s + the batch's own bytes",
        "",
        f"Whole footprints (the issue's check); the last two columns show what training itself "
        f"added at B={args.large} and at B={args.small}, the part that grows with the batch.",
        "",
        f"| path | processes | accumulate | peak MB | B={args.small} peak MB | limit MB | met | "
        f"rows/s vs B={args.small} | added MB | B={args.small} added MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for c in checks:
        lines.append(f"| {c['path']} | {c['nproc']} | {c['accumulate']} | {c['peak_rss_mb_max_rank']:.1f} | "
                     f"{c['small_peak']:.1f} | {c['limit']:.1f} | {'yes' if c['met'] else '**no**'} | "
                     f"{c['speed_vs_small']:.2f} | {c['training_mb_max_rank']:.1f} | {c['small_added']:.1f} |")
    (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / name}.md and .csv")


if __name__ == "__main__":
    sys.exit(main())
