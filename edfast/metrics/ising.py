"""Coupling recovery on the lattice Ising benchmark."""

from __future__ import annotations

import math

import torch


def coupling_rmse(learned: torch.Tensor, true: torch.Tensor) -> float:
    """Root mean squared error over all D*D entries of two coupling matrices.

    Both must use the same convention; edfast's ``Ising(...).coupling`` and
    :func:`edfast.data.lattice_coupling` do (p(s) ∝ exp(s^T J s)). Computed in float64.

    Args:
        learned, true: [D, D] floating tensors (the learned one is detached).
    """
    if not isinstance(learned, torch.Tensor) or not isinstance(true, torch.Tensor):
        raise TypeError("learned and true must be torch.Tensors (e.g. model.coupling)")
    if learned.shape != true.shape or learned.dim() != 2:
        raise ValueError(f"learned and true must be [D, D] of the same shape, got "
                         f"{list(learned.shape)} and {list(true.shape)}")
    diff = learned.detach().double() - true.detach().double().to(learned.device)
    return float(diff.pow(2).mean().sqrt())


def neg_log_rmse(learned: torch.Tensor, true: torch.Tensor) -> float:
    """-log(RMSE) of the couplings (higher is better; the papers' table metric)."""
    rmse = coupling_rmse(learned, true)
    return math.inf if rmse == 0 else -math.log(rmse)
