"""The FFJORD 2D toy densities (Grathwohl et al. 2019), widely reused for EBM pictures.

Every dataset is drawn from an explicit generator (see :func:`sample_toy`); nothing uses
numpy's or torch's global RNG. Definitions follow the FFJORD generator (see ED-FACTS.md).
Where FFJORD fixes the number of points per component (pinwheel: n//5 per arm,
25gaussians: n//25 per centre, 2spirals: two mirror-image halves) we draw the component
of each point at random instead, so exactly ``n`` i.i.d. points come out with the same
per-point law. swissroll, circles, moons use scikit-learn's generators as FFJORD does
(circles/moons place points at evenly spaced angles, so those are not i.i.d.: that is
the definition); rings likewise uses evenly spaced angles on each ring.
"""

from __future__ import annotations

import math

import numpy as np
import sklearn.datasets
import torch

from edfast.data._rng import as_random_state

TOY_DATASETS = ("swissroll", "circles", "moons", "8gaussians", "25gaussians", "pinwheel",
                "2spirals", "checkerboard", "rings")
#: Datasets whose generating density is a known Gaussian mixture (see toy_log_density).
TOY_DENSITIES = ("8gaussians", "25gaussians")


def _mixture(name: str) -> tuple[np.ndarray, float]:
    """(centres [C, 2], isotropic std) of a mixture dataset, after FFJORD's rescaling."""
    if name == "8gaussians":
        angles = np.arange(8) * (np.pi / 4)
        centres = 4.0 * np.stack([np.cos(angles), np.sin(angles)], 1) / 1.414
        return centres, 0.5 / 1.414
    grid = 2.0 * np.arange(-2, 3, dtype=np.float64)
    gx, gy = np.meshgrid(grid, grid, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], 1) / 2.828, 0.05 / 2.828


def _sample_mixture(name, n, rs):
    centres, std = _mixture(name)
    idx = rs.randint(len(centres), size=n)
    return centres[idx] + std * rs.randn(n, 2)


def _pinwheel(n, rs):
    # Arms at 5 evenly spaced angles; the radial coordinate ~ N(1, 0.3^2) also sets the twist.
    features = rs.randn(n, 2) * np.array([0.3, 0.1])
    features[:, 0] += 1.0
    arms = rs.randint(5, size=n)
    angles = arms * (2 * np.pi / 5) + 0.25 * np.exp(features[:, 0])
    c, s = np.cos(angles), np.sin(angles)
    # Row vector times the rotation [[c, -s], [s, c]].
    x = np.stack([features[:, 0] * c + features[:, 1] * s,
                  -features[:, 0] * s + features[:, 1] * c], 1)
    return 2.0 * x


def _two_spirals(n, rs):
    t = np.sqrt(rs.rand(n)) * 540 * (2 * np.pi) / 360
    x = np.stack([-np.cos(t) * t + 0.5 * rs.rand(n), np.sin(t) * t + 0.5 * rs.rand(n)], 1)
    arm = np.where(rs.rand(n) < 0.5, 1.0, -1.0)[:, None]  # the second arm is the mirror image
    return arm * x / 3 + 0.1 * rs.randn(n, 2)


def _checkerboard(n, rs):
    x1 = rs.rand(n) * 4 - 2
    x2 = rs.rand(n) - 2 * rs.randint(0, 2, size=n) + np.floor(x1) % 2
    return 2.0 * np.stack([x1, x2], 1)


def _rings(n, rs):
    # Radii 1, .75, .5, .25 (times 3); n//4 points on each of the outer three rings, the rest
    # on the innermost, at evenly spaced angles; shuffled, then N(0, 0.08^2) noise.
    counts = [n // 4] * 3 + [n - 3 * (n // 4)]
    parts = []
    for radius, m in zip((1.0, 0.75, 0.5, 0.25), counts):
        a = np.linspace(0, 2 * np.pi, m, endpoint=False)
        parts.append(radius * np.stack([np.cos(a), np.sin(a)], 1))
    x = 3.0 * np.concatenate(parts)[rs.permutation(n)]
    return x + 0.08 * rs.randn(n, 2)


def sample_toy(name: str, n: int, *, generator) -> torch.Tensor:
    """Draw ``n`` points of the toy dataset ``name``.

    Args:
        name: one of :data:`TOY_DATASETS`.
        n: number of points (>= 1).
        generator: a ``torch.Generator``, an int seed, a numpy ``RandomState`` or numpy
            ``Generator``; the same seed gives the same points.

    Returns:
        float32 tensor [n, 2] on the CPU.
    """
    if name not in TOY_DATASETS:
        raise ValueError(f"unknown toy dataset {name!r}; valid names: {', '.join(TOY_DATASETS)}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    n = int(n)
    rs = as_random_state(generator)
    if name == "swissroll":
        x = sklearn.datasets.make_swiss_roll(n_samples=n, noise=1.0, random_state=rs)[0]
        x = x[:, [0, 2]] / 5.0
    elif name == "circles":
        x = 3.0 * sklearn.datasets.make_circles(n_samples=n, factor=0.5, noise=0.08,
                                                random_state=rs)[0]
    elif name == "moons":
        x = sklearn.datasets.make_moons(n_samples=n, noise=0.1, random_state=rs)[0]
        x = 2.0 * x + np.array([-1.0, -0.2])
    elif name in TOY_DENSITIES:
        x = _sample_mixture(name, n, rs)
    elif name == "pinwheel":
        x = _pinwheel(n, rs)
    elif name == "2spirals":
        x = _two_spirals(n, rs)
    elif name == "checkerboard":
        x = _checkerboard(n, rs)
    else:
        x = _rings(n, rs)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def toy_log_density(name: str, x: torch.Tensor) -> torch.Tensor:
    """Exact log-density of the generating mixture of ``name`` at points ``x``.

    Equal-weight isotropic Gaussian mixtures: 8gaussians (centres 4(cos, sin)(k pi/4)/1.414,
    std 0.5/1.414) and 25gaussians (centres 2(i, j)/2.828 for i, j in -2..2, std 0.05/2.828).

    Args:
        name: one of :data:`TOY_DENSITIES`.
        x: [n, 2] floating tensor.

    Returns:
        [n] tensor, computed in float64, returned in x's dtype and device.
    """
    if name not in TOY_DENSITIES:
        raise ValueError(f"no known density for {name!r}; known: {', '.join(TOY_DENSITIES)}")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating-point torch.Tensor")
    if x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape [n, 2], got {list(x.shape)}")
    centres, std = _mixture(name)
    c = torch.as_tensor(centres, dtype=torch.float64, device=x.device)
    d2 = ((x.double()[:, None, :] - c) ** 2).sum(-1)  # [n, C]
    log_comp = -d2 / (2 * std**2) - math.log(2 * math.pi * std**2)
    return (torch.logsumexp(log_comp, 1) - math.log(len(centres))).to(x.dtype)
