"""Input checks shared by the energy families.

Errors name the argument and say what was expected, so a user who passes `[B]` where
`[B, D]` was meant sees the problem at the call, not as a shape error deep in a matmul.
"""

from __future__ import annotations

import torch


def check_float_input(x: torch.Tensor, dim: int, like: torch.Tensor, name: str = "x") -> None:
    """Check that `x` is a floating tensor of shape [B, dim] with the dtype of `like`."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape [B, {dim}], got {list(x.shape)}")
    if x.dtype != like.dtype:
        raise TypeError(
            f"{name} has dtype {x.dtype} but the module's parameters are {like.dtype}; "
            f"convert one of them (e.g. module.to({x.dtype}))"
        )


def check_mask(mask, dim: int) -> torch.Tensor | None:
    """Validate an adjacency mask: [dim, dim], symmetric, 0/1 or bool. Returns float or None."""
    if mask is None:
        return None
    mask = torch.as_tensor(mask)
    if mask.shape != (dim, dim):
        raise ValueError(f"mask must have shape [{dim}, {dim}], got {list(mask.shape)}")
    if mask.dtype != torch.bool:
        if not torch.all((mask == 0) | (mask == 1)):
            raise ValueError("mask must be boolean or contain only 0 and 1")
        mask = mask != 0
    if not torch.equal(mask, mask.T):
        raise ValueError("mask must be symmetric (mask[i, j] == mask[j, i])")
    return mask.to(torch.get_default_dtype())


def check_positive_int(value, name: str) -> int:
    """Check an int >= 1 (bools rejected) and return it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value
