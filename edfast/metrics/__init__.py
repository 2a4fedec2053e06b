"""Evaluation metrics: Ising coupling error, exp-Hamming MMD, NLL, 2D grid densities."""

from edfast.metrics.density import grid_density_error, grid_log_density, grid_points
from edfast.metrics.ising import coupling_rmse, neg_log_rmse
from edfast.metrics.mmd import exp_hamming_mmd, hamming_distance
from edfast.metrics.nll import (MAX_EXACT_DIM, log_partition_exact, log_partition_importance,
                                nll_exact, nll_importance)

__all__ = ["MAX_EXACT_DIM", "coupling_rmse", "exp_hamming_mmd", "grid_density_error",
           "grid_log_density", "grid_points", "hamming_distance", "log_partition_exact",
           "log_partition_importance", "neg_log_rmse", "nll_exact", "nll_importance"]
