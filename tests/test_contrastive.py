"""edfast.contrastive_logsumexp against the reference (DESIGN §1, §6)."""
import math

import pytest
import torch

import edfast
from edfast import reference
from conftest import requires_cuda

FLOAT_TYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]


def random_energies(b, m, device, dtype=torch.float64, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    e_pos = (scale * torch.randn(b, generator=g, dtype=torch.float64)).to(device, dtype)
    e_neg = (scale * torch.randn(b, m, generator=g, dtype=torch.float64)).to(device, dtype)
    return e_pos, e_neg


@pytest.mark.parametrize("dtype", FLOAT_TYPES)
@pytest.mark.parametrize("b,m", [(1, 1), (7, 3), (64, 32), (5, 100)])
@pytest.mark.parametrize("w", [0.0, 0.3, 1.0])
def test_forward_matches_reference(device, dtype, b, m, w):
    e_pos, e_neg = random_energies(b, m, device, dtype, seed=b * 1000 + m)
    exact = reference.contrastive_logsumexp(e_pos.double(), e_neg.double(), w)
    same_precision = reference.contrastive_logsumexp(e_pos, e_neg, w).double()
    got = edfast.contrastive_logsumexp(e_pos, e_neg, w)
    assert got.dtype == dtype and got.shape == (b,)
    # Tolerance rule of DESIGN §6: at most twice the same-precision reference's error + floor.
    floor = 1e-12 if dtype == torch.float64 else 1e-5
    kernel_err = (got.double() - exact).abs().max().item()
    reference_err = (same_precision - exact).abs().max().item()
    assert kernel_err <= 2 * reference_err + floor


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_backward_matches_reference(device, dtype):
    e_pos, e_neg = random_energies(33, 17, device, dtype, seed=5)
    grads = {}
    for name, fn, ty in [("exact", reference.contrastive_logsumexp, torch.float64),
                         ("ref", reference.contrastive_logsumexp, dtype),
                         ("kernel", edfast.contrastive_logsumexp, dtype)]:
        p = e_pos.detach().to(ty).requires_grad_()
        n = e_neg.detach().to(ty).requires_grad_()
        weights = torch.linspace(-1, 2, 33, device=device, dtype=torch.float64).to(ty)
        (fn(p, n, 0.7) * weights).sum().backward()
        grads[name] = (p.grad.double(), n.grad.double())
    for k in range(2):
        kernel_err = (grads["kernel"][k] - grads["exact"][k]).abs().max().item()
        reference_err = (grads["ref"][k] - grads["exact"][k]).abs().max().item()
        assert kernel_err <= 2 * reference_err + 1e-6


@pytest.mark.parametrize("w", [0.0, 1.0, 2.5])
def test_gradcheck_float64(device, w):
    e_pos, e_neg = random_energies(6, 5, device, seed=11)
    e_pos.requires_grad_()
    e_neg.requires_grad_()
    assert torch.autograd.gradcheck(lambda p, n: edfast.contrastive_logsumexp(p, n, w), (e_pos, e_neg))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_opcheck(device, dtype):
    e_pos, e_neg = random_energies(9, 4, device, dtype, seed=3)
    torch.library.opcheck(torch.ops.edfast.contrastive_logsumexp, (e_pos, e_neg, 1.0))
    torch.library.opcheck(torch.ops.edfast.contrastive_logsumexp,
                          (e_pos.clone().requires_grad_(), e_neg.clone().requires_grad_(), 0.5))
    v, log_normaliser = torch.ops.edfast.contrastive_logsumexp(e_pos, e_neg, 1.0)
    torch.library.opcheck(torch.ops.edfast.contrastive_logsumexp_backward,
                          (torch.ones_like(v), e_pos, e_neg, log_normaliser))


@pytest.mark.parametrize("w", [0.0, 1.0])
def test_huge_energies_are_finite(device, w):
    e_pos = torch.tensor([1e4, -1e4, 1e4, 0.0], device=device)
    e_neg = torch.tensor([[-1e4, 1e4], [1e4, -1e4], [1e4 - 1, 1e4 + 1], [1e4, -1e4]], device=device)
    e_pos.requires_grad_()
    e_neg.requires_grad_()
    v = edfast.contrastive_logsumexp(e_pos, e_neg, w)
    v.sum().backward()
    assert torch.isfinite(v).all() and torch.isfinite(e_pos.grad).all() and torch.isfinite(e_neg.grad).all()
    exact = reference.contrastive_logsumexp(e_pos.detach().double(), e_neg.detach().double(), w)
    torch.testing.assert_close(v.double(), exact, rtol=1e-6, atol=1e-3)


def test_gradient_formula_of_design(device):
    """d v_i = (1 - w/Z_i) dU(x_i) - sum_j p_ij dU(x'_ij), Z_i = w + sum_j e_ij (DESIGN §1)."""
    e_pos, e_neg = random_energies(4, 6, device, seed=2)
    e_pos.requires_grad_()
    e_neg.requires_grad_()
    w = 0.8
    edfast.contrastive_logsumexp(e_pos, e_neg, w).sum().backward()
    e = torch.exp(e_pos.detach()[:, None] - e_neg.detach())
    z = w + e.sum(1)
    torch.testing.assert_close(e_pos.grad, 1 - w / z)
    torch.testing.assert_close(e_neg.grad, -e / z[:, None])


def test_non_contiguous_and_empty(device):
    e_pos, e_neg = random_energies(8, 5, device, seed=4)
    strided = e_neg.t().contiguous().t()
    assert not strided.is_contiguous()
    torch.testing.assert_close(edfast.contrastive_logsumexp(e_pos[::1], strided),
                               edfast.contrastive_logsumexp(e_pos, e_neg))
    torch.testing.assert_close(edfast.contrastive_logsumexp(e_pos[::2], e_neg[::2]),
                               edfast.contrastive_logsumexp(e_pos.contiguous()[::2].contiguous(),
                                                            e_neg[::2].contiguous()))
    empty = edfast.contrastive_logsumexp(e_pos[:0], e_neg[:0])
    assert empty.shape == (0,)


def test_nan_propagates(device):
    e_pos, e_neg = random_energies(3, 4, device, seed=8)
    e_neg[1, 2] = float("nan")
    v = edfast.contrastive_logsumexp(e_pos, e_neg)
    assert torch.isnan(v[1]) and torch.isfinite(v[[0, 2]]).all()


def test_matches_authors_convention_up_to_log_m(device):
    """The authors report logsumexp([U(x)-U(x'_j)]_j, log w) = v + log M."""
    e_pos, e_neg = random_energies(5, 8, device, seed=9)
    authors = torch.logsumexp(torch.cat([e_pos[:, None] - e_neg, torch.zeros_like(e_pos)[:, None]], 1), 1)
    torch.testing.assert_close(edfast.contrastive_logsumexp(e_pos, e_neg, 1.0) + math.log(8), authors)


@pytest.mark.parametrize(
    "args,error,match",
    [
        ((torch.zeros(3), torch.zeros(4, 2), 1.0), ValueError, "e_neg must have shape"),
        ((torch.zeros(3, 1), torch.zeros(3, 2), 1.0), ValueError, "e_pos must have shape"),
        ((torch.zeros(3), torch.zeros(3, 0), 1.0), ValueError, "M >= 1"),
        ((torch.zeros(3), torch.zeros(3, 2), -0.1), ValueError, "w must be finite and >= 0"),
        ((torch.zeros(3), torch.zeros(3, 2), float("nan")), ValueError, "w must be finite"),
        ((torch.zeros(3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long), 1.0), TypeError, "floating"),
    ],
)
def test_bad_inputs(args, error, match):
    with pytest.raises(error, match=match):
        edfast.contrastive_logsumexp(*args)
    with pytest.raises(error, match=match):  # the op itself checks too
        torch.ops.edfast.contrastive_logsumexp(*args)


@requires_cuda
def test_devices_must_match():
    with pytest.raises(RuntimeError, match="device|cuda"):
        edfast.contrastive_logsumexp(torch.zeros(3), torch.zeros(3, 2, device="cuda"))


@requires_cuda
@pytest.mark.parametrize("dtype", FLOAT_TYPES)
def test_cuda_matches_cpu(dtype):
    e_pos, e_neg = random_energies(300, 70, "cpu", dtype, seed=21)
    torch.testing.assert_close(edfast.contrastive_logsumexp(e_pos.cuda(), e_neg.cuda()).cpu(),
                               edfast.contrastive_logsumexp(e_pos, e_neg))


def test_infinite_terms_follow_logsumexp(device):
    """Two negatives of energy -inf give +inf (as torch.logsumexp), not NaN; +inf negatives
    contribute nothing."""
    e_pos = torch.zeros(2, device=device)
    e_neg = torch.tensor([[float("-inf"), float("-inf"), 1.0], [float("inf"), 0.5, float("inf")]], device=device)
    v = edfast.contrastive_logsumexp(e_pos, e_neg, 1.0)
    torch.testing.assert_close(v.cpu(), reference.contrastive_logsumexp(e_pos, e_neg, 1.0).cpu())
    assert v[0] == float("inf") and torch.isfinite(v[1])
