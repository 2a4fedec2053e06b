"""Datasets: determinism, statistics against their definitions, encodings, lattice Ising."""

import itertools
import math

import numpy as np
import pytest
import scipy.integrate
import sklearn.datasets
import torch

from edfast.data import (TOY_DATASETS, CategoricalGrid, GrayCode, gibbs_ising, greedy_colouring,
                         lattice_coupling, load_digits_binary, sample_lattice_ising, sample_toy,
                         toy_log_density)
from edfast.energies import Ising

N = 20000


def _assert_mean(values, expected, n_se=4.0):
    """Sample mean of i.i.d. values within n_se estimated standard errors of `expected`."""
    values = np.asarray(values, dtype=np.float64)
    se = values.std(ddof=1) / math.sqrt(len(values))
    assert abs(values.mean() - expected) < n_se * se + 1e-12, (values.mean(), expected, se)


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_toy_shape_and_determinism(name):
    a = sample_toy(name, 1001, generator=3)
    assert a.shape == (1001, 2) and a.dtype == torch.float32
    assert torch.isfinite(a).all()
    torch.testing.assert_close(sample_toy(name, 1001, generator=torch.Generator().manual_seed(5)),
                               sample_toy(name, 1001, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(a, sample_toy(name, 1001, generator=np.random.RandomState(3)))
    assert not torch.equal(a, sample_toy(name, 1001, generator=4))
    g = torch.Generator().manual_seed(0)
    assert not torch.equal(sample_toy(name, 50, generator=g), sample_toy(name, 50, generator=g))


def test_toy_bad_arguments():
    with pytest.raises(ValueError, match="valid names: swissroll"):
        sample_toy("spiral", 10, generator=0)
    with pytest.raises(TypeError, match="generator"):
        sample_toy("moons", 10, generator=None)
    with pytest.raises(ValueError, match="n must be"):
        sample_toy("moons", 0, generator=0)


def _sq_norm(x):
    return (x.double() ** 2).sum(1).numpy()


def test_mixture_moments():
    x = sample_toy("8gaussians", N, generator=1)
    _assert_mean(x[:, 0].numpy(), 0.0)
    _assert_mean(x[:, 1].numpy(), 0.0)
    _assert_mean(_sq_norm(x), (16 + 2 * 0.25) / 1.414**2)
    x = sample_toy("25gaussians", N, generator=2)
    # Component counts: each centre is chosen with probability 1/25 (binomial s.e.).
    idx = torch.round(x.double() * 2.828 / 2).long() + 2
    counts = torch.bincount(idx[:, 0] * 5 + idx[:, 1], minlength=25).numpy()
    se = math.sqrt(N * (1 / 25) * (24 / 25))
    assert np.all(np.abs(counts - N / 25) < 4.5 * se)
    _assert_mean(_sq_norm(x), (16 + 2 * 0.05**2) / 2.828**2)


def test_checkerboard_definition():
    x = sample_toy("checkerboard", N, generator=3).double()
    assert x.min() >= -4 and x.max() < 4
    # Every point lies on a "black" square: floor(x1/2) + floor(x2/2) is even.
    assert torch.all((torch.floor(x[:, 0] / 2) + torch.floor(x[:, 1] / 2)) % 2 == 0)
    _assert_mean(x[:, 0].numpy() ** 2, 16 / 3)
    _assert_mean(x[:, 1].numpy() ** 2, 16 / 3)


def test_rings_circles_moons_moments():
    n = 20000  # divisible by 4: ring sizes exact
    _assert_mean(_sq_norm(sample_toy("rings", n, generator=4)),
                 9 * (1 + 0.75**2 + 0.5**2 + 0.25**2) / 4 + 2 * 0.08**2)
    _assert_mean(_sq_norm(sample_toy("circles", n, generator=5)), 9 * (1 + 0.25) / 2 + 2 * 0.24**2)
    x = sample_toy("moons", n, generator=6).double().numpy()
    _assert_mean(x[:, 0], 0.0)
    _assert_mean(x[:, 1], 0.3)


def _expect(f, lo, hi, density):
    return scipy.integrate.quad(lambda t: f(t) * density(t), lo, hi, limit=200)[0]


def test_swissroll_moments():
    # t ~ U(1.5 pi, 4.5 pi); x = (t cos t, t sin t) / 5 + N(0, 0.2^2 I).
    lo, hi = 1.5 * np.pi, 4.5 * np.pi
    dens = lambda t: 1.0 / (hi - lo)
    x = sample_toy("swissroll", N, generator=7).double().numpy()
    _assert_mean(x[:, 0], _expect(lambda t: t * np.cos(t), lo, hi, dens) / 5)
    _assert_mean(x[:, 1], _expect(lambda t: t * np.sin(t), lo, hi, dens) / 5)
    _assert_mean((x**2).sum(1), _expect(lambda t: t**2, lo, hi, dens) / 25 + 2 * 0.04)


def test_two_spirals_and_pinwheel_moments():
    # 2spirals: t = 3 pi sqrt(V) has density 2t / (3 pi)^2 on [0, 3 pi]; arm point
    # (-t cos t + U1/2, t sin t + U2/2), mirrored with probability 1/2, /3, + N(0, 0.1^2 I).
    top = 3 * np.pi
    dens = lambda t: 2 * t / top**2
    arm_sq = (_expect(lambda t: t**2, 0, top, dens) - 0.5 * _expect(lambda t: t * np.cos(t), 0, top, dens)
              + 0.5 * _expect(lambda t: t * np.sin(t), 0, top, dens) + 0.25 * 2 / 3)
    x = sample_toy("2spirals", N, generator=8).double().numpy()
    _assert_mean(x[:, 0], 0.0)
    _assert_mean((x**2).sum(1), arm_sq / 9 + 2 * 0.01)
    # pinwheel: rotation keeps the norm; radial N(1, 0.3^2), tangential N(0, 0.1^2), times 2.
    x = sample_toy("pinwheel", N, generator=9).double().numpy()
    _assert_mean(x[:, 1], 0.0)
    _assert_mean((x**2).sum(1), 4 * (1 + 0.09 + 0.01))


@pytest.mark.parametrize("name,lim,res", [("8gaussians", 6.0, 600), ("25gaussians", 2.0, 1000)])
def test_toy_log_density_normalised_and_correct(name, lim, res):
    h = 2 * lim / res
    c = torch.linspace(-lim + h / 2, lim - h / 2, res, dtype=torch.float64)
    pts = torch.cartesian_prod(c, c)
    total = toy_log_density(name, pts).exp().sum() * h * h
    assert abs(float(total) - 1) < 1e-6
    # Against scipy's Gaussian density at a few points near a centre.
    from scipy.stats import multivariate_normal
    std = 0.5 / 1.414 if name == "8gaussians" else 0.05 / 2.828
    centre = np.array([4 / 1.414, 0.0]) if name == "8gaussians" else np.array([2 / 2.828, -4 / 2.828])
    q = torch.tensor(centre + np.array([[0.0, 0.0], [0.3, -0.2]]) * std)
    n_comp = 8 if name == "8gaussians" else 25
    ref = np.log(multivariate_normal(centre, std**2 * np.eye(2)).pdf(q.numpy()) / n_comp)
    np.testing.assert_allclose(toy_log_density(name, q).numpy(), ref, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="known"):
        toy_log_density("moons", pts[:3])


def test_gray_code_known_bits_and_scale():
    code = GrayCode(int_scale=1.0)
    bits = code.encode(torch.tensor([[5.7, -3.2]]))
    expect_x = [0] + [0] * 12 + [1, 1, 1]  # +, floor 5 -> Gray 0b111
    expect_y = [1] + [0] * 13 + [1, 0]     # -, floor 3 -> Gray 0b010
    assert bits.dtype == torch.float32 and bits.tolist() == [expect_x + expect_y]
    assert GrayCode.from_data(torch.tensor([[3.0, -1.0]])).int_scale == 2**15 / 5
    with pytest.raises(ValueError, match="out of range"):
        code.encode(torch.tensor([[2.0**15, 0.0]]))


def test_gray_code_round_trips():
    x = sample_toy("2spirals", 5000, generator=10)
    code = GrayCode.from_data(x)
    bits = code.encode(x)
    assert bits.shape == (5000, 32) and set(bits.unique().tolist()) <= {0.0, 1.0}
    back = code.decode(bits)
    assert torch.equal(back, code.quantise(x))
    assert (back.double() - x.double()).abs().max() <= 0.5 / code.int_scale + 1e-6
    g = torch.Generator().manual_seed(11)
    random_bits = torch.randint(0, 2, (4000, 32), generator=g).float()
    assert torch.equal(code.encode(code.decode(random_bits)), random_bits)


def test_gray_code_neighbours_differ_in_one_bit():
    code = GrayCode(int_scale=1.0)
    m = torch.arange(0, 2**15, dtype=torch.float64)
    bits = code.encode(torch.stack([m + 0.5, m + 0.5], 1))[:, :16]
    assert torch.all((bits[1:] != bits[:-1]).sum(1) == 1)


def test_categorical_grid():
    grid = CategoricalGrid(16, -4.0, 4.0)
    k = torch.cartesian_prod(torch.arange(16), torch.arange(16))
    assert torch.equal(grid.encode(grid.decode(k)), k)
    x = sample_toy("moons", 3000, generator=12)
    inside = (x.abs() < 4).all(1)
    assert (grid.decode(grid.encode(x))[inside] - x[inside]).abs().max() <= grid.width / 2 + 1e-6
    assert grid.encode(torch.tensor([[-9.0, 9.0]])).tolist() == [[0, 15]]
    with pytest.raises(ValueError, match="clip=False"):
        CategoricalGrid(16, clip=False).encode(torch.tensor([[-9.0, 0.0]]))
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        grid.decode(torch.tensor([[16, 0]]))


def test_lattice_coupling_structure():
    j = lattice_coupling(4, 0.3)
    assert j.shape == (16, 16) and torch.equal(j, j.T) and torch.all(j.diagonal() == 0)
    assert torch.all((j != 0).sum(1) == 4) and torch.all(j[j != 0] == 0.3)
    assert sorted(torch.nonzero(j[0]).flatten().tolist()) == [1, 3, 4, 12]
    for n, colours in ((4, 2), (3, None)):
        jn = lattice_coupling(n, 1.0)
        classes = greedy_colouring(jn)
        assert sorted(torch.cat(classes).tolist()) == list(range(n * n))
        for cls in classes:
            assert torch.all(jn[cls][:, cls] == 0)
        if colours:
            assert len(classes) == colours


def _exact_moments(j, bias):
    d = j.shape[0]
    s = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=d)), dtype=torch.float64)
    logp = torch.einsum("ni,ij,nj->n", s, j, s) + s @ bias
    p = torch.softmax(logp, 0)
    x = (s + 1) / 2
    return p @ x, torch.einsum("n,ni,nj->ij", p, x, x)


@pytest.mark.parametrize("case", ["lattice3", "lattice4", "dense6"])
def test_gibbs_ising_matches_enumeration(case):
    g = torch.Generator().manual_seed(13)
    if case == "dense6":
        w = 0.3 * torch.randn(6, 6, generator=g, dtype=torch.float64)
        j = (w + w.T) / 2
        j.fill_diagonal_(0)
        bias = 0.5 * torch.randn(6, generator=g, dtype=torch.float64)
    else:
        j = lattice_coupling(int(case[-1]), 0.2, dtype=torch.float64)
        bias = torch.zeros(j.shape[0], dtype=torch.float64)
    mean, second = _exact_moments(j, bias)
    x = gibbs_ising(j, 4000, 30, generator=g, bias=bias)
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    for i in range(j.shape[0]):
        _assert_mean(x[:, i].numpy(), float(mean[i]))
        for k in range(i + 1, j.shape[0]):
            if j[i, k] != 0:
                _assert_mean((x[:, i] * x[:, k]).numpy(), float(second[i, k]))


def test_lattice_model_is_edfast_ising_without_bias():
    # Loading the true J into Ising(bias=False) gives U = -s^T J s, the benchmark's model.
    j = lattice_coupling(3, 0.3, dtype=torch.float64)
    m = Ising(9, bias=False).double()
    with torch.no_grad():
        m.weight.copy_(j)
    assert torch.equal(m.coupling, j)
    x = torch.tensor([[1.0, 0, 1, 1, 1, 0, 0, 0, 1], [1.0] * 9], dtype=torch.float64)
    s = 2 * x - 1
    with torch.no_grad():
        torch.testing.assert_close(m(x), -torch.einsum("bi,ij,bj->b", s, j, s))
    # All spins aligned: 18 bonds, each counted twice in s^T J s.
    assert float(m(x[1:]).detach()) == pytest.approx(-2 * 18 * 0.3)


def test_sample_lattice_ising():
    a = sample_lattice_ising(4, 0.1, num_samples=50, steps=20, generator=14)
    assert a.shape == (50, 16) and a.dtype == torch.float32
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(a, sample_lattice_ising(4, 0.1, num_samples=50, steps=20, generator=14))
    with pytest.raises(ValueError, match="n must be"):
        lattice_coupling(1, 0.1)
    with pytest.raises(ValueError, match="symmetric"):
        gibbs_ising(torch.triu(torch.ones(3, 3), 1), 2, 1, generator=0)


def test_digits_binary():
    x, y = load_digits_binary(return_labels=True)
    assert x.shape == (1797, 64) and x.dtype == torch.float32
    assert y.shape == (1797,) and y.dtype == torch.int64 and set(y.tolist()) == set(range(10))
    raw = sklearn.datasets.load_digits().data
    assert torch.equal(x, torch.from_numpy(raw > 8).float())
    assert torch.equal(load_digits_binary(4.0), torch.from_numpy(raw > 4).float())
