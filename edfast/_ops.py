"""Thin wrappers over ``torch.ops.edfast.*``: fake kernels, autograd formulas and the Python
entry points ``perturb`` and ``contrastive_logsumexp``."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from edfast import _C  # noqa: F401  (loading the library registers the ops)
from edfast.perturbations import KIND_GAUSSIAN, Perturbation

__all__ = ["perturb", "contrastive_logsumexp", "draw_seed", "cuda_kernels_built"]

_MAX_SEED = 2**63 - 1


def cuda_kernels_built() -> bool:
    """Whether this build of edfast carries CUDA kernels."""
    return torch._C._dispatch_has_kernel_for_dispatch_key("edfast::perturb", "CUDA")


# ---------------------------------------------------------------- perturb


@torch.library.register_fake("edfast::perturb")
def _perturb_fake(x, kind, param, transition_cdf, m, seed, row_offset, neg_offset):
    if m < 1:
        raise ValueError(f"edfast.perturb: m must be >= 1, got {m}")
    return x.new_empty(x.shape), x.new_empty((x.shape[0], m, *x.shape[1:]))


def _perturb_setup(ctx, inputs, output):
    ctx.kind = inputs[1]


def _perturb_backward(ctx, grad_y, grad_negatives):
    # Gaussian: y = x + s xi, x'_j = y + s xi_j, so dx = dy + sum_j dx'_j. Discrete: no gradient.
    grad_x = grad_y + grad_negatives.sum(dim=1) if ctx.kind == KIND_GAUSSIAN else None
    return grad_x, None, None, None, None, None, None, None


torch.library.register_autograd("edfast::perturb", _perturb_backward, setup_context=_perturb_setup)


def draw_seed(generator: Optional[torch.Generator] = None) -> int:
    """A seed for the edfast ops drawn from ``generator`` (default: torch's default CPU
    generator), so ``torch.manual_seed`` makes runs reproducible."""
    return int(torch.randint(0, _MAX_SEED, (), generator=generator, dtype=torch.int64))


def _check_index(name: str, value) -> int:
    # SymInt: under torch.compile a changing seed becomes symbolic instead of recompiling.
    if isinstance(value, bool) or not isinstance(value, (int, torch.SymInt)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def perturb(
    x: torch.Tensor,
    perturbation: Perturbation,
    m: int,
    *,
    seed: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    row_offset: int = 0,
    first_negative: int = 0,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Draw ``y ~ q(.|x)`` and ``m`` negatives ``x'_j ~ q(.|y)`` per data row.

    Args:
        x: ``[B, *event]``. Gaussian: float16/bfloat16/float32/float64. Bernoulli, BitFlip:
            floating, integer or bool holding 0/1. Categorical family: int64 in [0, K).
        perturbation: an ``edfast`` perturbation.
        m: negatives per data row, >= 1.
        seed: int in [0, 2^63); drawn from ``generator`` when None.
        row_offset: global index of row 0. Row ``i``'s noise depends only on
            ``(seed, row_offset + i)``, so shards of a batch with matching offsets draw the
            whole batch's noise.
        first_negative: global index of negative 0: negatives ``first_negative ..
            first_negative + m - 1`` of the same y (for evaluating the M axis in chunks).

    Returns:
        ``(y, negatives)``: ``y`` like ``x``, ``negatives`` ``[B, m, *event]``, both of x's
        dtype and device. Differentiable with respect to x for Gaussian noise.
    """
    if not isinstance(perturbation, Perturbation):
        raise TypeError(f"perturbation must be an edfast perturbation, got {type(perturbation).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if isinstance(m, bool) or not isinstance(m, int):
        raise TypeError(f"m must be an int, got {type(m).__name__}")
    if m < 1:
        raise ValueError(f"m (negatives per data point) must be >= 1, got {m}")
    seed = draw_seed(generator) if seed is None else _check_index("seed", seed)
    if seed > _MAX_SEED:
        raise ValueError(f"seed must be < 2^63, got {seed}")
    kind, param, cdf = perturbation.op_args(x.device)
    return torch.ops.edfast.perturb(
        x, kind, param, cdf, m, seed, _check_index("row_offset", row_offset),
        _check_index("first_negative", first_negative),
    )


# ---------------------------------------------------------------- contrastive logsumexp


def _accumulate_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


@torch.library.register_fake("edfast::contrastive_logsumexp")
def _contrastive_fake(e_pos, e_neg, w):
    torch._check(e_pos.dim() == 1 and e_neg.dim() == 2, lambda: "e_pos must be [B], e_neg [B, M]")
    return e_pos.new_empty(e_pos.shape), e_pos.new_empty(e_pos.shape, dtype=_accumulate_dtype(e_pos.dtype))


@torch.library.register_fake("edfast::contrastive_logsumexp_backward")
def _contrastive_backward_fake(grad_v, e_pos, e_neg, log_normaliser):
    return torch.empty_like(e_pos), torch.empty_like(e_neg)


def _contrastive_setup(ctx, inputs, output):
    e_pos, e_neg, _ = inputs
    _, log_normaliser = output
    ctx.save_for_backward(e_pos, e_neg, log_normaliser)
    ctx.mark_non_differentiable(log_normaliser)


def _contrastive_backward(ctx, grad_v, _grad_log_normaliser):
    e_pos, e_neg, log_normaliser = ctx.saved_tensors
    grad_pos, grad_neg = torch.ops.edfast.contrastive_logsumexp_backward(
        grad_v, e_pos, e_neg, log_normaliser
    )
    return grad_pos, grad_neg, None


torch.library.register_autograd(
    "edfast::contrastive_logsumexp", _contrastive_backward, setup_context=_contrastive_setup
)


def contrastive_logsumexp(e_pos: torch.Tensor, e_neg: torch.Tensor, w: float = 1.0) -> torch.Tensor:
    """``v_i = log(w/M + (1/M) sum_j exp(e_pos_i - e_neg_ij))``, the ED contrast per row.

    Args:
        e_pos: ``[B]`` energies U(x_i) of the data.
        e_neg: ``[B, M]`` energies U(x'_ij) of the negatives, M >= 1.
        w: stabiliser, finite and >= 0 (``w = 0`` is allowed and known to be unstable).

    Returns:
        ``v``: ``[B]`` in the common dtype of the inputs; float16/bfloat16 accumulate in
        float32. Differentiable with respect to both inputs; finite for energies up to 1e4.
        This is the paper's normalised value: the authors' code reports ``v + log M``.
    """
    if not isinstance(e_pos, torch.Tensor) or not isinstance(e_neg, torch.Tensor):
        raise TypeError("e_pos and e_neg must be torch.Tensors")
    if isinstance(w, bool) or not isinstance(w, (int, float)):
        raise TypeError(f"w must be a float, got {type(w).__name__}")
    if not (math.isfinite(w) and w >= 0):
        raise ValueError(f"w must be finite and >= 0, got {w}")
    if e_pos.dtype != e_neg.dtype and e_pos.is_floating_point() and e_neg.is_floating_point():
        common = torch.promote_types(e_pos.dtype, e_neg.dtype)
        e_pos, e_neg = e_pos.to(common), e_neg.to(common)
    v, _ = torch.ops.edfast.contrastive_logsumexp(e_pos, e_neg, float(w))
    return v
