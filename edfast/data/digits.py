"""Binarised 8x8 handwritten digits (scikit-learn's copy of the UCI set; no download)."""

from __future__ import annotations

import sklearn.datasets
import torch


def load_digits_binary(threshold: float = 8.0, *, return_labels: bool = False):
    """The 1797 8x8 digits with pixel intensities 0..16, binarised as ``pixel > threshold``.

    Args:
        threshold: intensity cut; the default 8 is half the range.
        return_labels: also return the digit classes.

    Returns:
        x: float32 [1797, 64] in {0, 1} (rows are images in row-major order), and, if
        ``return_labels``, y: int64 [1797] in 0..9.
    """
    digits = sklearn.datasets.load_digits()
    x = torch.from_numpy(digits.data > threshold).float()
    if return_labels:
        return x, torch.from_numpy(digits.target).long()
    return x
