"""The floor: what one ED training step must cost at least, on this machine.

Work: the energy's forward + backward on the B*(M+1) rows (data and negatives) must be done
by any implementation, fused or not; its FLOPs are counted with
``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions, einsum/bmm; elementwise
work is not counted, so the floor is a lower bound).

Bytes: a fused step must at least read x and the parameters and write the gradients. The
generic path also writes the [B, M, *event] negatives and reads them back; both figures are
reported so the cost of materialising is visible.

floor time = max(FLOPs / measured GEMM rate, bytes / measured copy bandwidth) (a roofline
bound); fraction of floor achieved = floor time / measured median (1.0 = at the floor).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from edfast.benchmarks.cases import Setup

_SAMPLE_ROWS = 256  # FLOPs are linear in rows: count a sample, scale (counting all is a step)


@dataclass(frozen=True)
class Floor:
    flops: float  # energy forward + backward on B*(M+1) rows
    min_bytes: float  # read x and parameters, write gradients
    negatives_bytes: float  # the [B, M, *event] negatives, if materialised

    def seconds(self, gemm_rate: float, bandwidth: float) -> float:
        """Roofline floor of a step that never materialises the negatives."""
        return max(self.flops / gemm_rate, self.min_bytes / bandwidth)

    def seconds_materialised(self, gemm_rate: float, bandwidth: float) -> float:
        """The same for a step that writes the negatives and reads them back."""
        return max(self.flops / gemm_rate, (self.min_bytes + 2 * self.negatives_bytes) / bandwidth)


def fraction_of_floor(floor_seconds: float, median_seconds: float) -> float:
    """How close a measured step is to the floor: floor / measured (1.0 = at the floor)."""
    if median_seconds <= 0:
        raise ValueError(f"median must be positive, got {median_seconds}")
    return floor_seconds / median_seconds


def energy_flops(energy, rows: torch.Tensor) -> float:
    """FLOPs of ``energy(rows).sum()`` forward + backward (parameter gradients)."""
    params = list(energy.parameters())
    with FlopCounterMode(display=False) as counter:
        energy(rows).sum().backward()
    for p in params:
        p.grad = None
    return float(counter.get_total_flops())


def measure_floor(setup: Setup) -> Floor:
    """The :class:`Floor` of one step of ``setup`` (runs the energy on a sample of rows)."""
    x, b, m = setup.x, setup.x.shape[0], setup.m
    rows = b * (m + 1)
    sample = min(rows, _SAMPLE_ROWS)
    picked = x[torch.arange(sample, device=x.device) % b]
    flops = energy_flops(setup.energy, picked) * rows / sample
    param_bytes = sum(p.numel() * p.element_size() for p in setup.energy.parameters())
    x_bytes = x.numel() * x.element_size()
    return Floor(flops=flops, min_bytes=x_bytes + 2 * param_bytes, negatives_bytes=m * x_bytes)
