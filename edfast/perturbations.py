"""The perturbations q of Energy Discrepancy (DESIGN §1).

Each is a small frozen dataclass, validated on construction. One step ``a -> b`` is applied
twice: ``y ~ q(.|x)`` and then each negative ``x'_j ~ q(.|y)``.

================================  ==========================  ================================
perturbation                      data                         one step
================================  ==========================  ================================
``Gaussian(scale)``               real, any floating dtype     ``b = a + scale * N(0, I)``
``Bernoulli(epsilon)``            {0,1}: float, int, bool      flip each coordinate w.p. eps
``BitFlip()``                     {0,1}: float, int, bool      flip one uniform coordinate
``Categorical(num_classes, eps)`` {0..K-1}, int64              w.p. eps resample uniformly
``Cyclic(num_classes, t)``        {0..K-1}, int64              heat kernel of the K-cycle
``Ordinal(num_classes, t)``       {0..K-1}, int64              heat kernel of the K-path
================================  ==========================  ================================
"""
from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from typing import ClassVar, Optional, Tuple

import torch

__all__ = ["Perturbation", "Gaussian", "Bernoulli", "BitFlip", "Categorical", "Cyclic", "Ordinal"]

# Kind codes of the edfast::perturb op (csrc/core/perturb.h).
KIND_GAUSSIAN, KIND_BERNOULLI, KIND_BITFLIP, KIND_TRANSITION = 0, 1, 2, 3


def _check_real(name: str, value, *, low: float, high: float = math.inf, open_high: bool = True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    upper_ok = value < high if open_high else value <= high
    if not (math.isfinite(value) and value > low and upper_ok):
        bracket = ")" if open_high else "]"
        raise ValueError(f"{name} must lie in ({low:g}, {high:g}{bracket} and be finite, got {value}")
    return value


def _check_classes(value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"num_classes must be an int, got {type(value).__name__}")
    if value < 2:
        raise ValueError(f"num_classes must be >= 2, got {value}")
    return int(value)


class Perturbation:
    """Base class. ``data`` says what x must hold: "real", "binary" or "categorical"."""

    data: ClassVar[str]
    kind: ClassVar[int]

    def op_param(self) -> float:
        """The float parameter the edfast::perturb op takes for this perturbation."""
        return 0.0

    def op_args(self, device: torch.device) -> Tuple[int, float, Optional[torch.Tensor]]:
        """(kind, param, transition_cdf) for ``torch.ops.edfast.perturb``."""
        return self.kind, self.op_param(), None


@dataclass(frozen=True)
class Gaussian(Perturbation):
    """Additive Gaussian noise; ``scale`` is a standard deviation (``t = scale**2``)."""

    scale: float = 1.0
    data: ClassVar[str] = "real"
    kind: ClassVar[int] = KIND_GAUSSIAN

    def __post_init__(self):
        object.__setattr__(self, "scale", _check_real("scale", self.scale, low=0.0))

    def op_param(self) -> float:
        return self.scale


@dataclass(frozen=True)
class Bernoulli(Perturbation):
    """Flip each binary coordinate independently with probability ``epsilon`` in (0, 1).

    The kernels read and write x's own dtype (floating, integer or bool holding 0/1). For
    ``epsilon <= 1/32`` a step draws the gaps between flipped coordinates (one Philox word and
    one exact log per flip, so it costs O(epsilon * D), not D); above it, one word per
    coordinate (csrc/core/perturb.h)."""

    epsilon: float = 0.1
    data: ClassVar[str] = "binary"
    kind: ClassVar[int] = KIND_BERNOULLI

    def __post_init__(self):
        object.__setattr__(self, "epsilon", _check_real("epsilon", self.epsilon, low=0.0, high=1.0))

    def op_param(self) -> float:
        return self.epsilon


@dataclass(frozen=True)
class BitFlip(Perturbation):
    """Flip exactly one binary coordinate, chosen uniformly (the "grid" perturbation)."""

    data: ClassVar[str] = "binary"
    kind: ClassVar[int] = KIND_BITFLIP


class _TransitionPerturbation(Perturbation):
    """Categorical-family perturbations: each coordinate moves by a K x K transition matrix."""

    data: ClassVar[str] = "categorical"
    kind: ClassVar[int] = KIND_TRANSITION
    num_classes: int

    def transition_matrix(self) -> torch.Tensor:
        """Row-stochastic float64 ``[K, K]``: ``Q[a, b] = q(b | a)`` for one coordinate."""
        raise NotImplementedError

    def op_args(self, device):
        return self.kind, 0.0, _transition_cdf(self, torch.device(device))


@functools.lru_cache(maxsize=64)
def _transition_cdf(perturbation: _TransitionPerturbation, device: torch.device) -> torch.Tensor:
    """Row CDFs of the transition matrix, computed once per perturbation and device."""
    cdf = perturbation.transition_matrix().cumsum(dim=1)
    cdf[:, -1] = 1.0  # exact top, so inverse-CDF sampling never runs past the last class
    return cdf.to(device)


@dataclass(frozen=True)
class Categorical(_TransitionPerturbation):
    """With probability ``epsilon``, replace a coordinate by a uniform draw from K classes
    (which may be its own class): ``Q = (1 - eps) I + eps / K``."""

    num_classes: int
    epsilon: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "num_classes", _check_classes(self.num_classes))
        object.__setattr__(self, "epsilon", _check_real("epsilon", self.epsilon, low=0.0, high=1.0))

    def transition_matrix(self) -> torch.Tensor:
        k = self.num_classes
        eye = torch.eye(k, dtype=torch.float64)
        return (1.0 - self.epsilon) * eye + self.epsilon / k


@dataclass(frozen=True)
class _HeatKernel(_TransitionPerturbation):
    """Heat kernel ``Q = exp(t (A - D))`` of a graph on the K states (A adjacency, D degrees),
    computed once in float64. ``t`` is used as given (the authors' code scales it by K^2)."""

    num_classes: int
    t: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "num_classes", _check_classes(self.num_classes))
        object.__setattr__(self, "t", _check_real("t", self.t, low=0.0))

    def _edges(self) -> torch.Tensor:
        """Indices ``a`` whose states ``a`` and ``a + 1 (mod K)`` are neighbours."""
        raise NotImplementedError

    def transition_matrix(self) -> torch.Tensor:
        k = self.num_classes
        a = self._edges()
        adjacency = torch.zeros(k, k, dtype=torch.float64)
        adjacency[a, (a + 1) % k] = 1.0
        adjacency[(a + 1) % k, a] = 1.0
        laplacian = adjacency - torch.diag(adjacency.sum(dim=1))
        return torch.linalg.matrix_exp(self.t * laplacian).clamp_min(0.0)


@dataclass(frozen=True)
class Cyclic(_HeatKernel):
    """Heat kernel of the cycle graph on K states (classes on a circle, e.g. angles)."""

    def _edges(self):
        return torch.arange(self.num_classes)


@dataclass(frozen=True)
class Ordinal(_HeatKernel):
    """Heat kernel of the path graph on K states (ordered classes)."""

    def _edges(self):
        return torch.arange(self.num_classes - 1)
