"""Samplers against exact answers: Gaussian moments for Langevin, enumeration for Gibbs/GWG."""

import itertools
import math

import numpy as np
import pytest
import torch

from edfast.energies import Ising, MLPEnergy, Potts
from edfast.samplers import gibbs, gibbs_with_gradients, langevin

MU = torch.tensor([1.0, -2.0], dtype=torch.float64)
SIGMA = torch.tensor([1.0, 0.5], dtype=torch.float64)


def gaussian_energy(x):
    return 0.5 * (((x - MU) / SIGMA) ** 2).sum(1)


def _assert_mean(values, expected, n_se=4.0):
    values = np.asarray(values, dtype=np.float64)
    se = values.std(ddof=1) / math.sqrt(len(values))
    assert abs(values.mean() - expected) < n_se * se, (values.mean(), expected, se)


def _assert_moments(x, mean, var):
    """Per-coordinate mean and variance of independent chains within 4 standard errors."""
    for i in range(x.shape[1]):
        _assert_mean(x[:, i].numpy(), float(mean[i]))
        _assert_mean(((x[:, i] - mean[i]) ** 2).numpy(), float(var[i]))


def test_mala_targets_gaussian_exactly():
    g = torch.Generator().manual_seed(0)
    x0 = torch.zeros(4000, 2, dtype=torch.float64)
    x, acc = langevin(gaussian_energy, x0, 200, 0.2, adjusted=True, generator=g,
                      return_acceptance=True)
    assert 0.3 < float(acc.mean()) < 1.0  # some proposals are rejected at this step size
    _assert_moments(x, MU, SIGMA**2)


def test_ula_matches_its_biased_stationary_law():
    # For U = (x - mu)^2 / (2 s^2) ULA is the AR(1) x' = mu + (1 - e/s^2)(x - mu) + sqrt(2e) xi,
    # whose stationary variance is 2e / (1 - (1 - e/s^2)^2), not s^2.
    eps = 0.05
    g = torch.Generator().manual_seed(1)
    x, acc = langevin(gaussian_energy, torch.zeros(4000, 2, dtype=torch.float64), 300, eps,
                      generator=g, return_acceptance=True)
    assert torch.all(acc == 1)
    rho = 1 - eps / SIGMA**2
    _assert_moments(x, MU, 2 * eps / (1 - rho**2))
    assert not torch.allclose(2 * eps / (1 - rho**2), SIGMA**2)  # the test can tell ULA from exact


def test_langevin_determinism_and_no_param_grads():
    m = MLPEnergy(2, (8,))
    x0 = torch.randn(10, 2, generator=torch.Generator().manual_seed(2))
    a = langevin(m, x0, 5, 0.01, adjusted=True, generator=torch.Generator().manual_seed(3))
    b = langevin(m, x0, 5, 0.01, adjusted=True, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not a.requires_grad
    assert all(p.grad is None for p in m.parameters())
    with pytest.raises(ValueError, match="step_size"):
        langevin(m, x0, 5, 0.0)
    with pytest.raises(TypeError, match="floating"):
        langevin(m, x0.long(), 5, 0.1)
    with pytest.raises(ValueError, match=r"to \[B\]"):
        langevin(lambda x: x, x0, 1, 0.1)


def _random_ising(d, seed):
    m = Ising(d).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        m.weight.copy_(0.4 * torch.randn(d, d, generator=g, dtype=torch.float64))
        m.bias.copy_(0.5 * torch.randn(d, generator=g, dtype=torch.float64))
    return m


def _exact_binary_moments(energy, d):
    x = torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)), dtype=torch.float64)
    with torch.no_grad():
        p = torch.softmax(-energy(x), 0)
    return p @ x, torch.einsum("n,ni,nj->ij", p, x, x)


def _assert_binary_moments(x, mean, second):
    d = x.shape[1]
    for i in range(d):
        _assert_mean(x[:, i].numpy(), float(mean[i]))
        for j in range(i + 1, d):
            _assert_mean((x[:, i] * x[:, j]).numpy(), float(second[i, j]))


@pytest.mark.parametrize("scan", ["systematic", "random"])
def test_gibbs_matches_enumeration_on_ising(scan):
    d = 6
    m = _random_ising(d, 4)
    mean, second = _exact_binary_moments(m, d)
    g = torch.Generator().manual_seed(5)
    x0 = torch.zeros(3000, d, dtype=torch.float64)
    x = gibbs(m, x0, 15, scan=scan, generator=g)
    assert x.dtype == x0.dtype and set(x.unique().tolist()) <= {0.0, 1.0}
    _assert_binary_moments(x, mean, second)


def test_gibbs_categorical_matches_enumeration_on_potts():
    d, k = 3, 3
    m = Potts(d, k).double()
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=torch.float64))
        m.bias.copy_(torch.randn(m.bias.shape, generator=g, dtype=torch.float64))
    states = torch.tensor(list(itertools.product(range(k), repeat=d)))
    with torch.no_grad():
        p = torch.softmax(-m(states), 0)
    x = gibbs(m, torch.zeros(3000, d, dtype=torch.long), 15, num_classes=k, generator=g)
    assert x.dtype == torch.int64
    for i in range(d):
        for c in range(k):
            _assert_mean((x[:, i] == c).double().numpy(), float(p[states[:, i] == c].sum()))


def test_gwg_matches_enumeration_on_ising():
    d = 6
    m = _random_ising(d, 7)
    mean, second = _exact_binary_moments(m, d)
    g = torch.Generator().manual_seed(8)
    x, acc = gibbs_with_gradients(m, torch.zeros(3000, d, dtype=torch.float64), 100, generator=g,
                                  return_acceptance=True)
    assert 0 < float(acc.mean()) < 1
    _assert_binary_moments(x, mean, second)
    assert all(p.grad is None for p in m.parameters())


def test_binary_samplers_accept_event_shapes_and_reject_bad_input():
    m = _random_ising(4, 9)
    flat = lambda x: m(x.reshape(x.shape[0], -1))
    x0 = torch.zeros(5, 2, 2, dtype=torch.float64)
    assert gibbs(flat, x0, 1, generator=torch.Generator().manual_seed(0)).shape == (5, 2, 2)
    assert gibbs_with_gradients(flat, x0, 3).shape == (5, 2, 2)
    with pytest.raises(ValueError, match="scan"):
        gibbs(m, x0.reshape(5, 4), 1, scan="diagonal")
    with pytest.raises(TypeError, match="floating"):
        gibbs(m, torch.zeros(5, 4, dtype=torch.long), 1)
    with pytest.raises(TypeError, match="int64"):
        gibbs(m, torch.zeros(5, 4), 1, num_classes=3)
    with pytest.raises(TypeError, match="floating"):
        gibbs_with_gradients(m, torch.zeros(5, 4, dtype=torch.long), 1)
