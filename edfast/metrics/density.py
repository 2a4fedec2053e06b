"""Densities of 2D energy models on a grid, and their error against a known density."""

from __future__ import annotations

import math

import torch

from edfast.data.toy2d import toy_log_density


def grid_points(lim: float = 4.0, resolution: int = 256, *, dtype=torch.float32, device="cpu"):
    """Centres of a resolution x resolution grid of cells covering [-lim, lim]^2.

    Returns (points [R*R, 2], cell_area). Point ``r * R + c`` has coordinates
    (centres[c], centres[r]): row index is y, column index is x, so ``values.reshape(R, R)``
    displays with ``imshow(..., origin="lower", extent=(-lim, lim, -lim, lim))``.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an int >= 2, got {resolution!r}")
    if not lim > 0:
        raise ValueError(f"lim must be positive, got {lim}")
    h = 2.0 * lim / resolution
    centres = torch.linspace(-lim + h / 2, lim - h / 2, resolution, dtype=torch.float64)
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    points = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    return points.to(dtype=dtype, device=device), h * h


def _normalised_log_density(log_unnorm: torch.Tensor, cell_area: float) -> torch.Tensor:
    # Midpoint rule: sum_cells p * area = 1.
    return log_unnorm - torch.logsumexp(log_unnorm.reshape(-1), 0) - math.log(cell_area)


@torch.no_grad()
def grid_log_density(energy, *, lim: float = 4.0, resolution: int = 256,
                     batch_size: int = 2**16, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """log p(x) = -U(x) - log Z on the grid of :func:`grid_points`, Z by the midpoint rule
    over [-lim, lim]^2 (mass outside the square is ignored).

    Args:
        energy: callable [N, 2] (``dtype`` on ``device``) -> U [N].
    Returns: float64 [R, R] (row = y, column = x).
    """
    points, area = grid_points(lim, resolution, dtype=dtype, device=device)
    neg_u = torch.cat([-energy(points[i:i + batch_size]).double()
                       for i in range(0, len(points), batch_size)])
    return _normalised_log_density(neg_u, area).reshape(resolution, resolution)


@torch.no_grad()
def grid_density_error(energy, true, *, lim: float = 4.0, resolution: int = 256,
                       dtype=torch.float32, device="cpu") -> dict:
    """Compare a 2D energy model with a known density on the grid.

    Both densities are normalised on the grid (midpoint rule); with p the true and q the
    model density:
      - ``kl``: KL(p || q) = sum_cells p (log p - log q) * area (nats);
      - ``tv``: total variation 0.5 * sum_cells |p - q| * area, in [0, 1];
      - ``mae_log_density``: E_p |log p - log q| (mean absolute log-density error, weighted
        by the true density so that empty regions, where log p -> -inf, do not dominate).

    Resolve narrow components: 25gaussians has std 0.0177, so resolution should be a few
    times 2 * lim / 0.0177 for the grid values to be meaningful there.

    Args:
        energy: callable [N, 2] -> U [N].
        true: a name in ``TOY_DENSITIES`` or a callable mapping points [N, 2] to log p [N]
            (normalisation need not be exact; it is renormalised on the grid).
    Returns: dict of floats.
    """
    points, area = grid_points(lim, resolution, dtype=torch.float64, device=device)
    true_fn = (lambda p: toy_log_density(true, p)) if isinstance(true, str) else true
    log_p = _normalised_log_density(true_fn(points).double(), area)
    log_q = grid_log_density(energy, lim=lim, resolution=resolution, dtype=dtype,
                             device=device).reshape(-1)
    p = log_p.exp()
    weight = p * area
    # Cells where the true density is exactly 0 contribute 0 (avoids 0 * inf = nan).
    diff = torch.where(weight > 0, log_p - log_q, torch.zeros_like(log_p))
    return {
        "kl": float((weight * diff).sum()),
        "tv": float(0.5 * ((p - log_q.exp()).abs() * area).sum()),
        "mae_log_density": float((weight * diff.abs()).sum()),
    }
