"""Evaluation samplers: Langevin (ULA/MALA), per-coordinate Gibbs, Gibbs-with-Gradients."""

from edfast.samplers.gibbs import gibbs
from edfast.samplers.gwg import gibbs_with_gradients
from edfast.samplers.langevin import langevin

__all__ = ["gibbs", "gibbs_with_gradients", "langevin"]
