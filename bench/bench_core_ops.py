"""Times edfast's two core ops against the fastest plain-PyTorch equivalent, in the same run
(DESIGN §6):

- ``edfast.perturb`` (Gaussian forward + backward; Bernoulli, BitFlip, Categorical forward)
  against ``edfast.benchmarks.competitors.eager_perturb``: y from x, then the M negatives from
  that one y, each step one torch RNG call and one elementwise op (``torch.where(torch.rand(..)
  < eps, torch.randint(..), y)`` for Categorical, a masked flip for Bernoulli, a scatter of
  one flipped index per row for BitFlip), y broadcast rather than repeated;
- ``edfast.contrastive_logsumexp`` forward + backward against
  ``competitors.eager_contrastive_logsumexp`` (``logsumexp`` joined to w by ``logaddexp``).

edfast and torch are timed interleaved, round by round (``edfast.benchmarks.timing``), so load
from other processes falls on both alike; median and IQR per call. speed-up = torch median /
edfast median (> 1: edfast faster). Throughput: G coordinates/s for perturb (B*(M+1)*D
coordinates per call), G pairs/s for contrastive (B*M). A measurement that fails (an op that
raises, outputs of different shapes or dtypes, a non-positive time) fails the run: the error
is printed, nothing is written and the exit status is 1.

Writes ``core-ops-<device>-<N>t-<date>.csv`` and ``.md`` under ``./bench/results`` (or
``--out DIR``); every CSV row carries the machine (edfast.benchmarks.machine).

    .venv/bin/python bench/bench_core_ops.py --threads 2
    .venv/bin/python bench/bench_core_ops.py --threads 1
    .venv/bin/python bench/bench_core_ops.py --device cuda
"""
from __future__ import annotations

import argparse
import csv
import datetime
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import torch

import edfast
from edfast.benchmarks import MeasurementError, machine
from edfast.benchmarks.competitors import eager_contrastive_logsumexp, eager_perturb
from edfast.benchmarks.timing import time_interleaved

Step = Callable[[], object]


@dataclass
class OpCase:
    name: str
    edfast: Step
    torch: Step
    work: int  # coordinates (perturb) or pairs (contrastive) per call
    unit: str


def contrastive_case(device: str, dtype: torch.dtype, b: int, m: int, w: float = 1.0) -> OpCase:
    g = torch.Generator().manual_seed(0)
    e_pos = (torch.randn(b, generator=g) * 3).to(device, dtype).requires_grad_()
    e_neg = (torch.randn(b, m, generator=g) * 3).to(device, dtype).requires_grad_()

    def step(fn) -> Step:
        def run():
            v = fn(e_pos, e_neg, w)
            return (v, *torch.autograd.grad(v.sum(), (e_pos, e_neg)))
        return run

    name = f"contrastive_logsumexp fwd+bwd {str(dtype).replace('torch.', '')} B={b} M={m}"
    return OpCase(name, step(edfast.contrastive_logsumexp), step(eager_contrastive_logsumexp), b * m, "pairs")


def perturb_case(x: torch.Tensor, q: edfast.Perturbation, m: int) -> OpCase:
    """Forward + backward (``x.grad`` of y.sum() + negatives.sum()) when x is floating and q is
    Gaussian, forward only otherwise."""
    backward = isinstance(q, edfast.Gaussian)
    x = x.detach().requires_grad_(backward)

    def step(fn) -> Step:
        def run():
            with torch.set_grad_enabled(backward):
                y, negatives = fn(x, q, m)
                return (y, negatives, *(torch.autograd.grad(y.sum() + negatives.sum(), x) if backward else ()))
        return run

    b, d = x.shape
    name = (f"perturb {q!r} {'fwd+bwd' if backward else 'fwd'} {str(x.dtype).replace('torch.', '')} "
            f"B={b} D={d} M={m}")
    return OpCase(name, step(edfast.perturb), step(eager_perturb), b * (m + 1) * d, "coordinates")


def build_cases(device: str) -> List[OpCase]:
    g = torch.Generator().manual_seed(0)

    def binary(b, d, dtype):
        return (torch.rand(b, d, generator=g) < 0.3).to(device, dtype)

    return [
        contrastive_case(device, torch.float32, 4096, 32),
        contrastive_case(device, torch.float32, 1024, 256),
        contrastive_case(device, torch.bfloat16, 4096, 32),
        perturb_case(torch.randn(128, 784, generator=g).to(device), edfast.Gaussian(1.0), 32),
        perturb_case(torch.randn(1024, 2, generator=g).to(device), edfast.Gaussian(1.0), 32),
        perturb_case(binary(128, 784, torch.float32), edfast.Bernoulli(0.005), 32),
        perturb_case(binary(256, 100, torch.uint8), edfast.Bernoulli(0.1), 32),
        perturb_case(binary(128, 784, torch.float32), edfast.BitFlip(), 32),
        perturb_case(torch.randint(0, 5, (256, 100), generator=g).to(device), edfast.Categorical(5, 0.1), 32),
    ]


def _signature(outputs) -> list:
    return [(tuple(t.shape), t.dtype) for t in outputs]


def measure(case: OpCase, device: str, min_run_time: float, min_runs: int) -> dict:
    """The case's row: edfast and torch timed interleaved; raises :class:`MeasurementError`."""
    try:
        mine, theirs = _signature(case.edfast()), _signature(case.torch())
        if mine != theirs:
            raise MeasurementError(f"torch's outputs {theirs} differ from edfast's {mine}")
        timings = time_interleaved({"edfast": case.edfast, "torch": case.torch}, device, min_run_time,
                                   min_runs, warmup=2)
    except Exception as err:
        raise MeasurementError(f"{case.name}: {type(err).__name__}: {err}") from err
    row = {"case": case.name, "work": case.work, "unit": case.unit}
    for impl, t in timings.items():
        if not (math.isfinite(t.median) and t.median > 0):
            raise MeasurementError(f"{case.name}: {impl} median {t.median} s is not a time")
        row.update({f"{impl}_median_us": t.median * 1e6, f"{impl}_iqr_us": t.iqr * 1e6, f"{impl}_runs": t.runs,
                    f"{impl}_g_per_s": case.work / t.median / 1e9})
    row["speedup"] = timings["torch"].median / timings["edfast"].median
    return row


FIELDS = ["case", "speedup", "edfast_median_us", "edfast_iqr_us", "edfast_runs", "torch_median_us", "torch_iqr_us",
          "torch_runs", "work", "unit", "edfast_g_per_s", "torch_g_per_s", "device", "date", "load",
          "cpu", "cores", "threads", "torch", "gpu"]


def _csv_value(value) -> str:
    return format(value, ".4g") if isinstance(value, float) else str(value)


def write(rows: List[dict], header: List[str], stem: Path) -> List[Path]:
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows({k: _csv_value(row[k]) for k in FIELDS} for row in rows)
    lines = header + [
        "",
        "| case | edfast µs (IQR) | torch µs (IQR) | speed-up | edfast G/s | torch G/s | per |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {r['edfast_median_us']:.1f} ({r['edfast_iqr_us']:.1f}) "
                     f"| {r['torch_median_us']:.1f} ({r['torch_iqr_us']:.1f}) | {r['speedup']:.2f}x "
                     f"| {r['edfast_g_per_s']:.3f} | {r['torch_g_per_s']:.3f} | {r['unit']} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return [stem.with_suffix(".csv"), stem.with_suffix(".md")]


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    date = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    described = machine.describe(args.device)
    load_before = machine.load_average()
    print(f"core ops on {args.device}: {described}", flush=True)
    rows = []
    for case in build_cases(args.device):
        row = measure(case, args.device, args.min_run_time, args.min_runs)
        rows.append(dict(row, device=args.device, date=date, load=machine.load_average(), **described))
        print(f"  {case.name:<58} edfast {row['edfast_median_us']:10.1f} us  torch {row['torch_median_us']:10.1f} us"
              f"  speed-up {row['speedup']:.2f}x", flush=True)
    header = [
        f"# core ops on {args.device}, {described['threads']} torch thread(s), {date}",
        "",
        f"- machine: {described['cpu']}, {described['cores']} cores, {described['threads']} torch threads, "
        f"torch {described['torch']}" + (f", {described['gpu']}" if described["gpu"] else ""),
        f"- load average (1 min) before / after: {load_before:.2f} / {machine.load_average():.2f}",
        "- timing: edfast and torch interleaved round by round, "
        + ("CUDA events" if args.device == "cuda" else "perf_counter")
        + f" per call after 2 warm-up calls, >= {args.min_run_time} s and >= {args.min_runs} calls each; "
          "median (IQR) per call",
        "- torch: the fastest plain-PyTorch form (edfast.benchmarks.competitors.eager_perturb, "
        "eager_contrastive_logsumexp); speed-up = torch median / edfast median (> 1: edfast faster)",
        "- G/s: G coordinates/s for perturb (B*(M+1)*D per call), G pairs/s for contrastive (B*M)",
    ]
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    written = write(rows, header, out / f"core-ops-{args.device}-{described['threads']}t-{date}")
    print("\n" + written[1].read_text())
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (torch.set_num_threads)")
    parser.add_argument("--min-run-time", type=float, default=2.0, help="seconds of timing per op (default 2)")
    parser.add_argument("--min-runs", type=int, default=20, help="fewest timed calls per op (default 20)")
    parser.add_argument("--out", type=Path, default=Path("bench") / "results",
                        help="directory for the results (default: ./bench/results under the current directory)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not (torch.cuda.is_available() and edfast.cuda_kernels_built()):
        print("bench_core_ops: --device cuda: no CUDA device, or edfast built without CUDA", file=sys.stderr)
        return 2
    try:
        return run(args)
    except MeasurementError as err:
        print(f"bench_core_ops: error: {err}\nbench_core_ops: nothing written", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
