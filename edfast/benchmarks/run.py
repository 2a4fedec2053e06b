"""The benchmark runner: ``python bench/run.py --suite quick|full --device cpu|cuda
[--cases PATTERN]`` (also ``edfast bench ...``).

For every case of the suite and each of its Ms, the competitors' training steps are timed in
this process, interleaved round by round (so ratios compare like with like under the same
load), then each one's peak memory is measured in a fresh subprocess. Writes
``<suite>-<device>-<date>.csv``, ``.md`` and ``-time.png`` / ``-memory.png`` under
``./bench/results/`` (relative to the current directory) or ``--out DIR``, prints the table
and the paths written.

A figure the report needs that could not be measured (a competitor that crashed, a memory
child that failed, a target whose rows are missing) fails the run: nothing is written, the
errors are printed, and the exit status is 1 (DESIGN §6: never "n/a").
"""
from __future__ import annotations

import argparse
import datetime
import gc
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Optional

import torch

from edfast.benchmarks import MeasurementError, competitors, figures, machine, memory, report
from edfast.benchmarks.cases import Case, select
from edfast.benchmarks.floor import fraction_of_floor, measure_floor
from edfast.benchmarks.timing import time_interleaved

RESULTS = Path("bench") / "results"  # relative: under the current directory, not the package
# Seconds of timing per measurement and the fewest timed steps (after warm-up).
SUITES = {"quick": (1.0, 5), "full": (2.0, 10)}


def _competitors_at(case: Case, m: int, suite: str) -> List[str]:
    """All competitors at the headline M; the quick suite's other Ms (the memory sweep) run
    only edfast's primary configuration and the eager reference, which keeps it under 3 min
    (only edfast's primary configuration for a case with ``memory_sweep``)."""
    names = competitors.names(case)
    if _memory_only(case, m, suite):
        return [figures.primary_name(case)]
    if suite == "quick" and m != case.m:
        return [figures.primary_name(case), "reference eager"]
    return names


def _memory_only(case: Case, m: int, suite: str) -> bool:
    """Whether the rows of ``case`` at ``m`` measure peak memory only, untimed: the quick
    suite's sweep Ms of a case with ``memory_sweep``."""
    return case.memory_sweep and suite == "quick" and m != case.m


def _time_case(case: Case, m: int, args, rates, base: dict) -> List[dict]:
    """Rows for every competitor of ``case`` at ``m``: built and tried once each (so one that
    is unavailable or crashes becomes a row saying why), then the rest timed interleaved.
    Memory-only rows (:func:`_memory_only`) are neither built nor run here: their memory
    child runs the step (and fails the run if it crashes)."""
    batch = case.batch[args.device]
    setup = case.build(args.device, batch, m)
    floor = measure_floor(setup)
    rows, steps = [], {}
    memory_only = _memory_only(case, m, args.suite)
    for name in _competitors_at(case, m, args.suite):
        row = dict(base, case=case.name, description=case.description, competitor=name, m=m, batch=batch,
                   flops=floor.flops, negatives_bytes=floor.negatives_bytes, load=machine.load_average(),
                   floor_s=floor.seconds(*rates), floor_materialised_s=floor.seconds_materialised(*rates),
                   status="ok", note="")
        if memory_only:
            row["timing_skipped"] = row["note"] = f"memory sweep: not timed (timed at M={case.m} and in the full suite)"
            rows.append(row)
            continue
        try:
            steps[name] = competitors.make_step(name, setup)
            steps[name]()  # the first call: compiles, and shows a crash here rather than mid-timing
        except competitors.Unavailable as err:
            row.update(status="unavailable", note=str(err))
        except Exception as err:  # recorded, the other rows measured, then the run fails (main)
            row.update(status="error", note=f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:160]}")
        if row["status"] != "ok":
            steps.pop(name, None)
        rows.append(row)
    if memory_only:
        for row in rows:
            print(f"  {case.name:<14} M={m:<4} {row['competitor']:<20} memory only (not timed)", flush=True)
        return rows
    began = time.perf_counter()
    try:
        timings = time_interleaved(steps, args.device, *SUITES[args.suite], warmup=0) if steps else {}
    except Exception as err:  # a step that ran once and then failed: no figure for anyone
        raise MeasurementError(f"timing {case.name} at M={m}: {type(err).__name__}: {err}") from err
    for row in rows:
        timing = timings.get(row["competitor"])
        if timing:
            row.update(median_s=timing.median, iqr_s=timing.iqr, runs=timing.runs,
                       floor_fraction=fraction_of_floor(row["floor_s"], timing.median))
        print(f"  {case.name:<14} M={m:<4} {row['competitor']:<20} "
              + (f"{timing.median * 1e3:9.1f} ms (IQR {timing.iqr * 1e3:.1f}, {timing.runs} runs)"
                 if timing else f"{row['status']}: {row['note']}"), flush=True)
    print(f"  ({time.perf_counter() - began:.0f} s timing)", flush=True)
    steps.clear()
    torch._dynamo.reset()  # drop compiled graphs before the next case
    gc.collect()
    return rows


def _measure_memory(rows: List[dict], device: str, jobs: int, quick: bool) -> str:
    """Peak memory of every timed row, each in its own subprocess, ``jobs`` at a time (the
    figure does not depend on the timing, so children may share the cores). The quick suite
    leaves out the compiled reference, whose child would have to compile again. Raises one
    :class:`MeasurementError` naming every row whose child failed."""
    todo = [r for r in rows if r["status"] == "ok" and not (quick and r["competitor"] == "reference compiled")]
    measured = {id(r) for r in todo}
    for row in rows:
        if row["status"] == "ok" and id(row) not in measured:  # a child would recompile: 0.5-1 min
            row["memory_skipped"] = row["memory_method"] = "quick suite: the child would recompile; see the full suite"

    def one(row):
        return memory.in_subprocess(row["case"], row["competitor"], row["m"], device, row["batch"])

    methods, failures = set(), []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for row, future in [(row, pool.submit(one, row)) for row in todo]:
            try:
                answer = future.result()
            except MeasurementError as err:
                failures.append(str(err))
                print(f"  {row['case']:<14} M={row['m']:<4} {row['competitor']:<20} FAILED: {err}", flush=True)
                continue
            row["peak_bytes"], row["memory_method"] = answer["peak_bytes"], answer["method"]
            row["memory_resolution"] = answer.get("resolution_bytes", 0)
            methods.add(answer["method"])
            print(f"  {row['case']:<14} M={row['m']:<4} {row['competitor']:<20} peak "
                  f"{row['peak_bytes'] / 2**20:.1f} MB", flush=True)
    if failures:
        raise MeasurementError("peak memory could not be measured:\n  " + "\n  ".join(failures))
    return "; ".join(sorted(methods))


def parse(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edfast bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=sorted(SUITES), default="quick")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--cases", default=None, help="run only cases whose name contains PATTERN")
    parser.add_argument("--out", "--out-dir", dest="out", type=Path, default=RESULTS,
                        help="directory for the results (default: ./bench/results under the current directory)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--memory-jobs", type=int, default=None,
                        help="memory subprocesses at a time (default 2 on CPU, 1 on CUDA)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default torch's; 1 gives steadier figures on a busy machine)")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--list", action="store_true", help="list the cases and their competitors, then exit")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse(list(argv) if argv is not None else None)
    cases = select(args.cases)
    if args.list:
        for case in cases:
            print(f"{case.name:<14} {case.description}; M {case.ms}; {', '.join(competitors.names(case))}")
        return 0
    if not cases:
        print(f"no case matches {args.cases!r}")
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device here")
        return 2
    try:
        return _run(args, cases)
    except MeasurementError as err:
        print(f"edfast bench: error: {err}\nedfast bench: nothing written: a figure the report needs "
              "could not be measured", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, cases: List[Case]) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)  # memory children inherit it (memory.in_subprocess)
    started, load_before = time.perf_counter(), machine.load_average()
    date = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    described = machine.describe(args.device)
    rates = (machine.gemm_rate(args.device, 0.5), machine.copy_bandwidth(args.device, 0.5))
    print(f"{args.suite} suite on {args.device}: {described}; GEMM {rates[0] / 1e9:.1f} GFLOP/s, "
          f"copy {rates[1] / 1e9:.1f} GB/s", flush=True)
    base = dict(described, suite=args.suite, device=args.device, date=date, gemm_rate=rates[0],
                bandwidth=rates[1])
    rows = []
    for case in cases:
        for m in case.ms[args.suite]:
            rows += _time_case(case, m, args, rates, base)
    crashed = [f"{r['case']} / {r['competitor']} at M={r['m']}: {r['note']}" for r in rows if r["status"] == "error"]
    if crashed:
        raise MeasurementError("competitors crashed:\n  " + "\n  ".join(crashed))
    if args.no_memory:
        method = "skipped (--no-memory)"
        for row in rows:
            row["memory_skipped"] = row["memory_method"] = "--no-memory"
    else:
        jobs = args.memory_jobs or (1 if args.device == "cuda" else 2)  # one GPU: one child at a time
        method = _measure_memory(rows, args.device, jobs, args.suite == "quick")
    figures.add_ratios(rows, {c.name: c for c in cases})
    checks = figures.evaluate_all(cases, rows)

    header = {
        "title": f"{args.suite} suite, {args.device}, {date}",
        "machine": f"{described['cpu']}, {described['cores']} cores, {described['threads']} torch threads, "
                   f"torch {described['torch']}" + (f", {described['gpu']}" if described["gpu"] else ""),
        "measured rates": f"float32 GEMM {rates[0] / 1e9:.1f} GFLOP/s, copy bandwidth {rates[1] / 1e9:.1f} GB/s",
        "load average (1 min) before / after": f"{load_before:.2f} / {machine.load_average():.2f}",
        "timing": "competitors of a case interleaved round by round (same load drift for all), "
                  + ("CUDA events" if args.device == "cuda" else "perf_counter")
                  + f" per step, after 2 warm-up steps; >= {SUITES[args.suite][0]} s per competitor and "
                  f">= {SUITES[args.suite][1]} steps; median and IQR",
        "peak memory": method,
        "ratios": "edfast (the case's first configuration) / this competitor, same run: < 1 is edfast faster/smaller",
        "floor": "max(energy fwd+bwd FLOPs on B*(M+1) rows / GEMM rate, bytes of x+params+grads / bandwidth); "
                 "% of floor = floor / median",
    }
    text = report.markdown(rows, checks, header)  # raises, before anything is written, on a hole
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{args.suite}-{args.device}-{date}"
    report.write_csv(rows, stem.with_suffix(".csv"))
    stem.with_suffix(".md").write_text(text)
    written = [stem.with_suffix(".csv"), stem.with_suffix(".md")]
    if not args.no_plots:
        for key, label, scale, suffix in (("median_s", "step time (ms)", 1e3, "time"),
                                          ("peak_bytes", "peak memory (MB)", 2.0**-20, "memory")):
            path = report.plot(rows, key, label, scale, Path(f"{stem}-{suffix}.png"))
            written += [path] if path else []
    print("\n" + text)
    print(f"wrote {', '.join(str(p) for p in written)} in {time.perf_counter() - started:.0f} s")
    return 0
