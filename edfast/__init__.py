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

# Applications load on first use (``edfast.energies``, ``edfast.data``, ...), keeping
# ``import edfast`` as light as the ops.
_SUBPACKAGES = ("energies", "data", "samplers", "metrics", "reference")


def __getattr__(name):
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f"edfast.{name}")
    raise AttributeError(f"module 'edfast' has no attribute {name!r}")
