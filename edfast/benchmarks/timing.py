"""Timing training steps: warm-up, then many timed runs; median and interquartile range.

The competitors of a case are timed *interleaved*: round after round, each step once, until
every one has at least ``min_runs`` timed steps and the rounds have lasted ``min_run_time``
per competitor. On a shared machine the load drifts over seconds; interleaving exposes every
competitor to the same drift, so the edfast/competitor ratios stay trustworthy even when the
absolute times move (timing one competitor after another, a load spike lands on one of them).

CPU: ``time.perf_counter`` around each step (steps take milliseconds to seconds, far above
its resolution). CUDA: a CUDA event pair around each step (the GPU's own clock). Median and
IQR come from ``torch.utils.benchmark.Measurement``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Dict, List

import torch
import torch.utils.benchmark as benchmark

Step = Callable[[], object]


@dataclass(frozen=True)
class Timing:
    median: float  # seconds per step
    iqr: float  # interquartile range, seconds
    runs: int  # timed steps behind the median


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def summarise(seconds: List[float]) -> Timing:
    """Median and interquartile range of per-step times."""
    if not seconds:
        raise ValueError("no timed steps")
    spec = benchmark.TaskSpec(stmt="step()", setup="pass", num_threads=torch.get_num_threads())
    measurement = benchmark.Measurement(number_per_run=1, raw_times=list(seconds), task_spec=spec)
    return Timing(measurement.median, measurement.iqr, len(seconds))


def warm_up(step: Step, device: str, warmup: int = 1) -> float:
    """Runs ``step`` ``warmup`` + 1 times untimed (allocator, thread pool, oneDNN primitive
    caches, and for compiled competitors the compile) and returns the last call's seconds."""
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    step()
    _sync(device)
    return time.perf_counter() - start


def _timed_once(step: Step, device: str) -> float:
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    # timeit's clock (perf_counter). Not Timer.timeit(1): it runs 2 warm-up calls per timing,
    # which would triple the cost of one-second steps.
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def time_interleaved(steps: Dict[str, Step], device: str, min_run_time: float, min_runs: int = 5,
                     warmup: int = 1) -> Dict[str, Timing]:
    """Times every step of ``steps`` (name -> step), interleaved round by round.

    Cheap steps run several times per round (as many as fit in the slowest step's time, at
    most 50), so a 50 ms step beside a 1 s one still gets a good sample.
    """
    estimates = {name: max(warm_up(step, device, warmup), 1e-6) for name, step in steps.items()}
    slowest = max(estimates.values())
    repeats = {name: max(1, min(50, int(slowest / est))) for name, est in estimates.items()}
    round_seconds = sum(est * repeats[name] for name, est in estimates.items())
    rounds = max(min_runs, math.ceil(min_run_time * len(steps) / round_seconds))
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            times[name] += [_timed_once(step, device) for _ in range(repeats[name])]
    return {name: summarise(seconds) for name, seconds in times.items()}


def time_step(step: Step, device: str, min_run_time: float, min_runs: int = 5, warmup: int = 1) -> Timing:
    """One step timed on its own (the machine-rate measurements)."""
    return time_interleaved({"step": step}, device, min_run_time, min_runs, warmup)["step"]
