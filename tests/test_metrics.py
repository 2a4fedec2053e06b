"""Metrics against hand computations, closed forms and exact enumeration."""

import itertools
import math

import numpy as np
import pytest
import torch

from edfast.data import toy_log_density
from edfast.energies import Ising
from edfast.metrics import (coupling_rmse, exp_hamming_mmd, grid_density_error, grid_log_density,
                            grid_points, hamming_distance, log_partition_exact,
                            log_partition_importance, neg_log_rmse, nll_exact, nll_importance)


def test_coupling_rmse_and_neg_log():
    true = torch.zeros(3, 3)
    learned = torch.tensor([[0.0, 0.3, 0.0], [0.3, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert coupling_rmse(learned, true) == pytest.approx(math.sqrt(2 * 0.09 / 9))
    assert neg_log_rmse(learned, true) == pytest.approx(-math.log(math.sqrt(0.02)))
    assert neg_log_rmse(true, true) == math.inf
    with pytest.raises(ValueError, match="same shape"):
        coupling_rmse(torch.zeros(3, 3), torch.zeros(4, 4))


def test_mmd_matches_hand_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 2, (5, 7), generator=g).float()
    y = torch.randint(0, 2, (4, 7), generator=g).float()
    k = lambda a, b: math.exp(-0.1 * sum(int(u != v) for u, v in zip(a, b)))
    xs, ys = x.tolist(), y.tolist()
    kxx = sum(k(a, b) for i, a in enumerate(xs) for j, b in enumerate(xs) if i != j) / 20
    kyy = sum(k(a, b) for i, a in enumerate(ys) for j, b in enumerate(ys) if i != j) / 12
    kxy = sum(k(a, b) for a in xs for b in ys) / 20
    assert exp_hamming_mmd(x, y) == pytest.approx(kxx + kyy - 2 * kxy, abs=1e-12)
    h = hamming_distance(x, y, chunk_elements=7)  # forces one row per chunk
    assert h.tolist() == [[sum(int(u != v) for u, v in zip(a, b)) for b in ys] for a in xs]
    xc = torch.tensor([[0, 2, 1]]).repeat(2, 1)
    assert hamming_distance(xc, torch.tensor([[0, 1, 1]])).tolist() == [[1], [1]]


def test_mmd_is_unbiased_for_product_bernoullis():
    # For x ~ Bern(p)^D, y ~ Bern(q)^D the population value is closed form:
    # E exp(-b H) = (1 - r (1 - e^-b))^D with r the per-coordinate disagreement probability.
    d, p, q, beta = 32, 0.3, 0.4, 0.1
    f = lambda r: (1 - r * (1 - math.exp(-beta))) ** d
    population = f(2 * p * (1 - p)) + f(2 * q * (1 - q)) - 2 * f(p * (1 - q) + q * (1 - p))
    g = torch.Generator().manual_seed(1)
    estimates = [exp_hamming_mmd((torch.rand(200, d, generator=g) < p).float(),
                                 (torch.rand(150, d, generator=g) < q).float(), beta)
                 for _ in range(20)]
    se = np.std(estimates, ddof=1) / math.sqrt(len(estimates))
    assert abs(np.mean(estimates) - population) < 4 * se
    assert population > 10 * se  # the distributions are distinguishable at this size
    with pytest.raises(ValueError, match="at least 2"):
        exp_hamming_mmd(torch.zeros(1, 3), torch.zeros(4, 3))


def _random_ising(d, seed, scale=0.2):
    m = Ising(d).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        m.weight.copy_(scale * torch.randn(d, d, generator=g, dtype=torch.float64))
        m.bias.copy_(scale * torch.randn(d, generator=g, dtype=torch.float64))
    return m


def test_log_partition_exact_against_closed_form_and_loop():
    # Independent spins: U = -b.s, Z = prod_i (e^{b_i} + e^{-b_i}).
    m = Ising(12).double()
    with torch.no_grad():
        m.bias.copy_(torch.linspace(-1, 1.5, 12, dtype=torch.float64))
    expected = float(torch.log(2 * torch.cosh(m.bias.detach())).sum())
    assert float(log_partition_exact(m, 12, batch_size=1000)) == pytest.approx(expected, abs=1e-10)
    m = _random_ising(5, 2, scale=1.0)
    with torch.no_grad():
        energies = [float(m(torch.tensor([list(s)], dtype=torch.float64)))
                    for s in itertools.product([0.0, 1.0], repeat=5)]
    expected = math.log(sum(math.exp(-u) for u in energies))
    assert float(log_partition_exact(m, 5)) == pytest.approx(expected, abs=1e-10)
    x = torch.tensor([[0.0, 1, 1, 0, 1], [1, 1, 0, 0, 0]], dtype=torch.float64)
    with torch.no_grad():
        mean_u = float(m(x).mean())
    assert nll_exact(m, x) == pytest.approx(mean_u + expected, abs=1e-10)
    with pytest.raises(ValueError, match="dim <= 20"):
        log_partition_exact(m, 21)


def test_importance_sampled_log_partition_and_nll():
    d, n = 10, 2**15
    m = _random_ising(d, 3)
    exact = float(log_partition_exact(m, d))
    g = torch.Generator().manual_seed(4)
    estimate = float(log_partition_importance(m, d, n, batch_size=5000, generator=g))
    # Standard error of log(mean w) ~ std(w) / (mean(w) sqrt(n)), w = exp(-U(z)) 2^d, z uniform.
    with torch.no_grad():
        z = torch.randint(0, 2, (n, d), generator=torch.Generator().manual_seed(5)).double()
        w = torch.exp(-m(z) - float(log_partition_exact(m, d)))  # scaled weights, mean ~ 2^-d
    se = float(w.std() / w.mean()) / math.sqrt(n)
    assert abs(estimate - exact) < 4 * se
    x = torch.randint(0, 2, (50, d), generator=g).double()
    nll = nll_importance(m, x, n, generator=torch.Generator().manual_seed(6))
    assert abs(nll - nll_exact(m, x)) < 4 * se


def test_grid_log_density_of_a_gaussian():
    s = 0.7
    energy = lambda x: (x.double() ** 2).sum(1) / (2 * s**2)
    log_p = grid_log_density(energy, lim=4.0, resolution=200, dtype=torch.float64)
    points, area = grid_points(4.0, 200, dtype=torch.float64)
    assert log_p.shape == (200, 200)
    assert float(log_p.exp().sum() * area) == pytest.approx(1.0, abs=1e-12)
    exact = -(points**2).sum(1) / (2 * s**2) - math.log(2 * math.pi * s**2)
    # Row index is y and column index is x.
    assert points[1, 0] > points[0, 0] and points[200, 1] > points[0, 1]
    assert (log_p.reshape(-1) - exact).abs().max() < 1e-3  # midpoint-rule normaliser error


def test_grid_density_error_closed_forms():
    exact_model = lambda x: -toy_log_density("8gaussians", x)
    err = grid_density_error(exact_model, "8gaussians", resolution=200, dtype=torch.float64)
    assert err["kl"] == pytest.approx(0.0, abs=1e-10) and err["tv"] == pytest.approx(0.0, abs=1e-10)
    # KL(N(0, I) || N(0, 4 I)) in 2D is 2 * (1/8 - 1/2 + log 2); both truncated to [-4, 4]^2
    # the wide one loses mass P(|z| < 2)^2, which raises its grid log-density by -2 log of it.
    std_normal = lambda x: -(x**2).sum(1) / 2
    wide = lambda x: (x.double() ** 2).sum(1) / 8
    err = grid_density_error(wide, std_normal, resolution=400, dtype=torch.float64)
    inside = math.erf(2 / math.sqrt(2))
    expected = 2 * (1 / 8 - 1 / 2 + math.log(2)) + 2 * math.log(inside)
    assert err["kl"] == pytest.approx(expected, abs=2e-3)
    assert 0 < err["tv"] < 1 and err["mae_log_density"] >= err["kl"]
    with pytest.raises(ValueError, match="resolution"):
        grid_points(4.0, 1)
