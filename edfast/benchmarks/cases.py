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

    The quick suite's Ms other than ``m`` are a memory sweep. By default they time and
    measure edfast's primary configuration and the eager reference; with ``memory_sweep``
    they only measure the peak memory of edfast's primary configuration, untimed (what a
    ``memory_flatness`` check needs, at the cost of one memory child per M). The full suite
    times and measures every competitor at every M either way.
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
    memory_sweep: bool = False


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


def _ising_setup(device: str, b: int, m: int, side: int, perturbation: Perturbation) -> Setup:
    """A dense Ising model on side*side spins (full D x D coupling and a bias, no lattice
    mask: the size of a side x side lattice model), uniform random binary data."""
    g = _seeded()
    d = side * side
    x = (torch.rand(b, d, generator=g) < 0.5).float()
    return Setup(_small_(Ising(d)).to(device), x.to(device), perturbation, m)


def _ising(device: str, b: int, m: int) -> Setup:
    return _ising_setup(device, b, m, 25, edfast.Bernoulli(0.1))


def _ising_10x10(device: str, b: int, m: int) -> Setup:
    return _ising_setup(device, b, m, 10, edfast.Bernoulli(0.1))


def _ising_10x10_bitflip(device: str, b: int, m: int) -> Setup:
    return _ising_setup(device, b, m, 10, edfast.BitFlip())


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
_MEMORY_MS = (8, 32, 128)


def _fused_checks(eager: float, compiled: float) -> Tuple[Check, ...]:
    """The fused-discrete-families issue's targets for one case: step time at most
    1/``eager`` of the eager reference and 1/``compiled`` of the compiled one (">= 10x
    faster" is a ratio target of 0.1), peak memory flat in M and at most 1/10 of the eager
    reference's, at the headline M=32."""
    return (
        Check(f"step time / reference eager (>= {eager:g}x faster)", "time_ratio", 1 / eager,
              "reference eager"),
        Check(f"step time / reference compiled (>= {compiled:g}x faster)", "time_ratio", 1 / compiled,
              "reference compiled"),
        Check("peak memory / reference eager", "memory_ratio", 0.1, "reference eager"),
        Check("peak memory over M=8,32,128: max/min - 1", "memory_flatness", 0.10, ms=_MEMORY_MS),
    )


def _fused_case(name: str, description: str, build, cpu_batch: int, eager: float, compiled: float) -> Case:
    """A fused-family case: headline M=32, the quick suite's other Ms measure only edfast's
    peak memory (for the flatness target), the full suite sweeps M."""
    return Case(name, description, build, batch={"cpu": cpu_batch, "cuda": 4096},
                ms={"quick": _MEMORY_MS, "full": _SWEEP}, memory_sweep=True,
                checks=_fused_checks(eager, compiled))


register(_fused_case("ising-10x10", "Ising D=100 (10x10), Bernoulli(0.1)", _ising_10x10, 256, 10, 5))
register(_fused_case("ising-10x10-bitflip", "Ising D=100 (10x10), BitFlip", _ising_10x10_bitflip,
                     256, 10, 5))
register(_fused_case("ising-25x25", "Ising D=625 (25x25), Bernoulli(0.1)", _ising, 256, 5, 3))
register(_fused_case("rbm-784x500", "BernoulliRBM 784x500, Bernoulli(0.005)", _rbm, 100, 20, 10))
register(_fused_case("potts-100x5", "Potts D=100 K=5, Categorical(5, 0.1)", _potts, 256, 10, 5))
def _mlp_checks(eager: float, compiled: Optional[float]) -> Tuple[Check, ...]:
    """The fused-MLP issue's targets for one case: step time at most 1/``eager`` of the eager
    reference's (and 1/``compiled`` of the compiled one's), peak memory flat in M."""
    checks = [Check(f"step time / reference eager (>= {eager:g}x faster)", "time_ratio", 1 / eager,
                    "reference eager")]
    if compiled is not None:
        checks.append(Check(f"step time / reference compiled (>= {compiled:g}x faster)", "time_ratio",
                            1 / compiled, "reference compiled"))
    checks.append(Check("peak memory over M=8,32,128: max/min - 1", "memory_flatness", 0.10, ms=_MEMORY_MS))
    return tuple(checks)


def _mlp_silu(device: str, b: int, m: int) -> Setup:
    g = _seeded()
    x = (torch.rand(b, 32, generator=g) < 0.3).float()
    energy = MLPEnergy(32, hidden=(256, 256, 256), activation="silu")
    return Setup(energy.to(device), x.to(device), edfast.Bernoulli(0.1), m)


register(Case(
    "mlp-2x128x4", "MLPEnergy 2-128-128-128-128-1 Softplus, Gaussian(1.0), no chunking", _mlp,
    batch={"cpu": 1024, "cuda": 16384}, ms={"quick": _MEMORY_MS, "full": _SWEEP}, memory_sweep=True,
    extra=("bare network",),
    checks=(Check("loss step / bare fwd+bwd on B*(M+1) rows", "time_ratio", 1.05, "bare network"),
            *_mlp_checks(1.5, 1.3)),
))
register(Case(
    "mlp-32x256x3-silu", "MLPEnergy 32-256-256-256-1 SiLU on binary data, Bernoulli(0.1)", _mlp_silu,
    batch={"cpu": 512, "cuda": 16384}, ms={"quick": _MEMORY_MS, "full": _SWEEP}, memory_sweep=True,
    checks=_mlp_checks(1.5, None),
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
