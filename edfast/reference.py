"""Pure-PyTorch oracle for every edfast op, written the obvious way (DESIGN §2).

The perturbations here draw from torch's RNG, not edfast's Philox streams: tests compare them
with the kernels statistically, and compare everything else exactly on shared inputs.
"""
from __future__ import annotations

import math
from typing import Tuple

import torch

from edfast.perturbations import (
    Bernoulli,
    BitFlip,
    Categorical,
    Cyclic,
    Gaussian,
    Ordinal,
    Perturbation,
)

__all__ = [
    "perturb_step",
    "perturb",
    "transition_matrix",
    "contrastive_logsumexp",
    "energy_discrepancy_from_samples",
    "mlp_energy",
]

#: The MLP activations as torch defines them (edfast.energies.MLPEnergy's).
_MLP_ACTIVATIONS = {
    "softplus": torch.nn.functional.softplus,
    "silu": torch.nn.functional.silu,
    "relu": torch.relu,
    "leaky_relu": lambda h: torch.nn.functional.leaky_relu(h, 0.2),
    "tanh": torch.tanh,
    "elu": torch.nn.functional.elu,
}


def transition_matrix(perturbation: Perturbation) -> torch.Tensor:
    """The one-coordinate transition matrix ``[K, K]`` (float64) of a categorical-family
    perturbation, computed independently of edfast.perturbations: heat kernels by the
    eigendecomposition of the graph Laplacian."""
    k = perturbation.num_classes
    if isinstance(perturbation, Categorical):
        return (1 - perturbation.epsilon) * torch.eye(k, dtype=torch.float64) + perturbation.epsilon / k
    adjacency = torch.zeros(k, k, dtype=torch.float64)
    for a in range(k):
        for b in range(k):
            if abs(a - b) == 1 or (isinstance(perturbation, Cyclic) and abs(a - b) == k - 1):
                adjacency[a, b] = 1.0
    if not isinstance(perturbation, (Cyclic, Ordinal)):
        raise TypeError(f"no transition matrix for {perturbation!r}")
    laplacian = adjacency - torch.diag(adjacency.sum(1))
    eigenvalues, eigenvectors = torch.linalg.eigh(laplacian)
    return eigenvectors @ torch.diag(torch.exp(perturbation.t * eigenvalues)) @ eigenvectors.T


def perturb_step(a: torch.Tensor, perturbation: Perturbation, generator=None) -> torch.Tensor:
    """One step ``a -> b`` of the perturbation, independently for every row of ``a``
    (``[N, *event]``)."""
    if isinstance(perturbation, Gaussian):
        noise = torch.randn(a.shape, generator=generator, dtype=a.dtype, device=a.device)
        return a + perturbation.scale * noise
    if isinstance(perturbation, Bernoulli):
        flip = torch.rand(a.shape, generator=generator, device=a.device) < perturbation.epsilon
        return torch.where(flip, 1 - a.to(torch.uint8), a.to(torch.uint8)).to(a.dtype)
    if isinstance(perturbation, BitFlip):
        flat = a.reshape(a.shape[0], -1).to(torch.uint8).clone()
        index = torch.randint(0, flat.shape[1], (flat.shape[0],), generator=generator, device=a.device)
        rows = torch.arange(flat.shape[0], device=a.device)
        flat[rows, index] = 1 - flat[rows, index]
        return flat.reshape(a.shape).to(a.dtype)
    probabilities = transition_matrix(perturbation).to(a.device)[a.reshape(-1)]
    moved = torch.multinomial(probabilities, 1, generator=generator).squeeze(1)
    return moved.reshape(a.shape)


def perturb(
    x: torch.Tensor, perturbation: Perturbation, m: int, generator=None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """``y ~ q(.|x)`` and ``m`` negatives ``x'_j ~ q(.|y)``: ``y`` like x, negatives
    ``[B, m, *event]``. The authors' way: repeat y m times and perturb."""
    y = perturb_step(x, perturbation, generator)
    repeated = y.unsqueeze(1).expand(x.shape[0], m, *x.shape[1:]).reshape(x.shape[0] * m, *x.shape[1:])
    negatives = perturb_step(repeated, perturbation, generator)
    return y, negatives.reshape(x.shape[0], m, *x.shape[1:])


def contrastive_logsumexp(e_pos: torch.Tensor, e_neg: torch.Tensor, w: float) -> torch.Tensor:
    """``v_i = log(w/M + (1/M) sum_j exp(e_pos_i - e_neg_ij))`` via torch.logsumexp, in the
    inputs' dtype."""
    m = e_neg.shape[1]
    terms = e_pos.unsqueeze(1) - e_neg
    if w > 0:
        log_w = torch.full_like(e_pos, math.log(w)).unsqueeze(1)
        terms = torch.cat([terms, log_w], dim=1)
    return torch.logsumexp(terms, dim=1) - math.log(m)


def energy_discrepancy_from_samples(
    energy, x: torch.Tensor, negatives: torch.Tensor, w: float, reduction: str = "mean"
) -> torch.Tensor:
    """The ED loss of DESIGN §1 given the negatives ``[B, M, *event]``: evaluate U on x and on
    all B*M negatives, then the contrast."""
    b, m = negatives.shape[:2]
    e_pos = energy(x).reshape(b)
    e_neg = energy(negatives.reshape(b * m, *negatives.shape[2:])).reshape(b, m)
    v = contrastive_logsumexp(e_pos, e_neg, w)
    if reduction == "none":
        return v
    return v.sum() if reduction == "sum" else v.mean()


def mlp_energy(x: torch.Tensor, weights, biases, activation: str) -> torch.Tensor:
    """U [N] of the MLP the fused op ``mlp_ed`` evaluates: ``h = act(h W_l^T + b_l)`` for every
    layer but the last, then ``U = h W_L^T + b_L`` (weights[l]: [out, in], the last [1, in])."""
    act = _MLP_ACTIVATIONS[activation]
    h = x
    for layer, (weight, bias) in enumerate(zip(weights, biases)):
        h = h @ weight.T + bias
        if layer + 1 < len(weights):
            h = act(h)
    return h.squeeze(-1)
