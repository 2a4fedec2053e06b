"""Energy families: ordinary ``nn.Module``s mapping x[B, *event] to U[B], p(x) ∝ exp(-U(x)).

Written the obvious way in PyTorch; edfast's fused kernels recognise these classes and
use their parameters (``weight``, ``bias``, ``coupling``, ...) directly.
"""

from edfast.energies.ising import Ising
from edfast.energies.mlp import ACTIVATIONS, MLPEnergy
from edfast.energies.potts import Potts
from edfast.energies.rbm import BernoulliRBM

__all__ = ["ACTIVATIONS", "BernoulliRBM", "Ising", "MLPEnergy", "Potts"]
