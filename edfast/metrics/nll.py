"""Negative log-likelihood of binary energy models: exact (small D) and importance-sampled."""

from __future__ import annotations

import math

import torch

#: Largest D for exact enumeration (2^20 ~ 1e6 states).
MAX_EXACT_DIM = 20


def _dtype_device(energy, dtype, device):
    """Default to the energy's parameters' dtype/device when it has any, else float32/cpu."""
    param = next(energy.parameters(), None) if isinstance(energy, torch.nn.Module) else None
    dtype = dtype or (param.dtype if param is not None else torch.float32)
    device = device or (param.device if param is not None else "cpu")
    return dtype, device


@torch.no_grad()
def log_partition_exact(energy, dim: int, *, batch_size: int = 2**16, dtype=None,
                        device=None) -> torch.Tensor:
    """log Z = log sum_{x in {0,1}^dim} exp(-U(x)) by enumeration; dim <= 20.

    Energies are evaluated on [batch, dim] rows of ``dtype`` (default: the energy's
    parameters' dtype) and reduced in float64. Returns a float64 scalar tensor.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    if dim > MAX_EXACT_DIM:
        raise ValueError(f"exact enumeration needs dim <= {MAX_EXACT_DIM} (2^dim states), got {dim}; "
                         "use log_partition_importance")
    dtype, device = _dtype_device(energy, dtype, device)
    shifts = torch.arange(dim - 1, -1, -1, device=device)
    parts = []
    for start in range(0, 2**dim, batch_size):
        codes = torch.arange(start, min(start + batch_size, 2**dim), device=device)
        x = ((codes[:, None] >> shifts) & 1).to(dtype)
        parts.append(torch.logsumexp(-energy(x).double(), 0))
    return torch.logsumexp(torch.stack(parts), 0)


@torch.no_grad()
def log_partition_importance(energy, dim: int, num_samples: int = 10**6, *,
                             batch_size: int = 2**14, generator: torch.Generator | None = None,
                             dtype=None, device=None) -> torch.Tensor:
    """Importance-sampling estimate of log Z with the uniform proposal q(z) = 2^-dim.

    log Z ≈ log( (1/N) sum_k exp(-U(z_k)) / q(z_k) ) = logsumexp_k(-U(z_k)) + dim log 2 - log N.
    Unbiased for Z (not log Z: it underestimates log Z on average) and only accurate when
    the model is not too far from uniform; the discrete toy benchmarks use it as is.

    Args:
        energy: callable [N, dim] floating {0, 1} -> U [N].
        dim: number of binary coordinates.
        num_samples: N proposal draws, evaluated ``batch_size`` at a time.
        generator: torch.Generator on ``device`` (default: torch's global one).
    Returns: float64 scalar tensor.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    dtype, device = _dtype_device(energy, dtype, device)
    parts = []
    for start in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - start)
        z = torch.randint(0, 2, (n, dim), generator=generator, device=device).to(dtype)
        parts.append(torch.logsumexp(-energy(z).double(), 0))
    return torch.logsumexp(torch.stack(parts), 0) + dim * math.log(2.0) - math.log(num_samples)


@torch.no_grad()
def nll_exact(energy, x: torch.Tensor, **kwargs) -> float:
    """Mean NLL in nats of binary data x [B, D] (D <= 20): mean U(x) + log Z (exact)."""
    _check_data(x)
    log_z = log_partition_exact(energy, x.shape[1], dtype=x.dtype, device=x.device, **kwargs)
    return float(energy(x).double().mean() + log_z)


@torch.no_grad()
def nll_importance(energy, x: torch.Tensor, num_samples: int = 10**6, **kwargs) -> float:
    """Mean NLL in nats of binary data x [B, D]: mean U(x) + log Z, log Z from
    :func:`log_partition_importance` (keyword arguments are passed on to it)."""
    _check_data(x)
    log_z = log_partition_importance(energy, x.shape[1], num_samples, dtype=x.dtype,
                                     device=x.device, **kwargs)
    return float(energy(x).double().mean() + log_z)


def _check_data(x):
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 2:
        raise TypeError("x must be a floating-point {0, 1} tensor of shape [B, D]")
