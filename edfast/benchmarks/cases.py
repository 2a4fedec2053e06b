"""The registry of benchmark cases: one :class:`Case` entry per (energy, perturbation, sizes).

A new case is one ``register(Case(...))`` call below. A fused kernel, when it lands, needs no
new case: the ``edfast`` competitor calls ``edfast.energy_discrepancy(fused="auto")``, so the
same entry then times the fused path against the same competitors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

import edfast
from edfast.benchmarks.energies import ConvEnergy
from edfast.energies import BernoulliRBM, Ising, MLPEnergy, Potts
from edfast.perturbations import Perturbation


@dataclass
class Setup:
    """What one step needs: the energy (on the device), a data batch, q, M and w."""

    energy: nn.Module
    x: torch.Tensor
    perturbation: Perturbation
    m: int
    w: float = 1.0


@dataclass(frozen=True)
class Check:
    """A target from an issue, evaluated on the rows of a run (edfast/benchmarks/figures.py).

    kind: "time_ratio" (edfast median / ``against`` median at the case's M), "memory_ratio"
    (edfast peak / ``against`` peak at the case's M) or "memory_flatness" (max / min - 1 of
    edfast's peak over ``ms``). ``target`` is the largest value that meets it.
    """

    label: str
    kind: str
    target: float
    against: str = ""
    ms: Tuple[int, ...] = ()


@dataclass(frozen=True)
class Case:
    """One benchmark case.

    ``build(device, batch, m)`` makes the :class:`Setup` deterministically (fixed seeds).
    ``batch`` is B per device (CUDA sizes fill the GPU). ``ms`` maps a suite to the Ms it
    runs; ``m`` is the headline M where every competitor runs and ratios are reported.
    ``edfast_chunks`` are the chunk sizes edfast runs with (None: unchunked); the first is
    the configuration ratios are taken for. ``extra`` names further competitors (e.g.
    "bare network"); ``checks`` are the issue targets this case reports.
    """

    name: str
    description: str
    build: Callable[[str, int, int], Setup]
    batch: Dict[str, int]
    ms: Dict[str, Tuple[int, ...]]
    m: int = 32
    edfast_chunks: Tuple[Optional[int], ...] = (None,)
    extra: Tuple[str, ...] = ()
    checks: Tuple[Check, ...] = field(default_factory=tuple)


CASES: Dict[str, Case] = {}


def register(case: Case) -> Case:
    if case.name in CASES:
        raise ValueError(f"duplicate benchmark case {case.name!r}")
    if case.m not in case.ms.get("quick", (case.m,)):
        raise ValueError(f"case {case.name!r}: the quick suite must run the headline M={case.m}")
    CASES[case.name] = case
    return case


def select(pattern: Optional[str] = None) -> List[Case]:
    """Cases whose name contains ``pattern`` (case-insensitive; all when None or empty)."""
    return [c for c in CASES.values() if not pattern or pattern.lower() in c.name.lower()]


def _seeded() -> torch.Generator:
    torch.manual_seed(0)  # nn.Module initialisation uses the global generator
    return torch.Generator().manual_seed(0)


def _small_(module: nn.Module, scale: float = 0.01) -> nn.Module:
    """Small random parameters: the families start at zero couplings, which would make every
    energy difference zero and the loss's gradients trivial."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape) * scale)
    return module


def _ising(device: str, b: int, m: int) -> Setup:
    g = _seeded()
    x = (torch.rand(b, 625, generator=g) < 0.5).float()
    return Setup(_small_(Ising(625)).to(device), x.to(device), edfast.Bernoulli(0.1), m)


def _rbm(device: str, b: int, m: int) -> Setup:
    g = _seeded()
    x = (torch.rand(b, 784, generator=g) < 0.13).float()  # MNIST-like: ~13% of pixels on
    return Setup(BernoulliRBM(784, 500).to(device), x.to(device), edfast.Bernoulli(0.005), m)


def _potts(device: str, b: int, m: int) -> Setup:
    g = _seeded()
    x = torch.randint(0, 5, (b, 100), generator=g)
    return Setup(_small_(Potts(100, 5)).to(device), x.to(device), edfast.Categorical(5, 0.1), m)


def _mlp(device: str, b: int, m: int) -> Setup:
    g = _seeded()
    x = torch.randn(b, 2, generator=g)
    energy = MLPEnergy(2, hidden=(128, 128, 128, 128), activation="softplus")
    return Setup(energy.to(device), x.to(device), edfast.Gaussian(1.0), m)


def _conv(device: str, b: int, m: int) -> Setup:
    g = _seeded()
    x = (torch.rand(b, 1, 28, 28, generator=g) < 0.13).float()
    return Setup(ConvEnergy().to(device), x.to(device), edfast.Bernoulli(0.005), m)


_SWEEP = (8, 16, 32, 64, 128)

register(Case(
    "ising-25x25", "Ising D=625 (25x25), Bernoulli(0.1)", _ising,
    batch={"cpu": 256, "cuda": 4096}, ms={"quick": (32,), "full": _SWEEP},
))
register(Case(
    "rbm-784x500", "BernoulliRBM 784x500, Bernoulli(0.005)", _rbm,
    batch={"cpu": 100, "cuda": 4096}, ms={"quick": (32,), "full": _SWEEP},
))
register(Case(
    "potts-100x5", "Potts D=100 K=5, Categorical(5, 0.1)", _potts,
    batch={"cpu": 256, "cuda": 4096}, ms={"quick": (32,), "full": _SWEEP},
))
register(Case(
    "mlp-2x128x4", "MLPEnergy 2-128-128-128-128-1 Softplus, Gaussian(1.0), no chunking", _mlp,
    batch={"cpu": 1024, "cuda": 16384}, ms={"quick": (32,), "full": _SWEEP},
    extra=("bare network",),
    checks=(Check("loss step / bare fwd+bwd on B*(M+1) rows", "time_ratio", 1.05, "bare network"),),
))
register(Case(
    "conv-28x28", "ConvEnergy on binary [B,1,28,28], Bernoulli(0.005), chunk_size=4", _conv,
    batch={"cpu": 128, "cuda": 4096}, ms={"quick": (8, 32, 128), "full": _SWEEP},
    edfast_chunks=(4, None),
    checks=(
        Check("peak memory chunk=4 / reference", "memory_ratio", 0.25, "reference eager"),
        Check("step time chunk=4 / reference", "time_ratio", 1.5, "reference eager"),
        Check("peak memory chunk=4 over M=8,32,128: max/min - 1", "memory_flatness", 0.10,
              ms=(8, 32, 128)),
    ),
))
