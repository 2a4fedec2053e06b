"""Langevin samplers for continuous energies: unadjusted (ULA) and Metropolis-adjusted (MALA)."""

from __future__ import annotations

import math

import torch


def _energy_and_grad(energy, x):
    """U(x) [B] and dU/dx [B, *event], without touching the energy's parameter grads."""
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        u = energy(xr)
        if u.shape != x.shape[:1]:
            raise ValueError(f"energy must map [B, *event] to [B]; got {list(u.shape)} "
                             f"for input {list(x.shape)}")
        (grad,) = torch.autograd.grad(u.sum(), xr)
    return u.detach(), grad


@torch.no_grad()
def langevin(energy, x0: torch.Tensor, steps: int, step_size: float, *, adjusted: bool = False,
             generator: torch.Generator | None = None, return_acceptance: bool = False):
    r"""Run Langevin dynamics targeting p(x) ∝ exp(-U(x)), one chain per row of ``x0``.

    Proposal (step size :math:`\epsilon`):
    :math:`x' = x - \epsilon \nabla U(x) + \sqrt{2\epsilon}\,\xi`, :math:`\xi \sim N(0, I)`.
    ULA (``adjusted=False``) always moves and is biased by O(epsilon). MALA accepts with
    probability :math:`\min(1, \exp(U(x) - U(x') + \log q(x|x') - \log q(x'|x)))`, with
    :math:`q(b|a) = N(b; a - \epsilon\nabla U(a), 2\epsilon I)`, so p is exactly invariant.

    Args:
        energy: callable mapping x [B, *event] (floating) to U [B]; differentiable in x.
        x0: start [B, *event], floating. Not modified.
        steps: number of steps (>= 0).
        step_size: epsilon > 0.
        adjusted: MALA if True, ULA otherwise.
        generator: torch.Generator on x0's device for the noise (default: torch's global one).
        return_acceptance: also return each chain's acceptance rate [B] (ones for ULA).

    Returns:
        x [B, *event] (detached), and the acceptance rates if asked.
    """
    if not isinstance(x0, torch.Tensor) or not x0.is_floating_point() or x0.dim() < 2:
        raise TypeError("x0 must be a floating-point tensor of shape [B, *event]")
    if not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    x = x0.detach().clone()
    event_dims = tuple(range(1, x.dim()))
    u, grad = _energy_and_grad(energy, x)
    accepted = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    noise_scale = math.sqrt(2.0 * step_size)
    for _ in range(steps):
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        proposal = x - step_size * grad + noise_scale * noise
        u_new, grad_new = _energy_and_grad(energy, proposal)
        if not adjusted:
            x, u, grad = proposal, u_new, grad_new
            accepted += 1
            continue
        # log q(x'|x) = -|noise|^2/2 and log q(x|x') = -|x - x' + eps grad U(x')|^2 / (4 eps),
        # dropping the shared normalising constant.
        log_fwd = -0.5 * (noise**2).sum(event_dims)
        back = x - proposal + step_size * grad_new
        log_bwd = -(back**2).sum(event_dims) / (4.0 * step_size)
        log_alpha = u - u_new + log_bwd - log_fwd
        uniform = torch.rand(log_alpha.shape, generator=generator, device=x.device, dtype=x.dtype)
        accept = torch.log(uniform) < log_alpha
        keep = accept.view(-1, *([1] * len(event_dims)))
        x = torch.where(keep, proposal, x)
        grad = torch.where(keep, grad_new, grad)
        u = torch.where(accept, u_new, u)
        accepted += accept.to(x.dtype)
    if return_acceptance:
        return x, accepted / max(steps, 1)
    return x
