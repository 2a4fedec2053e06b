"""The drop-in Energy Discrepancy loss for any energy module (DESIGN §1, §4)."""
from __future__ import annotations

import math
import numbers
from typing import Callable, Optional, Union

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from edfast._fused import fused_kernel
from edfast._ops import _check_index, contrastive_logsumexp, draw_seed, perturb
from edfast.perturbations import Perturbation

__all__ = ["energy_discrepancy", "EnergyDiscrepancy"]

_REDUCTIONS = ("mean", "sum", "none")


def _energy_vector(u, rows: int, what: str) -> torch.Tensor:
    """Checks an energy output: ``[rows]`` or ``[rows, 1]`` floating -> ``[rows]``."""
    if not isinstance(u, torch.Tensor):
        raise TypeError(f"{what} must return a torch.Tensor, got {type(u).__name__}")
    if not u.is_floating_point():
        raise TypeError(f"{what} must return a floating tensor, got {u.dtype}")
    if u.dim() == 2 and u.shape[1] == 1:
        u = u.squeeze(1)
    if u.shape != (rows,):
        raise ValueError(f"{what} must return shape [{rows}] or [{rows}, 1], got {list(u.shape)}")
    return u


def _negative_energies(energy, x, perturbation, first, count, seed, row_offset):
    """U of negatives ``first .. first+count-1`` of every row: ``[B, count]``. Pure in its
    arguments (the negatives are regenerated from the seed), so it can be recomputed."""
    _, negatives = perturb(x, perturbation, count, seed=seed, row_offset=row_offset, first_negative=first)
    b = x.shape[0]
    u = energy(negatives.reshape(b * count, *x.shape[1:]))
    return _energy_vector(u, b * count, "energy(negatives)").view(b, count)


def _check_device(energy, x: torch.Tensor):
    if isinstance(energy, nn.Module):
        parameter = next(energy.parameters(), None)
        if parameter is not None and parameter.device != x.device:
            raise ValueError(
                f"x is on {x.device} but the energy's parameters are on {parameter.device}: "
                "move them to one device"
            )


def energy_discrepancy(
    energy: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    perturbation: Perturbation,
    m: int = 32,
    w: float = 1.0,
    *,
    reduction: str = "mean",
    chunk_size: Optional[int] = None,
    seed: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    row_offset: int = 0,
    fused: Union[str, bool] = "auto",
) -> torch.Tensor:
    """The Energy Discrepancy loss of ``energy`` on the batch ``x`` (DESIGN §1).

    For each row, ``y ~ q(.|x_i)`` and ``m`` negatives ``x'_ij ~ q(.|y)`` are drawn with
    :func:`edfast.perturb` and ``v_i = log(w/m + (1/m) sum_j exp(U(x_i) - U(x'_ij)))``.
    This is the paper's normalised value; the authors' code reports ``v + log m`` (same
    gradient).

    Args:
        energy: any callable mapping ``[N, *event]`` to ``[N]`` or ``[N, 1]`` floating energies
            (``p(x) ∝ exp(-U(x))``), e.g. an ``nn.Module``. Without chunking it is called once
            on the ``B * (m + 1)`` rows (each data row followed by its negatives); with
            chunking once on x and once per chunk. Rows must not interact (no batch norm in
            training mode).
        x: the data, ``[B, *event]`` with ``B >= 1``, of the dtype the perturbation expects
            (real, 0/1 binary or int64 categorical).
        perturbation: an ``edfast`` perturbation (Gaussian, Bernoulli, BitFlip, ...).
        m: negatives per data point, >= 1.
        w: stabiliser, finite and >= 0 (``w = 0`` is allowed and known to be unstable).
        reduction: "mean" (default), "sum" or "none" (per-row ``[B]``).
        chunk_size: evaluate the negatives ``chunk_size`` at a time under recomputation
            (``torch.utils.checkpoint``; backward regenerates them from the seed), so peak
            memory grows with ``chunk_size``, not ``m``. None evaluates all at once.
        seed: the noise seed, in [0, 2^63); drawn from ``generator`` (default: torch's
            default CPU generator) when None, so ``torch.manual_seed`` makes runs reproducible.
        row_offset: global index of row 0. Data-parallel ranks that use one seed and
            ``row_offset = rank * local_batch`` draw the noise of the whole batch.
        fused: "auto" (default) uses a fused kernel when edfast has one for this energy and
            perturbation (``type(energy)`` exactly :class:`~edfast.energies.Ising` or
            :class:`~edfast.energies.BernoulliRBM` under Bernoulli or BitFlip, or
            :class:`~edfast.energies.Potts` under Categorical, Cyclic or Ordinal, or
            :class:`~edfast.energies.MLPEnergy` under Gaussian, Bernoulli or BitFlip with
            input <= 1024, widths <= 256 and <= 8 hidden layers; float32 or float64
            parameters), else the generic path; False forces the generic path; True
            requires a fused kernel and raises a ValueError saying why there is none. The
            fused path draws the same negatives for the same seed and never materialises
            them (``chunk_size`` is then not needed); its loss and gradients equal the
            generic path's to float tolerance.

    Returns:
        A scalar (mean/sum) or ``[B]`` (none) in the energies' dtype. Non-finite energies give
        a non-finite loss (no error is raised: check ``torch.isfinite`` when training).
    """
    if not callable(energy):
        raise TypeError(f"energy must be callable, got {type(energy).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"x must have shape [B, *event] with B >= 1, got {list(x.shape)}")
    if not isinstance(perturbation, Perturbation):
        raise TypeError(f"perturbation must be an edfast perturbation, got {type(perturbation).__name__}")
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"m must be an int >= 1, got {m!r}")
    if isinstance(w, bool) or not isinstance(w, numbers.Real) or not (math.isfinite(w) and w >= 0):
        raise ValueError(f"w must be a finite float >= 0, got {w!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be None or an int >= 1, got {chunk_size!r}")
    if fused not in ("auto", True, False):
        raise ValueError(f"fused must be 'auto', True or False, got {fused!r}")
    _check_device(energy, x)
    row_offset = _check_index("row_offset", row_offset)
    seed = draw_seed(generator) if seed is None else _check_index("seed", seed)

    kernel = None
    if fused is not False:
        kernel, why_not = fused_kernel(energy, x, perturbation)
        if kernel is None and fused is True:
            raise ValueError(f"fused=True: {why_not}; use fused='auto' or False")
    if kernel is not None:
        # One pass per row: no negative is materialised, so chunk_size has nothing to bound.
        v = kernel(energy, x, perturbation, m, float(w), seed, row_offset, reduction)
    else:
        v = _generic(energy, x, perturbation, m, float(w), chunk_size, seed, row_offset)
    if reduction == "mean":
        return v.mean()
    return v.sum() if reduction == "sum" else v


def _generic(energy, x, perturbation, m, w, chunk_size, seed, row_offset) -> torch.Tensor:
    """The generic path (DESIGN §4): v [B] from the energy evaluated on x and the negatives."""
    b = x.shape[0]
    if chunk_size is None or chunk_size >= m:
        # One energy call on the B*(M+1) rows [x_i, x'_i1..x'_iM]: one large batch runs
        # faster than a B-row call plus a B*M-row call (each small op pays a parallel region).
        _, negatives = perturb(x, perturbation, m, seed=seed, row_offset=row_offset)
        rows = torch.cat([x.unsqueeze(1), negatives], dim=1).reshape(b * (m + 1), *x.shape[1:])
        u = _energy_vector(energy(rows), b * (m + 1), "energy(x and negatives)").view(b, m + 1)
        e_pos, e_neg = u[:, 0], u[:, 1:]
    else:
        e_pos = _energy_vector(energy(x), b, "energy(x)")
        chunks = [
            checkpoint(_negative_energies, energy, x, perturbation, first, min(chunk_size, m - first),
                       seed, row_offset, use_reentrant=False)
            for first in range(0, m, chunk_size)
        ]
        e_neg = torch.cat(chunks, dim=1)
    return contrastive_logsumexp(e_pos, e_neg, w)


class EnergyDiscrepancy(nn.Module):
    """``nn.Module`` form of :func:`energy_discrepancy`: holds the perturbation, ``m``, ``w``
    and the keyword options; ``forward(energy, x)`` returns the loss."""

    def __init__(self, perturbation: Perturbation, m: int = 32, w: float = 1.0, **options):
        super().__init__()
        unknown = set(options) - {"reduction", "chunk_size", "seed", "generator", "row_offset", "fused"}
        if unknown:
            raise TypeError(f"unknown options for EnergyDiscrepancy: {sorted(unknown)}")
        self.perturbation, self.m, self.w, self.options = perturbation, m, w, options

    def forward(self, energy, x: torch.Tensor) -> torch.Tensor:
        return energy_discrepancy(energy, x, self.perturbation, self.m, self.w, **self.options)

    def extra_repr(self) -> str:
        return f"{self.perturbation!r}, m={self.m}, w={self.w}"
