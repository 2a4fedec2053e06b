"""edfast: fast Energy Discrepancy training for energy-based models.

The ops live in ``torch.ops.edfast``; this package is their Python face.
"""
from edfast._ops import contrastive_logsumexp, cuda_kernels_built, perturb
from edfast.loss import EnergyDiscrepancy, energy_discrepancy
from edfast.perturbations import (
    Bernoulli,
    BitFlip,
    Categorical,
    Cyclic,
    Gaussian,
    Ordinal,
    Perturbation,
)

__version__ = "0.1.0"

__all__ = [
    "Bernoulli",
    "BitFlip",
    "Categorical",
    "EnergyDiscrepancy",
    "Cyclic",
    "Gaussian",
    "Ordinal",
    "Perturbation",
    "contrastive_logsumexp",
    "cuda_kernels_built",
    "energy_discrepancy",
    "perturb",
]
