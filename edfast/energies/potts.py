"""Potts model on categorical data: the pairwise energy family for {0..K-1}^D."""

from __future__ import annotations

import torch
from torch import nn

from edfast.energies._checks import check_mask, check_positive_int


class Potts(nn.Module):
    r"""Potts energy on integer data x in {0, ..., K-1}^D.

    .. math:: U(x) = -\Big(\sum_{i<j} J[i, x_i, j, x_j] + \sum_i h[i, x_i]\Big).

    The effective coupling :attr:`coupling` [D, K, D, K] is built from the raw parameter
    ``weight`` (same shape) by symmetrising, ``J[i,a,j,b] = (W[i,a,j,b] + W[j,b,i,a]) / 2``,
    zeroing the ``i == j`` blocks (a site does not interact with itself) and, when ``mask``
    is given, the blocks of non-adjacent pairs. Each pair is counted once (``i < j``),
    unlike :class:`~edfast.energies.ising.Ising`'s ``s^T J s``.

    Parameters start at zero (the uniform distribution); the model is log-linear, so
    there is no symmetry to break.

    Args:
        dim: number of sites D.
        num_classes: number of states K >= 2.
        bias: learn the field ``h`` [D, K]; without it :attr:`bias` is ``None``.
        mask: optional site adjacency, [D, D] bool or 0/1, symmetric.

    Shapes:
        x: [B, D] int64, values in [0, K).
        returns: U [B] in the parameters' dtype.
    """

    def __init__(self, dim: int, num_classes: int, *, bias: bool = True, mask=None):
        super().__init__()
        self.dim = check_positive_int(dim, "dim")
        self.num_classes = check_positive_int(num_classes, "num_classes")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        k = num_classes
        self.weight = nn.Parameter(torch.zeros(dim, k, dim, k))
        self.register_parameter("bias", nn.Parameter(torch.zeros(dim, k)) if bias else None)
        self.register_buffer("mask", check_mask(mask, dim))

    @property
    def coupling(self) -> torch.Tensor:
        """Effective J [D, K, D, K]: J[i,a,j,b] = J[j,b,i,a], zero i == j blocks, masked."""
        w = self.weight
        site_mask = 1.0 - torch.eye(self.dim, dtype=w.dtype, device=w.device)
        if self.mask is not None:
            site_mask = site_mask * self.mask
        # In place on the fresh sum: one [D, K, D, K] temporary (memory of the fused path).
        return (w + w.permute(2, 3, 0, 1)).mul_(0.5).mul_(site_mask[:, None, :, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dtype != torch.int64:
            raise TypeError(f"x must be an int64 tensor of class indices, got dtype {x.dtype}")
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape [B, {self.dim}], got {list(x.shape)}")
        if x.numel():
            self._check_range(x)
        # One-hot by comparison (no value check inside, which we already did).
        classes = torch.arange(self.num_classes, device=x.device)
        onehot = (x.unsqueeze(-1) == classes).to(self.weight.dtype)  # [B, D, K]
        # Sum over all ordered pairs counts each unordered pair twice: halve it.
        pair = 0.5 * torch.einsum("bia,iajc,bjc->b", onehot, self.coupling, onehot)
        u = -pair
        if self.bias is not None:
            u = u - (onehot * self.bias).sum((1, 2))
        return u

    def _check_range(self, x: torch.Tensor) -> None:
        # Out-of-range classes would one-hot to zeros: a silent wrong energy. Eager CPU raises
        # a ValueError; on CUDA and under torch.compile the check runs on the device
        # (_assert_async) so it neither synchronises nor breaks the graph.
        if x.device.type == "cpu" and not torch.compiler.is_compiling():
            low, high = torch.aminmax(x)
            if int(low) < 0 or int(high) >= self.num_classes:
                raise ValueError(f"x must take values in [0, {self.num_classes}), "
                                 f"got range [{int(low)}, {int(high)}]")
        else:
            in_range = ((x >= 0) & (x < self.num_classes)).all()
            torch._assert_async(in_range, f"Potts: x must take values in [0, {self.num_classes})")

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, num_classes={self.num_classes}, "
                f"bias={self.bias is not None}, masked={self.mask is not None}")
