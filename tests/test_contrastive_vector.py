"""contrastive_logsumexp on shapes and values that exercise the vectorised CPU rows
(csrc/cpu/contrastive_simd.cpp): M around the vector widths, rows that leave the vector path
for the scalar core in the same call, energies of magnitude 1e4, every instruction set.
Errors against the float64 reference follow DESIGN §6."""
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import edfast
from edfast import reference

FLOAT_TYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
# Around the 16 float lanes (8 double lanes) of a chunk of a row: partial chunks, whole chunks.
WIDTHS = [1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 1000]


def energies(b, m, dtype, device, scale, seed, uniform=False):
    g = torch.Generator().manual_seed(seed)
    draw = (lambda *shape: 2 * torch.rand(*shape, generator=g, dtype=torch.float64) - 1) if uniform else (
        lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64))
    return (scale * draw(b)).to(device, dtype), (scale * draw(b, m)).to(device, dtype)


def value_and_grads(fn, e_pos, e_neg, w, dtype):
    """v and the gradients of sum_i c_i v_i, computed in `dtype`."""
    p = e_pos.detach().to(dtype).requires_grad_()
    n = e_neg.detach().to(dtype).requires_grad_()
    v = fn(p, n, w)
    weights = torch.linspace(-1.0, 2.0, v.shape[0], dtype=torch.float64).to(v.device, dtype)
    grad_pos, grad_neg = torch.autograd.grad((v * weights).sum(), (p, n))
    return [t.detach().double() for t in (v, grad_pos, grad_neg)]


def assert_design_tolerance(got, exact, same_precision, dtype, floor):
    """DESIGN §6: |kernel - exact| <= 2 |same-precision reference - exact| + floor, on the
    entries where the exact value is finite; the others must agree exactly (inf, -inf, NaN)."""
    finite = torch.isfinite(exact)
    assert torch.equal(torch.isnan(got), torch.isnan(exact))
    assert torch.equal(got[~finite & ~torch.isnan(exact)], exact[~finite & ~torch.isnan(exact)])
    if dtype == torch.float64:  # the same-precision reference is the exact one
        torch.testing.assert_close(got[finite], exact[finite], rtol=1e-13, atol=floor)
        return
    kernel_err = (got[finite] - exact[finite]).abs().max().item()
    reference_err = (same_precision[finite] - exact[finite]).abs().max().item()
    assert kernel_err <= 2 * reference_err + floor, (kernel_err, reference_err)


def check_against_reference(e_pos, e_neg, w, dtype):
    exact = value_and_grads(reference.contrastive_logsumexp, e_pos, e_neg, w, torch.float64)
    same = value_and_grads(reference.contrastive_logsumexp, e_pos, e_neg, w, dtype)
    got = value_and_grads(edfast.contrastive_logsumexp, e_pos, e_neg, w, dtype)
    for k, floor in enumerate([1e-5, 1e-6, 1e-6]):  # v, grad e_pos, grad e_neg
        assert_design_tolerance(got[k], exact[k], same[k], dtype, 1e-12 if dtype == torch.float64 else floor)


@pytest.mark.parametrize("dtype", FLOAT_TYPES)
@pytest.mark.parametrize("m", WIDTHS)
def test_forward_and_backward_around_vector_widths(device, dtype, m):
    e_pos, e_neg = energies(41, m, dtype, device, scale=3.0, seed=m)
    check_against_reference(e_pos, e_neg, 0.7, dtype)


@pytest.mark.parametrize("dtype", FLOAT_TYPES)
@pytest.mark.parametrize("m", [1, 17, 33, 1000])
@pytest.mark.parametrize("w", [0.0, 1.0])
def test_energies_of_magnitude_1e4(device, dtype, m, w):
    """Energies in [-1e4, 1e4], terms up to 2e4 apart: only a max-shifted sum stays finite."""
    e_pos, e_neg = energies(41, m, dtype, device, scale=1e4, seed=100 + m, uniform=True)
    check_against_reference(e_pos, e_neg, w, dtype)
    v = edfast.contrastive_logsumexp(e_pos, e_neg, w)
    assert torch.isfinite(v).all()


@pytest.mark.parametrize("dtype", FLOAT_TYPES)
@pytest.mark.parametrize("m", [1, 16, 17, 33])
@pytest.mark.parametrize("w", [0.0, 0.5])
def test_rows_with_non_finite_terms_beside_finite_rows(device, dtype, m, w):
    """One call whose finite rows take the vector path and whose rows with a NaN, a +inf term
    (e_neg = -inf) or only -inf terms (e_neg = +inf) take the scalar core; rows with some -inf
    terms stay on the vector path. Values and gradients of every row that has a finite value
    follow the reference."""
    inf, nan = float("inf"), float("nan")
    e_pos, e_neg = energies(41, m, dtype, device, scale=3.0, seed=7 * m)
    e_neg[2, m - 1] = nan        # v NaN
    e_neg[5, 0] = -inf           # a +inf term: v = +inf
    e_neg[8, :] = inf            # only -inf terms: v = log(w/M), or -inf for w = 0
    e_neg[11, m // 2] = inf      # one -inf term among finite ones: finite, p = 0 there
    e_pos[14] = nan              # NaN energy of the data point
    e_pos[17] = -inf             # every term -inf
    v = edfast.contrastive_logsumexp(e_pos, e_neg, w)
    exact = reference.contrastive_logsumexp(e_pos.double(), e_neg.double(), w)
    assert torch.isnan(v[2]) and torch.isnan(v[14])
    assert v[5] == inf
    assert (v[8] == -inf) if w == 0 else torch.isfinite(v[8])
    assert_design_tolerance(v.double(), exact,
                            reference.contrastive_logsumexp(e_pos, e_neg, w).double(), dtype,
                            1e-12 if dtype == torch.float64 else 1e-5)
    # Gradients of the rows whose values are finite, and where p = 0 exactly.
    finite_rows = [i for i in range(41) if i not in (2, 5, 14)]
    check_against_reference(e_pos[finite_rows], e_neg[finite_rows], w, dtype)
    p = e_pos.detach().requires_grad_()
    n = e_neg.detach().requires_grad_()
    edfast.contrastive_logsumexp(p, n, w).sum().backward()
    if m > 1:  # with M = 1 that is row 8's case
        assert n.grad[11, m // 2] == 0 and torch.isfinite(n.grad[11]).all()


def test_same_result_for_any_thread_count():
    """Rows never straddle tasks and each row's sum has a fixed order."""
    e_pos, e_neg = energies(4096, 33, torch.float32, "cpu", scale=3.0, seed=1)  # several tasks
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(value_and_grads(edfast.contrastive_logsumexp, e_pos, e_neg, 0.5, torch.float32))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


_ISA_SCRIPT = """
import sys, torch, edfast
torch.manual_seed(0)
out = {"isa": edfast._C.cpu_simd()}
for dtype in (torch.float64, torch.float32, torch.bfloat16, torch.float16):
    for m in (1, 15, 16, 17, 33, 1000):
        e_pos = (3 * torch.randn(23, dtype=torch.float64)).to(dtype).requires_grad_()
        e_neg = (3 * torch.randn(23, m, dtype=torch.float64)).to(dtype)
        e_neg[3, 0] = float("nan"); e_neg[5, m - 1] = float("inf"); e_neg[7, m // 2] = -float("inf")
        e_neg.requires_grad_()
        v = edfast.contrastive_logsumexp(e_pos, e_neg, 0.5)
        out[(str(dtype), m)] = [v.detach(), *torch.autograd.grad(v.sum(), (e_pos, e_neg))]
torch.save(out, sys.argv[1])
"""


def _run_with_isa(isa, path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(edfast.__file__).parents[1]),
                                                      os.environ.get("PYTHONPATH", "")]))
    env.pop("EDFAST_CPU_SIMD", None)
    if isa is not None:
        env["EDFAST_CPU_SIMD"] = isa
    subprocess.run([sys.executable, "-c", _ISA_SCRIPT, str(path)], env=env, check=True)
    return torch.load(path)


def test_every_instruction_set_agrees(tmp_path):
    """EDFAST_CPU_SIMD caps the instruction set. AVX2 and AVX-512 give the same bits (the same
    fused operations on the same virtual lanes); the baseline, without FMA, is within the
    reference's tolerance."""
    best = _run_with_isa(None, tmp_path / "best.pt")
    avx2 = _run_with_isa("avx2", tmp_path / "avx2.pt")
    baseline = _run_with_isa("baseline", tmp_path / "baseline.pt")
    assert best["isa"] in ("avx512", "avx2", "baseline")
    assert avx2["isa"] == ("baseline" if best["isa"] == "baseline" else "avx2")
    assert baseline["isa"] == "baseline"
    for key in best:
        if key == "isa":
            continue
        for a, b, c in zip(best[key], avx2[key], baseline[key]):
            assert torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(torch.isnan(a), torch.isnan(c))
            a, b, c = (t.nan_to_num(0.0).double() for t in (a, b, c))
            assert torch.equal(a, b), key
            finite = torch.isfinite(a)
            assert torch.equal(a[~finite], c[~finite]), key
            # An ulp or two of the accumulator apart, which can move a rounding to the input
            # type by one of its ulps.
            rtol = {"torch.float64": 1e-13, "torch.float32": 1e-5, "torch.bfloat16": 2**-7,
                    "torch.float16": 2**-10}[key[0]]
            torch.testing.assert_close(c[finite], a[finite], rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("m", [1, 17, 32, 1000])
def test_low_precision_is_float32_rounded(device, dtype, m):
    """bfloat16 and float16 inputs are computed in float32 and rounded to nearest even: v is the
    float32 log-normaliser minus log M, rounded; with the same log-normaliser, each p_ij and so
    grad e_neg is the float32 kernel's, rounded. (bfloat16 rows are summed in another lane
    order than float32 ones, so their sums may differ in the last float32 bit.)"""
    e_pos, e_neg = energies(41, m, dtype, device, scale=3.0, seed=300 + m)
    e_neg[4, m - 1] = float("nan")  # the scalar core's rows are rounded alike
    v, log_normaliser = torch.ops.edfast.contrastive_logsumexp(e_pos, e_neg, 0.5)
    v32, log_normaliser32 = torch.ops.edfast.contrastive_logsumexp(e_pos.float(), e_neg.float(), 0.5)
    log_m = torch.tensor(math.log(m), dtype=torch.float32, device=device)
    assert torch.equal(v.nan_to_num(7.0), (log_normaliser - log_m).to(dtype).nan_to_num(7.0))
    exact_sums = dtype == torch.float16  # float16 goes through float32 copies and that kernel
    torch.testing.assert_close(log_normaliser, log_normaliser32, equal_nan=True,
                               rtol=0 if exact_sums else 2e-7, atol=0 if exact_sums else 1e-6)
    grad_v = torch.linspace(-1.0, 2.0, 41).to(device, dtype)
    grad_pos, grad_neg = torch.ops.edfast.contrastive_logsumexp_backward(grad_v, e_pos, e_neg, log_normaliser)
    grad_pos32, grad_neg32 = torch.ops.edfast.contrastive_logsumexp_backward(
        grad_v.float(), e_pos.float(), e_neg.float(), log_normaliser)
    assert torch.equal(grad_neg.nan_to_num(7.0), grad_neg32.to(dtype).nan_to_num(7.0))
    if exact_sums:
        assert torch.equal(grad_pos.nan_to_num(7.0), grad_pos32.to(dtype).nan_to_num(7.0))
    else:  # one rounding of a float32 sum that may differ in its last bit
        torch.testing.assert_close(grad_pos.float(), grad_pos32.to(dtype).float(), equal_nan=True,
                                   rtol=2**-8, atol=0)
