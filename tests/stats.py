"""Statistical checks with tolerances derived from the sample size.

Every test seeds its draws, so these checks are deterministic; the bounds are set at about
five standard errors, so a correct sampler fails them with probability ~1e-6 for any seed.
"""
import math

import torch

Z = 5.0


def assert_mean(samples: torch.Tensor, expected: float, std: float):
    n = samples.numel()
    err = abs(samples.double().mean().item() - expected)
    assert err <= Z * std / math.sqrt(n), f"mean {samples.double().mean().item():.5f} vs {expected} (n={n})"


def assert_variance(samples: torch.Tensor, expected: float):
    """For normal samples: Var(s^2) = 2 sigma^4 / (n - 1)."""
    n = samples.numel()
    var = samples.double().var().item()
    assert abs(var - expected) <= Z * expected * math.sqrt(2.0 / (n - 1)), f"variance {var:.5f} vs {expected}"


def assert_standard_normal_ks(samples: torch.Tensor):
    """Kolmogorov-Smirnov distance to N(0, 1) below the 1e-6 critical value sqrt(-ln(a/2)/2n)."""
    x = samples.double().flatten().sort().values
    n = x.numel()
    cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
    upper = torch.arange(1, n + 1, dtype=torch.float64) / n
    lower = torch.arange(0, n, dtype=torch.float64) / n
    distance = torch.maximum(upper - cdf, cdf - lower).max().item()
    critical = math.sqrt(-math.log(1e-6 / 2) / (2 * n))
    assert distance <= critical, f"KS distance {distance:.5f} > {critical:.5f}"


def assert_frequency(hits: int, trials: int, p: float):
    """A binomial count against its probability."""
    std = math.sqrt(trials * p * (1 - p)) if 0 < p < 1 else 0.0
    assert abs(hits - trials * p) <= Z * std + 1e-9, f"{hits}/{trials} vs p={p:.5f}"


def assert_frequencies(counts: torch.Tensor, probabilities: torch.Tensor):
    """Each cell of a multinomial count against its probability (binomial marginals)."""
    trials = int(counts.sum())
    for hits, p in zip(counts.flatten().tolist(), probabilities.flatten().tolist()):
        assert_frequency(int(hits), trials, float(p))
