"""edfast.perturb: shapes, the RNG contract (DESIGN §3), noise statistics and bad inputs.

Statistics are checked for the kernels and, with the same functions, for the reference."""
import pytest
import torch

import edfast
from edfast import reference
from conftest import requires_cuda
from stats import (assert_frequencies, assert_frequency, assert_mean, assert_standard_normal_ks,
                   assert_variance)

BINARY = [edfast.Bernoulli(0.2), edfast.BitFlip()]
CATEGORICAL = [edfast.Categorical(5, 0.3), edfast.Cyclic(6, 0.4), edfast.Ordinal(4, 0.7)]


def kernel_perturb(x, q, m, seed=0):
    return edfast.perturb(x, q, m, seed=seed)


def reference_perturb(x, q, m, seed=0):
    return reference.perturb(x, q, m, generator=torch.Generator(x.device).manual_seed(seed))


IMPLS = {"kernel": kernel_perturb, "reference": reference_perturb}


def example_input(q, shape, device, dtype=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    if q.data == "real":
        return torch.randn(shape, generator=g).to(device, dtype or torch.float32)
    if q.data == "binary":
        return torch.randint(0, 2, shape, generator=g).to(device, dtype or torch.float32)
    return torch.randint(0, q.num_classes, shape, generator=g).to(device)


ALL = [edfast.Gaussian(0.5)] + BINARY + CATEGORICAL


# ------------------------------------------------------------------ shapes and contract

@pytest.mark.parametrize("q", ALL, ids=repr)
@pytest.mark.parametrize("shape", [(5, 7), (3, 2, 3, 3), (4,)])
def test_shapes_dtypes_devices(device, q, shape):
    x = example_input(q, shape, device)
    y, negatives = edfast.perturb(x, q, 3, seed=1)
    assert y.shape == x.shape and negatives.shape == (shape[0], 3, *shape[1:])
    assert y.dtype == negatives.dtype == x.dtype and y.device == negatives.device == x.device


@pytest.mark.parametrize("q", ALL, ids=repr)
def test_empty_batch(device, q):
    x = example_input(q, (0, 6), device)
    y, negatives = edfast.perturb(x, q, 4, seed=1)
    assert y.shape == (0, 6) and negatives.shape == (0, 4, 6)


@pytest.mark.parametrize("q", ALL, ids=repr)
def test_determinism_and_seed(device, q):
    x = example_input(q, (6, 9), device)
    first, again, other = (edfast.perturb(x, q, 4, seed=s) for s in (7, 7, 8))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[1], other[1])


def test_seed_from_generator(device):
    x = example_input(edfast.Gaussian(1.0), (4, 3), device)
    a = edfast.perturb(x, edfast.Gaussian(1.0), 2, generator=torch.Generator().manual_seed(3))
    b = edfast.perturb(x, edfast.Gaussian(1.0), 2, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(5)
    c = edfast.perturb(x, edfast.Gaussian(1.0), 2)
    torch.manual_seed(5)
    d = edfast.perturb(x, edfast.Gaussian(1.0), 2)
    assert torch.equal(a[1], b[1]) and torch.equal(c[1], d[1]) and not torch.equal(a[1], c[1])


@pytest.mark.parametrize("q", ALL, ids=repr)
def test_shard_invariance(device, q):
    """Rows cut into shards with matching row_offsets draw the whole batch's noise."""
    x = example_input(q, (10, 13), device)
    y, negatives = edfast.perturb(x, q, 5, seed=3)
    for start, stop in [(0, 4), (4, 7), (7, 10)]:
        y_part, neg_part = edfast.perturb(x[start:stop], q, 5, seed=3, row_offset=start)
        assert torch.equal(y_part, y[start:stop]) and torch.equal(neg_part, negatives[start:stop])


@pytest.mark.parametrize("q", ALL, ids=repr)
def test_negative_chunks_match_whole(device, q):
    """Negatives drawn in chunks of the M axis equal the whole draw; y is shared."""
    x = example_input(q, (4, 11), device)
    y, negatives = edfast.perturb(x, q, 7, seed=3)
    for start, stop in [(0, 3), (3, 6), (6, 7)]:
        y_part, neg_part = edfast.perturb(x, q, stop - start, seed=3, first_negative=start)
        assert torch.equal(y_part, y) and torch.equal(neg_part, negatives[:, start:stop])


@pytest.mark.parametrize("q", ALL, ids=repr)
def test_non_contiguous_input(device, q):
    x = example_input(q, (9, 6), device)
    strided = x.t().contiguous().t()
    assert not strided.is_contiguous()
    a, b = edfast.perturb(strided, q, 3, seed=2), edfast.perturb(x, q, 3, seed=2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.float64, torch.bfloat16])
def test_binary_dtypes_share_noise(device, dtype):
    x = example_input(edfast.Bernoulli(0.3), (5, 8), device)
    expected = edfast.perturb(x, edfast.Bernoulli(0.3), 3, seed=4)
    got = edfast.perturb(x.to(dtype), edfast.Bernoulli(0.3), 3, seed=4)
    assert got[1].dtype == dtype and torch.equal(got[1].float(), expected[1])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gaussian_half_is_float32_noise_rounded(device, dtype):
    x = example_input(edfast.Gaussian(1.0), (6, 5), device, dtype)
    y, negatives = edfast.perturb(x, edfast.Gaussian(0.7), 2, seed=9)
    y32, neg32 = edfast.perturb(x.float(), edfast.Gaussian(0.7), 2, seed=9)
    assert y.dtype == dtype and torch.equal(y, y32.to(dtype)) and torch.equal(negatives, neg32.to(dtype))


# ------------------------------------------------------------------ gradients and opcheck

def test_gaussian_gradcheck(device):
    x = torch.randn(4, 3, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: edfast.perturb(t, edfast.Gaussian(0.3), 2, seed=1), (x,))


@pytest.mark.parametrize("q", ALL, ids=repr)
def test_opcheck(device, q):
    x = example_input(q, (5, 6), device, torch.float64 if q.data == "real" else None)
    kind, param, cdf = q.op_args(device)
    torch.library.opcheck(torch.ops.edfast.perturb, (x, kind, param, cdf, 3, 17, 2, 1))
    if q.data == "real":
        torch.library.opcheck(torch.ops.edfast.perturb,
                              (x.clone().requires_grad_(), kind, param, cdf, 3, 17, 0, 0))


# ------------------------------------------------------------------ noise statistics

@pytest.mark.parametrize("impl", IMPLS)
def test_gaussian_statistics(device, impl):
    scale, m = 0.7, 8
    x = example_input(edfast.Gaussian(scale), (2000, 25), device)
    y, negatives = IMPLS[impl](x, edfast.Gaussian(scale), m, seed=12)
    first = ((y - x) / scale).cpu()
    second = ((negatives - y[:, None]) / scale).cpu()
    for z in (first, second):
        assert_mean(z, 0.0, 1.0)
        assert_variance(z, 1.0)
    assert_standard_normal_ks(first[:400])
    assert_standard_normal_ks(second[:100])
    # Negatives are independent given y: the correlation of two negatives' steps is ~0.
    corr = (second[:, 0] * second[:, 1]).flatten()
    assert_mean(corr, 0.0, 1.0)
    # x -> x' has variance 2 scale^2.
    assert_variance(((negatives[:, 0] - x) / scale).cpu(), 2.0)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("eps,shape", [(0.15, (1000, 40)), (0.005, (2000, 300))], ids=["dense", "sparse"])
def test_bernoulli_flip_rates(device, impl, eps, shape):
    # 0.005 draws the flips by geometric gaps, 0.15 one word per coordinate (csrc/core/perturb.h).
    x = example_input(edfast.Bernoulli(eps), shape, device)
    y, negatives = IMPLS[impl](x, edfast.Bernoulli(eps), 4, seed=1)
    assert_frequency(int((y != x).sum()), x.numel(), eps)
    assert_frequency(int((negatives != y[:, None]).sum()), negatives.numel(), eps)
    assert_frequency(int((negatives[:, 0] != x).sum()), x.numel(), 2 * eps * (1 - eps))
    # Every coordinate flips at the same rate, and the negatives' flips are independent.
    flips = (negatives != y[:, None]).double().cpu()
    assert_frequencies(flips.sum((0, 1)), torch.full((shape[1],), 1.0 / shape[1]))
    both = int((flips[:, 0] * flips[:, 1]).sum())
    assert_frequency(both, x.numel(), eps * eps)


@pytest.mark.parametrize("impl", IMPLS)
def test_bitflip_flips_exactly_one_uniform_coordinate(device, impl):
    d = 12
    x = example_input(edfast.BitFlip(), (3000, d), device)
    y, negatives = IMPLS[impl](x, edfast.BitFlip(), 3, seed=2)
    assert ((y != x).sum(1) == 1).all()
    assert ((negatives != y[:, None]).sum(2) == 1).all()
    counts = (y != x).sum(0).double().cpu()
    assert_frequencies(counts, torch.full((d,), 1.0 / d))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("q", CATEGORICAL, ids=repr)
def test_categorical_transitions(device, impl, q):
    """Transition frequencies a -> b against the exact one-step matrix Q, and x -> x' against
    Q @ Q (two independent steps)."""
    k = q.num_classes
    x = example_input(q, (4000, 10), device)
    y, negatives = IMPLS[impl](x, q, 2, seed=5)
    exact = reference.transition_matrix(q)
    for start, end, matrix in [(x, y, exact), (y, negatives[:, 0], exact), (x, negatives[:, 1], exact @ exact)]:
        start, end = start.flatten().cpu(), end.flatten().cpu()
        for a in range(k):
            counts = torch.bincount(end[start == a], minlength=k).double()
            assert_frequencies(counts, matrix[a])


def test_heat_kernel_matrices_match_reference():
    for q in CATEGORICAL:
        torch.testing.assert_close(q.transition_matrix(), reference.transition_matrix(q), rtol=0, atol=1e-12)


# ------------------------------------------------------------------ bad inputs

@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda: edfast.Gaussian(0.0), ValueError, "scale"),
        (lambda: edfast.Gaussian(float("inf")), ValueError, "scale"),
        (lambda: edfast.Gaussian("1"), TypeError, "scale"),
        (lambda: edfast.Bernoulli(0.0), ValueError, "epsilon"),
        (lambda: edfast.Bernoulli(1.0), ValueError, "epsilon"),
        (lambda: edfast.Categorical(1, 0.1), ValueError, "num_classes"),
        (lambda: edfast.Categorical(2.5, 0.1), TypeError, "num_classes"),
        (lambda: edfast.Cyclic(4, 0.0), ValueError, "t must"),
        (lambda: edfast.Ordinal(1, 0.3), ValueError, "num_classes"),
    ],
)
def test_bad_perturbations(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_negative_zero_is_zero(device):
    # -0.0 == 0: accepted, and flipped to 1 (the kernels flip by the bits of the dtype).
    x = torch.tensor([[-0.0, 1.0, -0.0, 0.0]], device=device)
    y, negatives = edfast.perturb(x, edfast.BitFlip(), 3, seed=7)
    assert ((y == 0) | (y == 1)).all() and (y != x).sum() == 1
    assert ((negatives == 0) | (negatives == 1)).all()


@pytest.mark.parametrize(
    "x,q,m,error,match",
    [
        (torch.randn(3, 2), edfast.Gaussian(1.0), 0, ValueError, "m .* >= 1"),
        (torch.tensor([[0.0, 0.5]]), edfast.Bernoulli(0.1), 2, ValueError, "only 0 and 1"),
        (torch.tensor([[0, 2]]), edfast.BitFlip(), 2, ValueError, "only 0 and 1"),
        (torch.tensor([[0.0, -1.0]]), edfast.BitFlip(), 2, ValueError, "only 0 and 1"),
        (torch.tensor([[0.0, float("nan")]]), edfast.Bernoulli(0.1), 2, ValueError, "only 0 and 1"),
        (torch.tensor([[1.0, 3.0]], dtype=torch.bfloat16), edfast.Bernoulli(0.5), 2, ValueError, "only 0 and 1"),
        (torch.tensor([[0j, 1]]), edfast.BitFlip(), 2, TypeError, "real"),
        (torch.tensor([[0, 5]]), edfast.Categorical(5, 0.1), 2, ValueError, r"\[0, 4\]"),
        (torch.tensor([[0, -1]]), edfast.Cyclic(5, 0.1), 2, ValueError, r"\[0, 4\]"),
        (torch.tensor([[0.0, 1.0]]), edfast.Categorical(5, 0.1), 2, TypeError, "int64"),
        (torch.tensor([[0, 1]], dtype=torch.int32), edfast.Ordinal(5, 0.1), 2, TypeError, "int64"),
        (torch.tensor([[0, 1]]), edfast.Gaussian(1.0), 2, TypeError, "floating"),
        (torch.tensor(1.0), edfast.Gaussian(1.0), 2, ValueError, r"\[B, \*event\]"),
        (torch.zeros(3, 0), edfast.BitFlip(), 2, ValueError, "at least one coordinate"),
    ],
)
def test_bad_inputs(x, q, m, error, match):
    with pytest.raises(error, match=match):
        edfast.perturb(x, q, m, seed=0)


def test_bad_seed_and_offsets():
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="seed"):
        edfast.perturb(x, edfast.Gaussian(1.0), 2, seed=-1)
    with pytest.raises(ValueError, match="row_offset"):
        edfast.perturb(x, edfast.Gaussian(1.0), 2, seed=0, row_offset=-3)
    with pytest.raises(TypeError, match="perturbation"):
        edfast.perturb(x, "gaussian", 2, seed=0)
    with pytest.raises(ValueError, match="row_offset"):  # the op checks its own arguments
        torch.ops.edfast.perturb(x, 0, 1.0, None, 2, 0, -1, 0)


@requires_cuda
def test_transition_table_device_must_match():
    q = edfast.Categorical(3, 0.2)
    x = torch.zeros(2, 2, dtype=torch.long, device="cuda")
    with pytest.raises(RuntimeError, match="transition_cdf is on"):
        torch.ops.edfast.perturb(x, q.kind, 0.0, q.op_args("cpu")[2], 2, 0, 0, 0)


@requires_cuda
@pytest.mark.parametrize("q", ALL, ids=repr)
def test_cuda_noise_bit_identical_to_cpu(q):
    for dtype in ([torch.float32, torch.float64] if q.data == "real" else [None]):
        x = example_input(q, (37, 29), "cpu", dtype)
        cpu = edfast.perturb(x, q, 6, seed=123, row_offset=11)
        gpu = edfast.perturb(x.cuda(), q, 6, seed=123, row_offset=11)
        assert torch.equal(gpu[0].cpu(), cpu[0]) and torch.equal(gpu[1].cpu(), cpu[1])


def test_gaussian_bits_pinned(device):
    """The Gaussian noise of (seed 12345, row 7, y) as pinned by the C++ core tests
    (tests/cpp/test_core.cpp, normal4_pinned): every device must draw these bits."""
    expected = [0xbed7c455, 0xbe2bd0c8, 0xbf6a7271, 0x3f7b1461, 0xbed195ff, 0xbf5dd9ba,
                0x3db5e23d, 0x3eb48723, 0xbf4905f8, 0x40012ae8, 0x3e187880, 0xbed3ad4b]
    y, _ = edfast.perturb(torch.zeros(1, 12, device=device), edfast.Gaussian(1.0), 1, seed=12345, row_offset=7)
    got = y.cpu().view(torch.int32).flatten().tolist()
    assert [b & 0xFFFFFFFF for b in got] == expected
