"""Small dense MLP energy for real-valued data (the 2D toy and latent-space models)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edfast.energies._checks import check_float_input, check_positive_int

#: Activation name -> function. leaky_relu uses slope 0.2 (the latent-EBM setting).
ACTIVATIONS = {
    "softplus": F.softplus,
    "silu": F.silu,
    "relu": F.relu,
    "leaky_relu": lambda h: F.leaky_relu(h, 0.2),
    "tanh": torch.tanh,
    "elu": F.elu,
}


class MLPEnergy(nn.Module):
    """MLP energy ``in_features -> hidden[0] -> ... -> hidden[-1] -> 1``.

    The activation follows every hidden layer, not the output (the energy is an
    unconstrained real number). Layers are ``nn.Linear`` with PyTorch's default
    initialisation and live in :attr:`linears` (a ``ModuleList``, last one is the output
    layer); :attr:`activation` is the activation's name.

    Args:
        in_features: input dimension.
        hidden: widths of the hidden layers (may be empty: a linear energy).
        activation: one of ``softplus``, ``silu``, ``relu``, ``leaky_relu`` (slope 0.2),
            ``tanh``, ``elu``.

    Shapes:
        x: [B, in_features] floating, same dtype as the parameters.
        returns: U [B].
    """

    def __init__(self, in_features: int, hidden: Sequence[int] = (128, 128, 128, 128),
                 activation: str = "softplus"):
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features")
        hidden = tuple(hidden)
        for h in hidden:
            check_positive_int(h, "each hidden width")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {activation!r}")
        self.hidden = hidden
        self.activation = activation
        widths = (in_features, *hidden, 1)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_float_input(x, self.in_features, self.linears[0].weight)
        act = ACTIVATIONS[self.activation]
        h = x
        for layer in self.linears[:-1]:
            h = act(layer(h))
        return self.linears[-1](h).squeeze(-1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, hidden={self.hidden}, activation={self.activation!r}"
