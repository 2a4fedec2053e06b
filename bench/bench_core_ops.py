"""Times the two core ops, ``edfast.contrastive_logsumexp`` and ``edfast.perturb``, against
their pure-PyTorch references in ``edfast.reference`` (DESIGN §6).

Every case runs the edfast op and its reference in the same process on the same inputs:
warm-up calls, then alternating rounds of ``torch.utils.benchmark.Timer.blocked_autorange``
(edfast, reference, edfast, ...; median and IQR over all blocks; on CUDA the timer
synchronises the device). Alternating spreads load from other processes over both. A large
``copy_`` measures the memory bandwidth the floors in bench/NOTES.md are compared with.

Writes ``bench/results/core-ops-<device>-<YYYY-MM-DD>.csv`` and a Markdown table beside it.

    .venv/bin/python bench/bench_core_ops.py                 # CPU, and CUDA when present
    .venv/bin/python bench/bench_core_ops.py --devices cpu --threads 1 --min-run-time 0.5

CPU cases run at 1 thread and at torch's default thread count (both recorded, column
``threads``): on a shared machine the 1-thread numbers are the stable ones.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
import torch.utils.benchmark as benchmark

import edfast
import edfast.reference as reference

RESULTS = Path(__file__).resolve().parent / "results"
ROUNDS = 5  # alternating rounds per case (edfast, reference, edfast, ...); slow cases: >= 2 runs a round


@dataclass
class Case:
    name: str
    impls: Dict[str, Callable[[], object]]  # "edfast" and "reference"
    min_bytes: int  # bytes the op must move at least (bench/NOTES.md)


# ---------------------------------------------------------------- cases


def _contrastive_case(device: str, dtype: torch.dtype, b: int, m: int) -> Case:
    g = torch.Generator(device="cpu").manual_seed(0)
    e_pos = (torch.randn(b, generator=g) * 3).to(device=device, dtype=dtype).requires_grad_()
    e_neg = (torch.randn(b, m, generator=g) * 3).to(device=device, dtype=dtype).requires_grad_()

    def run(fn):
        def step():
            v = fn(e_pos, e_neg, 1.0)
            return torch.autograd.grad(v.sum(), (e_pos, e_neg))

        return step

    size = torch.finfo(dtype).bits // 8
    acc = 8 if dtype == torch.float64 else 4
    # forward: read e_pos, e_neg; write v, L. backward: read grad_v, e_pos, e_neg, L;
    # write grad_pos, grad_neg.
    min_bytes = (size * (b + b * m + b) + acc * b) + (size * (b + b + b * m + b + b * m) + acc * b)
    return Case(
        f"contrastive_logsumexp fwd+bwd {str(dtype).replace('torch.', '')} B={b} M={m}",
        {"edfast": run(edfast.contrastive_logsumexp), "reference": run(reference.contrastive_logsumexp)},
        min_bytes,
    )


def _gaussian_case(device: str, b: int, d: int, m: int) -> Case:
    x = torch.randn(b, d, device=device).requires_grad_()
    q = edfast.Gaussian(1.0)

    def run(fn):
        def step():
            y, negatives = fn(x, q, m)
            return torch.autograd.grad(y.sum() + negatives.sum(), x)

        return step

    # forward: read x, write y and negatives; backward: write grad_x (the incoming grads of
    # y.sum() + negatives.sum() are broadcast scalars and need no memory traffic).
    min_bytes = 4 * (b * d + b * d + b * m * d + b * d)
    return Case(
        f"perturb Gaussian(1.0) fwd+bwd float32 B={b} D={d} M={m}",
        {"edfast": run(edfast.perturb), "reference": run(reference.perturb)},
        min_bytes,
    )


def _forward_case(device: str, name: str, x: torch.Tensor, q, m: int) -> Case:
    def run(fn):
        def step():
            with torch.no_grad():
                return fn(x, q, m)

        return step

    b, d = x.shape
    min_bytes = x.element_size() * (b * d + b * d + b * m * d)  # read x, write y, negatives
    return Case(name, {"edfast": run(edfast.perturb), "reference": run(reference.perturb)}, min_bytes)


def build_cases(device: str) -> List[Case]:
    torch.manual_seed(0)
    binary = (torch.rand(128, 784, device=device) < 0.3).float()
    categorical = torch.randint(0, 5, (256, 100), device=device)
    return [
        _contrastive_case(device, torch.float32, 4096, 32),
        _contrastive_case(device, torch.float32, 1024, 256),
        _contrastive_case(device, torch.bfloat16, 4096, 32),
        _gaussian_case(device, 1024, 2, 32),
        _gaussian_case(device, 128, 784, 32),
        _forward_case(device, "perturb Bernoulli(0.005) fwd float32 B=128 D=784 M=32", binary,
                      edfast.Bernoulli(0.005), 32),
        _forward_case(device, "perturb Categorical(5, 0.1) fwd int64 B=256 D=100 M=32", categorical,
                      edfast.Categorical(5, 0.1), 32),
    ]


# ---------------------------------------------------------------- timing


def _sync(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


def _warm_up(fn: Callable[[], object], device: str) -> float:
    """Three untimed calls (allocator, thread pool, lazy init); returns seconds per call."""
    _sync(device)
    start = time.perf_counter()
    for _ in range(3):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / 3


def _peak_bytes(fn: Callable[[], object], device: str) -> Optional[int]:
    if device != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def time_interleaved(fns: Dict[str, Callable[[], object]], device: str, min_run_time: float,
                     label: str, rounds: int = ROUNDS) -> Dict[str, dict]:
    """Times each callable in `rounds` alternating rounds of Timer.blocked_autorange, so that
    load from other processes falls on all of them alike; median and IQR over all blocks."""
    estimates = {name: _warm_up(fn, device) for name, fn in fns.items()}
    times: Dict[str, List[float]] = {name: [] for name in fns}
    runs = {name: 0 for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, label=label, sub_label=name,
                                    num_threads=torch.get_num_threads())
            m = timer.blocked_autorange(min_run_time=max(min_run_time / rounds, 2 * estimates[name]))
            times[name].extend(m.times)
            runs[name] += m.number_per_run * len(m.times)
    out = {}
    for name, fn in fns.items():
        t = torch.tensor(times[name], dtype=torch.float64)
        q25, q50, q75 = torch.quantile(t, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)).tolist()
        out[name] = {"median": q50, "iqr": q75 - q25, "runs": runs[name], "peak": _peak_bytes(fn, device)}
    return out


def measure_bandwidth(device: str, min_run_time: float) -> float:
    """Copy bandwidth in GB/s (read + write) of a 256 MiB float32 copy_."""
    n = 64 * 2**20
    src = torch.ones(n, device=device)
    dst = torch.empty_like(src)
    median = time_interleaved({"copy": lambda: dst.copy_(src)}, device, min_run_time, "copy")["copy"]["median"]
    del src, dst
    return 2 * n * 4 / median / 1e9


# ---------------------------------------------------------------- machine


def machine_description(device: str) -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    parts = [cpu, f"{os.cpu_count()} cores", f"torch {torch.__version__}"]
    if device == "cuda":
        parts.append(f"GPU {torch.cuda.get_device_name()}")
    elif torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name()} (unused)")
    else:
        parts.append("no GPU")
    return "; ".join(parts)


def _load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


# ---------------------------------------------------------------- main


def _measure_block(device: str, threads: int, min_run_time: float) -> dict:
    """Bandwidth and every case at one torch thread count."""
    torch.set_num_threads(threads)
    load_before = _load_average()
    print(f"\n## {device}, {threads} torch thread(s)\n", flush=True)
    bandwidth = measure_bandwidth(device, min_run_time)
    print(f"copy bandwidth (256 MiB float32 copy_, read+write): {bandwidth:.1f} GB/s", flush=True)
    rows = []
    for case in build_cases(device):
        result = time_interleaved(case.impls, device, min_run_time, case.name)
        for impl in ("edfast", "reference"):
            r = result[impl]
            rows.append({"case": case.name, "impl": impl, "min_bytes": case.min_bytes,
                         "ratio": r["median"] / result["reference"]["median"], **r})
            print(f"  {case.name:<62} {impl:<9} {r['median'] * 1e6:10.1f} us  (IQR {r['iqr'] * 1e6:.1f}, "
                  f"{r['runs']} runs)", flush=True)
    return {"threads": threads, "bandwidth": bandwidth, "rows": rows,
            "load": f"{load_before} / {_load_average()}"}


def run_device(device: str, thread_counts: List[int], min_run_time: float, out_dir: Path, date: str) -> Path:
    if device == "cuda":
        thread_counts = [torch.get_num_threads()]
    blocks = [_measure_block(device, n, min_run_time) for n in thread_counts]
    machine = machine_description(device)

    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"core-ops-{device}-{date}.csv"
    fields = ["case", "impl", "device", "threads", "median_us", "iqr_us", "ratio_vs_reference", "runs",
              "min_bytes", "effective_gbps", "fraction_of_copy_bw", "peak_mem_mb", "machine"]
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for block in blocks:
            bandwidth = block["bandwidth"]
            writer.writerow({"case": "copy_ 256 MiB float32 (bandwidth)", "impl": "torch", "device": device,
                             "threads": block["threads"],
                             "median_us": f"{2 * 64 * 2**20 * 4 / bandwidth / 1e3:.1f}", "iqr_us": "",
                             "ratio_vs_reference": "", "runs": "", "min_bytes": 2 * 64 * 2**20 * 4,
                             "effective_gbps": f"{bandwidth:.2f}", "fraction_of_copy_bw": "1.000",
                             "peak_mem_mb": "", "machine": machine})
            for row in block["rows"]:
                gbps = row["min_bytes"] / row["median"] / 1e9
                writer.writerow({
                    "case": row["case"], "impl": row["impl"], "device": device, "threads": block["threads"],
                    "median_us": f"{row['median'] * 1e6:.1f}", "iqr_us": f"{row['iqr'] * 1e6:.1f}",
                    "ratio_vs_reference": f"{row['ratio']:.3f}", "runs": row["runs"],
                    "min_bytes": row["min_bytes"], "effective_gbps": f"{gbps:.2f}",
                    "fraction_of_copy_bw": f"{gbps / bandwidth:.3f}",
                    "peak_mem_mb": "" if row["peak"] is None else f"{row['peak'] / 2**20:.1f}",
                    "machine": machine,
                })

    lines = [
        f"# core ops on {device}, {date}",
        "",
        f"Machine: {machine}.  ",
        "Median and IQR over 5 alternating rounds (edfast, reference, ...) of "
        "`torch.utils.benchmark.Timer.blocked_autorange` after warm-up; `time ratio` = median / "
        "reference median (< 1: edfast faster); `eff. GB/s` = the op's minimum bytes "
        "(bench/NOTES.md) / median; `% of copy bw` = that against the measured `copy_` bandwidth. "
        "Load from other processes on the machine inflates times and IQRs, most of all for "
        "multi-threaded torch ops.",
    ]
    peak_col = device == "cuda"
    for block in blocks:
        bandwidth = block["bandwidth"]
        lines += [
            "",
            f"## {block['threads']} torch thread(s)",
            "",
            f"Copy bandwidth (256 MiB float32 `copy_`, read + write): **{bandwidth:.1f} GB/s**; "
            f"load average (1 min) before / after: {block['load']}.",
            "",
            "| case | impl | median (µs) | IQR (µs) | time ratio | speedup | eff. GB/s | % of copy bw |"
            + (" peak MB |" if peak_col else ""),
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if peak_col else ""),
        ]
        for row in block["rows"]:
            gbps = row["min_bytes"] / row["median"] / 1e9
            line = (f"| {row['case']} | {row['impl']} | {row['median'] * 1e6:.1f} | {row['iqr'] * 1e6:.1f} | "
                    f"{row['ratio']:.3f} | {1 / row['ratio']:.2f}x | {gbps:.2f} | {100 * gbps / bandwidth:.1f} |")
            if peak_col:
                line += f" {row['peak'] / 2**20:.1f} |"
            lines.append(line)
    table = "\n".join(lines) + "\n"
    md_path = csv_path.with_suffix(".md")
    md_path.write_text(table)
    print("\n" + table)
    print(f"wrote {csv_path} and {md_path}")
    return csv_path


def main(argv: Optional[List[str]] = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", nargs="*", default=None, help="cpu and/or cuda (default: all present)")
    parser.add_argument("--min-run-time", type=float, default=1.0,
                        help="seconds per case and implementation (default 1.0)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, nargs="*", default=None,
                        help="torch CPU thread counts to run (default: 1 and torch's default)")
    args = parser.parse_args(argv)

    default_threads = torch.get_num_threads()
    thread_counts = args.threads or sorted({1, default_threads})
    devices = args.devices
    if devices is None:
        devices = ["cpu"]
        if torch.cuda.is_available() and edfast.cuda_kernels_built():
            devices.append("cuda")
    date = datetime.date.today().isoformat()
    start = time.perf_counter()
    for device in devices:
        run_device(device, thread_counts, args.min_run_time, args.out_dir, date)
        torch.set_num_threads(default_threads)
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
