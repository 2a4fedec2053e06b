"""The machine a benchmark ran on, and the two rates its floors are measured against.

Every CSV row carries :func:`describe`'s fields, so a result file read on its own says where
it came from. The GEMM rate and the copy bandwidth are measured in the same run as the cases
(not taken from a data sheet): the floor then says what this machine, in this state, could do.
"""
from __future__ import annotations

import os
import platform
from typing import Dict

import torch

from edfast.benchmarks.timing import time_step


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() is often empty)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> float:
    """1-minute load average (other work on the machine inflates times), or -1 if unknown."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return -1.0


def describe(device: str) -> Dict[str, object]:
    """Machine fields recorded in every row: CPU model, core count, torch threads, torch
    version, GPU name (empty on CPU runs)."""
    gpu = torch.cuda.get_device_name() if device == "cuda" else ""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": gpu,
    }


def gemm_rate(device: str, min_run_time: float) -> float:
    """Measured float32 GEMM rate in FLOP/s: a square matmul big enough to reach the BLAS's
    peak (1024 on CPU, 8192 on CUDA), the best case any energy's matmuls could hit."""
    n = 8192 if device == "cuda" else 1024
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    out = torch.empty(n, n, device=device)
    seconds = time_step(lambda: torch.mm(a, b, out=out), device, min_run_time, min_runs=5).median
    return 2.0 * n**3 / seconds


def copy_bandwidth(device: str, min_run_time: float) -> float:
    """Measured memory bandwidth in bytes/s: a 256 MiB float32 ``copy_`` (read + write), far
    larger than any cache."""
    n = 64 * 2**20
    src = torch.ones(n, device=device)
    dst = torch.empty_like(src)
    seconds = time_step(lambda: dst.copy_(src), device, min_run_time, min_runs=5).median
    return 2.0 * n * 4 / seconds
