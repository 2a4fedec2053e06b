"""The fused ED ops of edfast's discrete families (DESIGN §5): fake kernels, autograd, and the
dispatch :func:`energy_discrepancy` uses.

``torch.ops.edfast.{ising,potts,rbm}_ed`` draw y and the M negatives of each row from the seed
exactly as :func:`edfast.perturb` does, evaluate each negative's energy as a cheap update of
y's (csrc/core/pairwise.h, csrc/core/rbm.h) and reduce with an online logsumexp: no
``[B, M, D]`` tensor exists, and backward regenerates the negatives from the seed. They take
the modules' *effective* parameters (``Ising.coupling``, ``Potts.coupling``, the RBM's
weight and biases), so autograd reaches the raw parameters through the modules' own
properties (symmetrisation, masks).
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch

from edfast import _C  # noqa: F401  (loading the library registers the ops)
from edfast._ops import cuda_kernels_built
from edfast._fused_mlp import fused_mlp, mlp_kernel_problem
from edfast.energies import BernoulliRBM, Ising, MLPEnergy, Potts
from edfast.perturbations import Bernoulli, BitFlip, Categorical, Cyclic, Ordinal, Perturbation

__all__ = ["fused_kernel", "fused_energy_discrepancy"]

_FLOAT_TYPES = (torch.float32, torch.float64)


# ---------------------------------------------------------------- fake kernels


def _forward_fake(x, parameter, m):
    torch._check(x.dim() == 2, lambda: f"x must have shape [B, D], got {list(x.shape)}")
    b = x.shape[0]
    return parameter.new_empty(b), parameter.new_empty(b), parameter.new_empty(b, m + 1)


@torch.library.register_fake("edfast::ising_ed")
def _ising_fake(x, coupling, bias, kind, param, m, w, seed, row_offset):
    return _forward_fake(x, coupling, m)


@torch.library.register_fake("edfast::potts_ed")
def _potts_fake(x, coupling, bias, cdf, m, w, seed, row_offset):
    return _forward_fake(x, coupling, m)


@torch.library.register_fake("edfast::rbm_ed")
def _rbm_fake(x, weight, visible_bias, hidden_bias, kind, param, m, w, seed, row_offset):
    return _forward_fake(x, weight, m)


@torch.library.register_fake("edfast::ising_ed_backward")
def _ising_backward_fake(grad_v, x, coupling, bias, log_normaliser, energies, kind, param, m, w, seed, row_offset):
    return torch.empty_like(coupling), coupling.new_empty(coupling.shape[0])


@torch.library.register_fake("edfast::potts_ed_backward")
def _potts_backward_fake(grad_v, x, coupling, bias, cdf, log_normaliser, energies, m, w, seed, row_offset):
    return torch.empty_like(coupling), coupling.new_empty(coupling.shape[:2])


@torch.library.register_fake("edfast::rbm_ed_backward")
def _rbm_backward_fake(grad_v, x, weight, visible_bias, hidden_bias, log_normaliser, energies, kind, param, m, w,
                       seed, row_offset):
    return torch.empty_like(weight), torch.empty_like(visible_bias), torch.empty_like(hidden_bias)


# ---------------------------------------------------------------- autograd
# Backward recomputes y, the fields and the negatives from the seed: it saves the inputs, the
# [B] log-normaliser and the items' energies [B, M + 1] (not their [B, M, D] changes), so the
# CPU backward need not evaluate them again.


def _setup(ctx, inputs, output):
    tensors = [t for t in inputs if isinstance(t, torch.Tensor)]
    ctx.positions = [i for i, t in enumerate(inputs) if isinstance(t, torch.Tensor)]
    ctx.save_for_backward(*tensors, output[1], output[2])
    ctx.mark_non_differentiable(output[1], output[2])
    ctx.scalars = [None if isinstance(t, torch.Tensor) else t for t in inputs]


def _inputs(ctx):
    *tensors, log_normaliser, energies = ctx.saved_tensors
    inputs = list(ctx.scalars)
    for position, tensor in zip(ctx.positions, tensors):
        inputs[position] = tensor
    return inputs, log_normaliser, energies


def _ising_backward(ctx, grad_v, _grad_log_normaliser, _grad_energies):
    (x, coupling, bias, kind, param, m, w, seed, row_offset), log_normaliser, energies = _inputs(ctx)
    grad_coupling, grad_bias = torch.ops.edfast.ising_ed_backward(
        grad_v, x, coupling, bias, log_normaliser, energies, kind, param, m, w, seed, row_offset)
    return None, grad_coupling, grad_bias if bias is not None else None, None, None, None, None, None, None


def _potts_backward(ctx, grad_v, _grad_log_normaliser, _grad_energies):
    (x, coupling, bias, cdf, m, w, seed, row_offset), log_normaliser, energies = _inputs(ctx)
    grad_coupling, grad_bias = torch.ops.edfast.potts_ed_backward(
        grad_v, x, coupling, bias, cdf, log_normaliser, energies, m, w, seed, row_offset)
    return None, grad_coupling, grad_bias if bias is not None else None, None, None, None, None, None


def _rbm_backward(ctx, grad_v, _grad_log_normaliser, _grad_energies):
    (x, weight, visible_bias, hidden_bias, kind, param, m, w, seed, row_offset), log_normaliser, energies = _inputs(ctx)
    grads = torch.ops.edfast.rbm_ed_backward(
        grad_v, x, weight, visible_bias, hidden_bias, log_normaliser, energies, kind, param, m, w, seed, row_offset)
    return (None, *grads, None, None, None, None, None, None)


torch.library.register_autograd("edfast::ising_ed", _ising_backward, setup_context=_setup)
torch.library.register_autograd("edfast::potts_ed", _potts_backward, setup_context=_setup)
torch.library.register_autograd("edfast::rbm_ed", _rbm_backward, setup_context=_setup)


# ---------------------------------------------------------------- dispatch

# Which perturbations each family's fused op takes.
_SUPPORTED = {
    Ising: (Bernoulli, BitFlip),
    BernoulliRBM: (Bernoulli, BitFlip),
    Potts: (Categorical, Cyclic, Ordinal),
}


def _ising(energy: Ising, x, perturbation, m, w, seed, row_offset, reduction):
    kind, param, _ = perturbation.op_args(x.device)
    v, _, _ = torch.ops.edfast.ising_ed(x, energy.coupling, energy.bias, kind, param, m, w, seed, row_offset)
    return v


def _potts(energy: Potts, x, perturbation, m, w, seed, row_offset, reduction):
    _, _, cdf = perturbation.op_args(x.device)
    v, _, _ = torch.ops.edfast.potts_ed(x, energy.coupling, energy.bias, cdf, m, w, seed, row_offset)
    return v


def _rbm(energy: BernoulliRBM, x, perturbation, m, w, seed, row_offset, reduction):
    kind, param, _ = perturbation.op_args(x.device)
    v, _, _ = torch.ops.edfast.rbm_ed(x, energy.weight, energy.visible_bias, energy.hidden_bias, kind, param, m, w,
                                   seed, row_offset)
    return v


_OPS = {Ising: _ising, Potts: _potts, BernoulliRBM: _rbm, MLPEnergy: fused_mlp}


def fused_kernel(energy, x: torch.Tensor, perturbation: Perturbation) -> Tuple[Optional[Callable], str]:
    """The fused loss for ``(energy, x, perturbation)`` and "", or None and why not. The loss
    is called as ``fn(energy, x, perturbation, m, w, seed, row_offset, reduction)`` and returns v [B].

    Served: ``type(energy)`` exactly Ising or BernoulliRBM under Bernoulli or BitFlip, or Potts
    under Categorical, Cyclic or Ordinal (with the energy's number of classes), or MLPEnergy in
    the range of :func:`edfast._fused_mlp.mlp_kernel_problem` (Gaussian, Bernoulli, BitFlip);
    float32 or float64 parameters; x of shape [B, D] (float like the parameters, or int64 for
    Potts). x must be on the parameters' device (energy_discrepancy checks it first). A
    subclass is not served: it may override ``forward``.
    """
    family = type(energy)
    if family not in _OPS:
        return None, (f"edfast has no fused kernel for {family.__name__} "
                      "(only exactly Ising, Potts, BernoulliRBM, MLPEnergy)")
    if x.device.type == "cuda" and not cuda_kernels_built():
        return None, "this build of edfast has no CUDA kernels"
    if family is MLPEnergy:
        problem = mlp_kernel_problem(energy, x, perturbation)
        return (None, problem) if problem else (_OPS[family], "")
    supported = _SUPPORTED[family]
    if not isinstance(perturbation, supported):
        names = ", ".join(p.__name__ for p in supported)
        return None, f"the fused {family.__name__} kernel takes {names}, not {type(perturbation).__name__}"
    parameter = energy.weight
    if parameter.dtype not in _FLOAT_TYPES:
        return None, f"the fused kernels take float32 or float64 parameters, got {parameter.dtype}"
    if x.dim() != 2:
        return None, f"the fused kernels take x of shape [B, D], got {list(x.shape)}"
    if family is Potts:
        if perturbation.num_classes != energy.num_classes:
            return None, (f"the perturbation has {perturbation.num_classes} classes but the Potts energy "
                          f"{energy.num_classes}")
    elif x.dtype != parameter.dtype:
        return None, f"the fused {family.__name__} kernel takes x of the parameters' dtype {parameter.dtype}, got {x.dtype}"
    return _OPS[family], ""
