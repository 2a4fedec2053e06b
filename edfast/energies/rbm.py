"""Bernoulli restricted Boltzmann machine, as an energy on its visible units."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edfast.energies._checks import check_float_input, check_positive_int


class BernoulliRBM(nn.Module):
    r"""Free energy of a Bernoulli-Bernoulli RBM (hidden units summed out).

    .. math:: U(x) = -b^\top x - \sum_h \operatorname{softplus}(c_h + W_h \cdot x).

    Parameters: ``weight`` [hidden, visible] (laid out as in ``nn.Linear``),
    ``visible_bias`` b [visible], ``hidden_bias`` c [hidden]. The weight starts at
    N(0, 0.01^2) (drawn from torch's global generator, as ``nn.Linear`` does) because
    with all-zero weights every hidden unit gets the same gradient and they never
    differentiate; the biases start at zero.

    Shapes:
        x: [B, visible] floating, values in {0, 1} (any real x is accepted), same dtype as
           the parameters.
        returns: U [B].
    """

    def __init__(self, visible: int, hidden: int):
        super().__init__()
        self.visible = check_positive_int(visible, "visible")
        self.hidden = check_positive_int(hidden, "hidden")
        self.weight = nn.Parameter(torch.randn(hidden, visible) * 0.01)
        self.visible_bias = nn.Parameter(torch.zeros(visible))
        self.hidden_bias = nn.Parameter(torch.zeros(hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_float_input(x, self.visible, self.weight)
        pre = F.linear(x, self.weight, self.hidden_bias)  # [B, hidden]
        return -(x @ self.visible_bias) - F.softplus(pre).sum(-1)

    def extra_repr(self) -> str:
        return f"visible={self.visible}, hidden={self.hidden}"
