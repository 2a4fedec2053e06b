"""PNG pictures of the train commands, drawn with matplotlib's Agg canvas.

Figures are built as ``matplotlib.figure.Figure`` objects (no pyplot, no global backend
switch), so importing this module never changes the user's matplotlib state.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

DPI = 80


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=DPI)


def loss_curve(losses, path: Path, *, title: str = "") -> None:
    """Training loss per step, with a running mean over 1% of the steps."""
    fig = _figure(5, 3)
    ax = fig.add_subplot()
    y = np.asarray(losses, dtype=np.float64)
    x = np.arange(1, len(y) + 1)
    ax.plot(x, y, lw=0.5, alpha=0.4, color="C0", label="loss")
    k = max(1, len(y) // 100)
    if k > 1:
        smooth = np.convolve(y, np.ones(k) / k, mode="valid")
        ax.plot(x[k - 1:], smooth, color="C0", label=f"mean of {k}")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel("ED loss")
    ax.set_title(title, fontsize=10)
    _save(fig, path)


def _square(ax, lim):
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def toy_density(data: torch.Tensor, log_density: torch.Tensor, samples: torch.Tensor, path: Path,
                *, lim: float, title: str) -> None:
    """Three panels: data | learned density exp(-U)/Z on the grid | samples from the model."""
    fig = _figure(9.6, 3.5)
    axes = fig.subplots(1, 3)
    d = data.cpu().numpy()
    axes[0].hist2d(d[:, 0], d[:, 1], bins=120, range=[[-lim, lim], [-lim, lim]], cmap="magma")
    axes[0].set_title("data", fontsize=10)
    axes[1].imshow(log_density.exp().cpu().numpy(), origin="lower", extent=(-lim, lim, -lim, lim),
                   cmap="magma", interpolation="bilinear")
    axes[1].set_title("learned density exp(-U)/Z", fontsize=10)
    s = samples.cpu().numpy()
    axes[2].hist2d(s[:, 0], s[:, 1], bins=80, range=[[-lim, lim], [-lim, lim]], cmap="magma")
    axes[2].set_title("model samples (Langevin)", fontsize=10)
    for ax in axes:
        _square(ax, lim)
    fig.suptitle(title, fontsize=11)
    _save(fig, path)


def ising_couplings(learned: torch.Tensor, true: torch.Tensor, curve_steps, curve_rmse,
                    path: Path, *, title: str) -> None:
    """Three panels: learned J | true J (same colour scale) | coupling RMSE over training."""
    fig = _figure(11, 3.6)
    axes = fig.subplots(1, 3)
    lj, tj = learned.detach().cpu().numpy(), true.cpu().numpy()
    vmax = max(float(np.abs(tj).max()), float(np.abs(lj).max()), 1e-12)
    for ax, mat, name in ((axes[0], lj, "learned J"), (axes[1], tj, "true J")):
        im = ax.imshow(mat, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[:2], shrink=0.8)
    ax = axes[2]
    ax.plot(curve_steps, curve_rmse, marker=".", ms=3)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("RMSE(J_learned, J_true)")
    final = curve_rmse[-1]
    nlr = -math.log(final) if final > 0 else math.inf
    ax.set_title(f"final RMSE {final:.2e} (-log RMSE {nlr:.2f})", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    fig.suptitle(title, fontsize=11)
    _save(fig, path)


def discrete_toy(data_xy: torch.Tensor, sample_xy: torch.Tensor, path: Path, *, lim: float,
                 title: str) -> None:
    """Two panels: decoded data | decoded model samples, as 2D histograms on [-lim, lim]^2."""
    fig = _figure(6.8, 3.6)
    axes = fig.subplots(1, 2)
    for ax, xy, name in ((axes[0], data_xy, "data (decoded)"),
                         (axes[1], sample_xy, "model samples (Gibbs, decoded)")):
        a = xy.cpu().numpy()
        ax.hist2d(a[:, 0], a[:, 1], bins=100, range=[[-lim, lim], [-lim, lim]], cmap="magma")
        ax.set_title(name, fontsize=10)
        _square(ax, lim)
    fig.suptitle(title, fontsize=11)
    _save(fig, path)


def image_grid(samples: torch.Tensor, data: torch.Tensor, path: Path, *, side: int, title: str) -> None:
    """Two panels: a grid of data images | a grid of model samples (binary side x side)."""

    def tile(x):
        x = x.detach().float().cpu().reshape(-1, side, side).numpy()
        n = x.shape[0]
        cols = int(math.ceil(math.sqrt(n)))
        rows = int(math.ceil(n / cols))
        canvas = np.full((rows * (side + 1) + 1, cols * (side + 1) + 1), 0.5)
        for k in range(n):
            r, c = divmod(k, cols)
            canvas[1 + r * (side + 1):1 + r * (side + 1) + side,
                   1 + c * (side + 1):1 + c * (side + 1) + side] = x[k]
        return canvas

    fig = _figure(7.2, 3.9)
    axes = fig.subplots(1, 2)
    for ax, x, name in ((axes[0], data, "data"), (axes[1], samples, "model samples (Gibbs)")):
        ax.imshow(tile(x), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=11)
    _save(fig, path)
