"""Energies the benchmark cases use that are not edfast families.

``ConvEnergy`` is the drop-in-loss issue's "small convolutional energy on binary [B, 1, 28, 28]
data": an energy whose activations, not its parameters, dominate memory, which is what
chunking the negatives is for.
"""
from __future__ import annotations

import torch
from torch import nn


class ConvEnergy(nn.Module):
    """Three stride-2 3x3 convolutions (1 -> 16 -> 32 -> 64 channels, 28 -> 14 -> 7 -> 4),
    SiLU after each, then a linear read-out to one energy per image.

    Shapes: x [N, 1, 28, 28] floating -> U [N].
    """

    def __init__(self, channels: tuple = (16, 32, 64)):
        super().__init__()
        c1, c2, c3 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.SiLU(),
        )
        self.readout = nn.Linear(c3 * 4 * 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.features(x).flatten(1)).squeeze(1)
