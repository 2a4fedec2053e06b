"""Gibbs-with-Gradients (Grathwohl et al. 2021) for binary energies."""

from __future__ import annotations

import torch


def _logp_and_flip_gain(energy, x, event):
    """f(x) = -U(x) [B] and the first-order estimate of f(flip_i(x)) - f(x), [B, D]."""
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        f = -energy(xr.reshape(x.shape[0], *event))
        (grad,) = torch.autograd.grad(f.sum(), xr)
    # Flipping x_i changes it by (1 - 2 x_i), so the linearised change in f is that times grad.
    return f.detach(), (1.0 - 2.0 * x) * grad


@torch.no_grad()
def gibbs_with_gradients(energy, x0: torch.Tensor, steps: int, *,
                         generator: torch.Generator | None = None,
                         return_acceptance: bool = False):
    """Gibbs-with-Gradients: Metropolis-Hastings with a gradient-informed single-flip proposal.

    With f = -U and d(x) = (1 - 2x) * grad f(x) (estimated gain of flipping each bit), the
    proposal flips coordinate i with probability q(i|x) = softmax(d(x) / 2)_i; the flip is
    accepted with probability min(1, exp(f(x') - f(x)) q(i|x') / q(i|x)), so p(x) ∝ exp(-U(x))
    is exactly invariant.

    Args:
        energy: callable mapping x [B, *event] (floating {0, 1}) to U [B]; differentiable in x.
        x0: start [B, *event], floating {0, 1}. Not modified.
        steps: number of MH steps (each proposes one flip per chain).
        generator: torch.Generator on x0's device (default: torch's global one).
        return_acceptance: also return each chain's acceptance rate [B].

    Returns: x [B, *event], and acceptance rates if asked.
    """
    if not isinstance(x0, torch.Tensor) or not x0.is_floating_point() or x0.dim() < 2:
        raise TypeError("x0 must be a floating-point {0, 1} tensor of shape [B, *event]")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    b, event = x0.shape[0], x0.shape[1:]
    x = x0.reshape(b, -1).detach().clone()
    rows = torch.arange(b, device=x.device)
    f, gain = _logp_and_flip_gain(energy, x, event)
    accepted = torch.zeros(b, dtype=x.dtype, device=x.device)
    for _ in range(steps):
        log_q = torch.log_softmax(gain / 2.0, -1)
        idx = torch.multinomial(log_q.exp(), 1, generator=generator).squeeze(1)
        proposal = x.clone()
        proposal[rows, idx] = 1.0 - proposal[rows, idx]
        f_new, gain_new = _logp_and_flip_gain(energy, proposal, event)
        log_q_back = torch.log_softmax(gain_new / 2.0, -1)[rows, idx]
        log_alpha = f_new - f + log_q_back - log_q[rows, idx]
        uniform = torch.rand(b, generator=generator, device=x.device, dtype=x.dtype)
        accept = torch.log(uniform) < log_alpha
        x = torch.where(accept[:, None], proposal, x)
        f = torch.where(accept, f_new, f)
        gain = torch.where(accept[:, None], gain_new, gain)
        accepted += accept.to(x.dtype)
    x = x.reshape(b, *event)
    if return_acceptance:
        return x, accepted / max(steps, 1)
    return x
