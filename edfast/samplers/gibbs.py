"""Per-coordinate Gibbs sampling for binary and categorical energies."""

from __future__ import annotations

import torch


@torch.no_grad()
def gibbs(energy, x0: torch.Tensor, sweeps: int, *, scan: str = "systematic",
          num_classes: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Single-site Gibbs sampling of p(x) ∝ exp(-U(x)), one chain per row of ``x0``.

    Each update resamples one coordinate i from its exact conditional, computed from the
    energies of the K candidate values: p(x_i = k | rest) = softmax_k(-U(x with x_i = k)).
    That costs K energy evaluations of the batch per update (done as one call on [K*B]).

    Args:
        energy: callable mapping x [N, *event] to U [N].
        x0: start [B, *event]: floating {0, 1} for binary data (``num_classes=None``), or
            int64 {0..K-1} with ``num_classes=K``. Not modified.
        sweeps: number of sweeps; a sweep is D single-site updates (D = prod(event)).
        scan: "systematic" (coordinates 0..D-1 in order, the same for all chains) or
            "random" (each update picks a coordinate uniformly, independently per chain).
        num_classes: K for categorical data; None for binary.
        generator: torch.Generator on x0's device (default: torch's global one).

    Returns: x [B, *event], same dtype as x0.
    """
    if scan not in ("systematic", "random"):
        raise ValueError(f"scan must be 'systematic' or 'random', got {scan!r}")
    if not isinstance(x0, torch.Tensor) or x0.dim() < 2:
        raise TypeError("x0 must be a tensor of shape [B, *event]")
    if num_classes is None:
        if not x0.is_floating_point():
            raise TypeError(f"binary x0 must be floating ({{0, 1}}), got {x0.dtype}; "
                            "pass num_classes for categorical int64 data")
        values = torch.tensor([0.0, 1.0], dtype=x0.dtype, device=x0.device)
    else:
        if x0.dtype != torch.int64:
            raise TypeError(f"categorical x0 must be int64, got {x0.dtype}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        values = torch.arange(num_classes, device=x0.device)
    if isinstance(sweeps, bool) or not isinstance(sweeps, int) or sweeps < 0:
        raise ValueError(f"sweeps must be a non-negative int, got {sweeps!r}")
    b, event = x0.shape[0], x0.shape[1:]
    x = x0.reshape(b, -1).clone()
    d, k = x.shape[1], len(values)
    rows = torch.arange(b, device=x.device)

    for _ in range(sweeps):
        for step in range(d):
            if scan == "systematic":
                idx = torch.full((b,), step, dtype=torch.long, device=x.device)
            else:
                idx = torch.randint(0, d, (b,), generator=generator, device=x.device)
            cand = x.repeat(k, 1)  # [K*B, D]: block c has coordinate idx set to values[c]
            cand[torch.arange(k * b, device=x.device), idx.repeat(k)] = values.repeat_interleave(b)
            u = energy(cand.reshape(k * b, *event)).reshape(k, b)
            probs = torch.softmax(-u.double(), 0)  # [K, B]
            # Inverse-CDF draw: the chosen class is the number of CDF values below uniform.
            uniform = torch.rand(b, generator=generator, device=x.device, dtype=torch.float64)
            choice = (torch.cumsum(probs, 0)[:-1] < uniform).sum(0)
            x[rows, idx] = values[choice]
    return x.reshape(b, *event)
