"""Discrete encodings of real 2D data for the discrete benchmarks.

:class:`GrayCode` is the ALOE encoding (Dai et al. 2020) used by the discrete ED toy
experiments: each coordinate becomes a sign bit followed by 15 magnitude bits of
``floor(|x| * int_scale)``, the magnitude Gray-coded so that neighbouring values differ in
one bit. Two coordinates give 32 bits. :class:`CategoricalGrid` is the categorical variant:
each coordinate quantised into K equal bins.
"""

from __future__ import annotations

import torch


class GrayCode:
    """Sign + Gray-coded magnitude encoding of real data into bits.

    Encoding of one coordinate v = x * int_scale: the sign bit is 1 iff v < 0; the
    magnitude m = floor(|v|) must be < 2^(bits_per_coord - 1) and is written as the Gray
    code ``m ^ (m >> 1)``, most significant bit first. Coordinates are laid out one after
    the other: [sign_0, mag_0 (15 bits), sign_1, mag_1 (15 bits)] for 2D data.

    Decoding returns the centre of the quantisation cell, ``±(m + 0.5) / int_scale``.
    ALOE decodes to the cell's edge ``±m / int_scale`` instead; the centre makes
    ``encode(decode(b)) == b`` exact for every code (float rounding cannot push a value
    across a cell edge) and differs by ``0.5 / int_scale`` (about 1e-4 for the toys).

    Args:
        int_scale: scale applied before truncation (ALOE: 2^15 / (f_scale + 1)).
        bits_per_coord: bits per coordinate including the sign bit (16 in the benchmarks).
    """

    def __init__(self, int_scale: float, bits_per_coord: int = 16):
        if not int_scale > 0:
            raise ValueError(f"int_scale must be positive, got {int_scale}")
        if not 2 <= bits_per_coord <= 53:
            raise ValueError(f"bits_per_coord must be in [2, 53], got {bits_per_coord}")
        self.int_scale = float(int_scale)
        self.bits_per_coord = int(bits_per_coord)

    @classmethod
    def from_data(cls, x: torch.Tensor, bits_per_coord: int = 16) -> "GrayCode":
        """ALOE's scale: f_scale = max|x| + 1, int_scale = 2^(bits-1) / (f_scale + 1).

        ALOE computes f_scale on 5000 samples of the dataset; pass such a sample as x.
        """
        f_scale = float(x.abs().max()) + 1.0
        return cls(2.0 ** (bits_per_coord - 1) / (f_scale + 1.0), bits_per_coord)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [n, d] floating -> bits [n, d * bits_per_coord] float32 in {0, 1}."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 2:
            raise TypeError("x must be a floating-point tensor of shape [n, d]")
        nmag = self.bits_per_coord - 1
        v = x.double() * self.int_scale
        mag = v.abs().floor()
        if bool((mag >= 2**nmag).any()) or not bool(torch.isfinite(v).all()):
            raise ValueError(f"x out of range: |x| * int_scale must be < 2^{nmag} "
                             f"(|x| < {2**nmag / self.int_scale:.4g})")
        m = mag.long()
        gray = m ^ (m >> 1)
        shifts = torch.arange(nmag - 1, -1, -1, device=x.device)
        mag_bits = (gray.unsqueeze(-1) >> shifts) & 1  # [n, d, nmag], MSB first
        sign = (v < 0).long().unsqueeze(-1)
        return torch.cat([sign, mag_bits], -1).reshape(x.shape[0], -1).float()

    def decode(self, bits: torch.Tensor) -> torch.Tensor:
        """bits [n, d * bits_per_coord] in {0, 1} (any dtype) -> x [n, d] float32."""
        if not isinstance(bits, torch.Tensor) or bits.dim() != 2 \
                or bits.shape[1] % self.bits_per_coord:
            raise ValueError(f"bits must have shape [n, d * {self.bits_per_coord}]")
        b = bits.reshape(bits.shape[0], -1, self.bits_per_coord).long()
        if bool(((b != 0) & (b != 1)).any()):
            raise ValueError("bits must contain only 0 and 1")
        # Gray -> binary: binary bit k is the xor (parity) of Gray bits 0..k.
        binary = b[..., 1:].cumsum(-1) & 1
        nmag = self.bits_per_coord - 1
        weights = 2 ** torch.arange(nmag - 1, -1, -1, device=bits.device)
        m = (binary * weights).sum(-1).double()
        sign = 1.0 - 2.0 * b[..., 0].double()
        return (sign * (m + 0.5) / self.int_scale).float()

    def quantise(self, x: torch.Tensor) -> torch.Tensor:
        """What ``decode(encode(x))`` returns: x moved to its cell centre, float32 [n, d]."""
        v = x.double() * self.int_scale
        return (torch.where(v < 0, -1.0, 1.0) * (v.abs().floor() + 0.5) / self.int_scale).float()

    def __repr__(self) -> str:
        return f"GrayCode(int_scale={self.int_scale!r}, bits_per_coord={self.bits_per_coord})"


class CategoricalGrid:
    """Each coordinate of x quantised into ``num_bins`` equal bins on [low, high).

    ``encode`` gives int64 bin indices, values outside [low, high) go to the edge bins
    (clip=True) or raise (clip=False); ``decode`` gives bin centres. ``encode(decode(k)) == k``
    exactly and ``|decode(encode(x)) - x| <= width / 2`` inside the range.
    """

    def __init__(self, num_bins: int, low: float = -4.0, high: float = 4.0, *, clip: bool = True):
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
            raise ValueError(f"num_bins must be an int >= 2, got {num_bins!r}")
        if not high > low:
            raise ValueError(f"need low < high, got low={low}, high={high}")
        self.num_bins, self.low, self.high, self.clip = num_bins, float(low), float(high), clip
        self.width = (self.high - self.low) / num_bins

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [n, d] floating -> int64 [n, d] in [0, num_bins)."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError("x must be a floating-point tensor")
        k = torch.floor((x.double() - self.low) / self.width)
        if not self.clip and bool(((k < 0) | (k >= self.num_bins)).any()):
            raise ValueError(f"x outside [{self.low}, {self.high}) and clip=False")
        return k.clamp(0, self.num_bins - 1).long()

    def decode(self, k: torch.Tensor) -> torch.Tensor:
        """int64 [n, d] bin indices -> float32 [n, d] bin centres."""
        if not isinstance(k, torch.Tensor) or k.dtype != torch.int64:
            raise TypeError("k must be an int64 tensor of bin indices")
        if bool(((k < 0) | (k >= self.num_bins)).any()):
            raise ValueError(f"bin indices must lie in [0, {self.num_bins})")
        return (self.low + (k.double() + 0.5) * self.width).float()

    def __repr__(self) -> str:
        return f"CategoricalGrid(num_bins={self.num_bins}, low={self.low}, high={self.high})"
