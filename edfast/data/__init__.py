"""Datasets: 2D toys, their discrete encodings, lattice Ising ground truth, binary digits."""

from edfast.data.digits import load_digits_binary
from edfast.data.gray import CategoricalGrid, GrayCode
from edfast.data.ising_lattice import (gibbs_ising, greedy_colouring, lattice_coupling,
                                       sample_lattice_ising)
from edfast.data.toy2d import TOY_DATASETS, TOY_DENSITIES, sample_toy, toy_log_density

__all__ = ["CategoricalGrid", "GrayCode", "TOY_DATASETS", "TOY_DENSITIES", "gibbs_ising",
           "greedy_colouring", "lattice_coupling", "load_digits_binary", "sample_lattice_ising",
           "sample_toy", "toy_log_density"]
