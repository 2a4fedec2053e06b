"""The fused ED op of :class:`~edfast.energies.MLPEnergy` (DESIGN §5): fake kernel, autograd,
and the loss function :func:`energy_discrepancy` dispatches to.

``torch.ops.edfast.mlp_ed`` draws y and the M negatives of each row from the seed exactly as
:func:`edfast.perturb` does, runs them through the network a tile of rows at a time (the
activations stay in cache on the CPU, on chip on CUDA) and reduces each row with an online
logsumexp. No ``[B, M, D]`` tensor exists and nothing of size M is saved for backward: it keeps
``row_stats [B, 3]`` and regenerates the negatives from the seed (csrc/cpu/mlp.cpp,
csrc/cuda/mlp.cu).

When the loss is a mean or a sum, every row's upstream gradient is the same number, so the CPU
forward can differentiate each tile while it is still in cache and backward only scales the
result: ``precompute_grads=True`` is that promise (checked in backward: another upstream
gradient raises). Without it, backward regenerates the items and differentiates them.
"""
from __future__ import annotations

from typing import List, Optional

import torch

from edfast import _C  # noqa: F401  (loading the library registers the ops)
from edfast.energies import MLPEnergy
from edfast.energies.mlp import ACTIVATIONS
from edfast.perturbations import Bernoulli, BitFlip, Gaussian, Perturbation

__all__ = ["mlp_kernel_problem", "fused_mlp"]

#: The range of the fused MLP kernels (csrc/core/mlp.h); beyond it the generic path serves.
MAX_INPUT = 1024
MAX_WIDTH = 256
MAX_HIDDEN_LAYERS = 8
PERTURBATIONS = (Gaussian, Bernoulli, BitFlip)


@torch.library.register_fake("edfast::mlp_ed")
def _mlp_fake(x, weights, biases, activation, kind, param, m, w, seed, row_offset, precompute_grads=False,
              grad_x=False):
    torch._check(x.dim() == 2, lambda: f"x must have shape [B, D], got {list(x.shape)}")
    b = x.shape[0]
    v, stats = x.new_empty(b), x.new_empty(b, 3)
    # Only the CPU forward precomputes gradients (ops_mlp.cpp's kPrecomputesGrads); CUDA's
    # returns empty lists, which the autograd below then does without.
    if precompute_grads and x.device.type == "cpu":
        return (v, stats, [torch.empty_like(t) for t in weights], [torch.empty_like(t) for t in biases],
                torch.empty_like(x) if grad_x else x.new_empty(0))
    return v, stats, [], [], x.new_empty(0)


@torch.library.register_fake("edfast::mlp_ed_backward")
def _mlp_backward_fake(grad_v, x, weights, biases, row_stats, activation, kind, param, m, w, seed, row_offset,
                       grad_x):
    return ([torch.empty_like(t) for t in weights], [torch.empty_like(t) for t in biases],
            torch.empty_like(x) if grad_x else x.new_empty(0))


def _setup(ctx, inputs, output):
    x, weights, biases, activation, kind, param, m, w, seed, row_offset, *_ = inputs
    _, stats, grad_weights, grad_biases, grad_x = output
    ctx.layers = len(weights)
    ctx.precomputed = len(grad_weights) > 0
    ctx.args = (activation, kind, param, m, w, seed, row_offset)
    saved = [x, stats, *weights, *biases]
    if ctx.precomputed:
        saved += [*grad_weights, *grad_biases, grad_x]
    ctx.save_for_backward(*saved)
    ctx.mark_non_differentiable(stats, grad_x, *grad_weights, *grad_biases)


def _backward(ctx, grad_v, _grad_stats, _grad_weights, _grad_biases, _grad_x):
    x, stats, *rest = ctx.saved_tensors
    layers = ctx.layers
    weights, biases, rest = rest[:layers], rest[layers:2 * layers], rest[2 * layers:]
    want_x = ctx.needs_input_grad[0]
    if ctx.precomputed and (not want_x or rest[-1].numel() > 0):
        # The caller promised that every row's v enters the loss with the same weight (a mean
        # or a sum): the forward's gradients of sum_i v_i scaled by it (x's row by row). The
        # promise is checked without a data-dependent branch, so torch.compile can trace it.
        torch._assert_async((grad_v == grad_v[0]).all(),
                            "edfast.mlp_ed: precompute_grads=True needs the same upstream gradient for every "
                            "row (a mean or a sum of v); use precompute_grads=False")
        scale = grad_v[0]
        grad_weights = [g * scale for g in rest[:layers]]
        grad_biases = [g * scale for g in rest[layers:2 * layers]]
        grad_x = rest[-1] * grad_v.unsqueeze(1) if want_x else None
    else:
        grad_weights, grad_biases, grad_x = torch.ops.edfast.mlp_ed_backward(
            grad_v, x, weights, biases, stats, *ctx.args, want_x)
        grad_x = grad_x if want_x else None
    return (grad_x, list(grad_weights), list(grad_biases)) + (None,) * 9


torch.library.register_autograd("edfast::mlp_ed", _backward, setup_context=_setup)


def mlp_kernel_problem(energy: MLPEnergy, x: torch.Tensor, perturbation: Perturbation) -> Optional[str]:
    """Why the fused MLP op cannot serve ``(energy, x, perturbation)``, or None when it can.

    Served: Gaussian, Bernoulli or BitFlip noise; float32 or float64 parameters with x [B, D]
    of their dtype; D <= 1024 inputs, hidden widths <= 256, at most 8 hidden layers; every
    layer with its bias.
    """
    if not isinstance(perturbation, PERTURBATIONS):
        return f"the fused MLPEnergy kernel takes Gaussian, Bernoulli or BitFlip, not {type(perturbation).__name__}"
    if energy.activation not in ACTIVATIONS:
        return f"the fused MLPEnergy kernel has no activation {energy.activation!r}"
    weight = energy.linears[0].weight
    if weight.dtype not in (torch.float32, torch.float64):
        return f"the fused kernels take float32 or float64 parameters, got {weight.dtype}"
    if x.dim() != 2 or x.dtype != weight.dtype:
        return f"the fused MLPEnergy kernel takes x of shape [B, D] and dtype {weight.dtype}, got {list(x.shape)} {x.dtype}"
    if energy.in_features > MAX_INPUT:
        return f"the fused MLPEnergy kernel takes up to {MAX_INPUT} input features, got {energy.in_features}"
    if len(energy.hidden) > MAX_HIDDEN_LAYERS or any(h > MAX_WIDTH for h in energy.hidden):
        return (f"the fused MLPEnergy kernel takes up to {MAX_HIDDEN_LAYERS} hidden layers of width up to "
                f"{MAX_WIDTH}, got {list(energy.hidden)}")
    if any(layer.bias is None for layer in energy.linears):
        return "the fused MLPEnergy kernel needs every layer's bias"
    return None


def fused_mlp(energy: MLPEnergy, x, perturbation, m, w, seed, row_offset, reduction="mean") -> torch.Tensor:
    """v [B] of the ED loss from ``torch.ops.edfast.mlp_ed`` (the checks are
    :func:`mlp_kernel_problem`'s)."""
    weights: List[torch.Tensor] = [layer.weight for layer in energy.linears]
    biases: List[torch.Tensor] = [layer.bias for layer in energy.linears]
    kind, param, _ = perturbation.op_args(x.device)
    differentiable = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in weights + biases))
    # A mean or sum gives every row the same upstream gradient: let the forward take it.
    precompute = differentiable and reduction != "none"
    v, _stats, _gw, _gb, _gx = torch.ops.edfast.mlp_ed(
        x, weights, biases, energy.activation, kind, param, m, w, seed, row_offset, precompute,
        precompute and x.requires_grad)
    return v

