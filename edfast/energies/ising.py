"""Ising model on binary data: the pairwise energy family for {0,1}^D."""

from __future__ import annotations

import torch
from torch import nn

from edfast.energies._checks import check_float_input, check_mask, check_positive_int


class Ising(nn.Module):
    r"""Ising energy on x in {0,1}^D, written with spins s = 2x - 1 in {-1,1}^D.

    .. math:: U(x) = -(s^\top J s + b^\top s), \qquad p(x) \propto \exp(-U(x)).

    ``J`` is the effective coupling (:attr:`coupling`): the raw parameter ``weight`` is
    symmetrised, ``J = (W + W^T) / 2``, its diagonal is zeroed (``s_i^2 = 1`` would only
    add a constant) and, when ``mask`` is given, entries outside the adjacency are zeroed.
    Note ``s^T J s`` counts each pair ``i != j`` twice, so the interaction of a pair is
    ``2 J_ij s_i s_j``; this matches the lattice benchmark ``p(s) ∝ exp(s^T J s)`` so
    learned couplings compare directly with :func:`edfast.data.lattice_coupling`.

    Parameters start at zero (the uniform distribution): the likelihood is concave in
    (J, b), so there is no symmetry to break and a deterministic start is convenient.

    Args:
        dim: number of binary coordinates D.
        bias: learn the field ``b`` [D]; without it :attr:`bias` is ``None``.
        mask: optional adjacency, [D, D] bool or 0/1, symmetric; stored as a float buffer.

    Shapes:
        x: [B, D] floating, values in {0, 1}, same dtype as the parameters.
        returns: U [B], same dtype.
    """

    def __init__(self, dim: int, *, bias: bool = True, mask=None):
        super().__init__()
        self.dim = check_positive_int(dim, "dim")
        self.weight = nn.Parameter(torch.zeros(dim, dim))
        # register_parameter(None) as nn.Linear does: `bias` exists and is None without a bias.
        self.register_parameter("bias", nn.Parameter(torch.zeros(dim)) if bias else None)
        self.register_buffer("mask", check_mask(mask, dim))

    @property
    def coupling(self) -> torch.Tensor:
        """Effective J [D, D]: symmetric, zero diagonal, zero outside ``mask``."""
        w = self.weight
        # In place on the fresh sum: one [D, D] temporary instead of four (memory of the
        # fused path, whose other buffers are [B, D]).
        j = (w + w.T).mul_(0.5).fill_diagonal_(0.0)
        if self.mask is not None:
            j = j * self.mask
        return j

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_float_input(x, self.dim, self.weight)
        s = 2.0 * x - 1.0
        u = -((s @ self.coupling) * s).sum(-1)
        if self.bias is not None:
            u = u - s @ self.bias
        return u

    def extra_repr(self) -> str:
        return f"dim={self.dim}, bias={self.bias is not None}, masked={self.mask is not None}"
