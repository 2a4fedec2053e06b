"""The fused discrete families (issue 10, DESIGN §5): torch.ops.edfast.{ising,potts,rbm}_ed.

The fused path draws the same negatives as ``edfast.perturb`` for the same seed, so its loss
and every gradient are compared with the generic path and with ``edfast.reference``; then
gradcheck and opcheck on the ops, dispatch, determinism, shards, memory, bad inputs and
torch.compile.
"""
import copy
import re

import pytest
import torch

import edfast
from edfast import _fused, reference
from edfast.energies import BernoulliRBM, Ising, Potts

from conftest import requires_cuda
from fused_helpers import assert_close_relative, backward_reduced, saved_numel

# ------------------------------------------------------------------ cases

D_BINARY = 40  # a 5 x 8 torus for the Ising lattice mask
LATTICE = (5, 8)
D_POTTS, K = 10, 4
HIDDEN = 6
B = 10
SEED = 1234
ROW_OFFSET = 7

# name -> (family, perturbation factory)
PERTURBATIONS = {
    "ising-bernoulli-sparse": ("ising", lambda: edfast.Bernoulli(0.02)),
    "ising-bernoulli-dense": ("ising", lambda: edfast.Bernoulli(0.1)),
    "ising-bitflip": ("ising", lambda: edfast.BitFlip()),
    "rbm-bernoulli": ("rbm", lambda: edfast.Bernoulli(0.1)),
    "rbm-bitflip": ("rbm", lambda: edfast.BitFlip()),
    "potts-categorical": ("potts", lambda: edfast.Categorical(K, 0.2)),
    "potts-cyclic": ("potts", lambda: edfast.Cyclic(K, 0.3)),
    "potts-ordinal": ("potts", lambda: edfast.Ordinal(K, 0.3)),
}
CASES = list(PERTURBATIONS)


def ring(d):
    """Symmetric 0/1 adjacency of the cycle on d sites."""
    a = torch.zeros(d, d)
    i = torch.arange(d)
    a[i, (i + 1) % d] = 1
    a[(i + 1) % d, i] = 1
    return a


def lattice(rows, cols):
    """Symmetric 0/1 adjacency of the periodic rows x cols lattice (sites row-major)."""
    a = torch.zeros(rows * cols, rows * cols)
    for r in range(rows):
        for c in range(cols):
            i = r * cols + c
            for j in (((r + 1) % rows) * cols + c, r * cols + (c + 1) % cols):
                a[i, j] = a[j, i] = 1
    return a


def randomise_(energy, seed, scale=0.3):
    """Random non-zero parameters (the modules start with zero couplings)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in energy.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * scale)
    return energy


def make_energy(family, *, mask=False, bias=True, dtype=torch.float64, device="cpu", seed=0,
                d=None, k=K, hidden=HIDDEN):
    if family == "ising":
        d = d or D_BINARY
        adjacency = (lattice(*LATTICE) if d == D_BINARY else ring(d)) if mask else None
        energy = Ising(d, bias=bias, mask=adjacency)
    elif family == "potts":
        d = d or D_POTTS
        energy = Potts(d, k, bias=bias, mask=ring(d) if mask else None)
    else:
        energy = BernoulliRBM(d or D_BINARY, hidden)
    return randomise_(energy.to(device, dtype), seed)


def make_data(family, b, d, *, dtype=torch.float64, device="cpu", seed=1, k=K):
    g = torch.Generator().manual_seed(seed)
    if family == "potts":
        return torch.randint(0, k, (b, d), generator=g).to(device)
    return torch.randint(0, 2, (b, d), generator=g).to(device, dtype)


def make_case(name, *, device="cpu", dtype=torch.float64, mask=False, bias=True, b=B, seed=0):
    """(energy, x, perturbation) for a case of PERTURBATIONS."""
    family, perturbation = PERTURBATIONS[name]
    energy = make_energy(family, mask=mask, bias=bias, dtype=dtype, device=device, seed=seed)
    d = energy.dim if family != "rbm" else energy.visible
    return energy, make_data(family, b, d, dtype=dtype, device=device, seed=seed + 1), perturbation()


def loss_and_grads(energy, loss_fn):
    """The loss and the raw parameters' gradients. A per-row loss is reduced with fixed
    non-uniform weights so that grad_v is not constant."""
    energy.zero_grad()
    loss = loss_fn()
    backward_reduced(loss)
    return loss.detach(), [p.grad.clone() for p in energy.parameters()]


def ed(energy, x, q, m, w=1.0, *, fused, reduction="mean", seed=SEED, row_offset=ROW_OFFSET):
    return edfast.energy_discrepancy(energy, x, q, m, w, seed=seed, row_offset=row_offset,
                                     reduction=reduction, fused=fused)


def contract_configs():
    """(case, mask, bias): masks and bias on/off for Ising and Potts; the RBM has neither."""
    for name in CASES:
        if name.startswith("rbm"):
            yield pytest.param(name, False, True, id=name)
        else:
            for mask in (False, True):
                for bias in (True, False):
                    yield pytest.param(name, mask, bias, id=f"{name}-{'mask' if mask else 'dense'}-"
                                                         f"{'bias' if bias else 'nobias'}")


# ------------------------------------------------------------------ 1, 11. contract vs the generic path

@pytest.mark.parametrize("case,mask,bias", list(contract_configs()))
@pytest.mark.parametrize("m", [1, 33])
@pytest.mark.parametrize("w", [1.0, 0.0])
def test_fused_equals_generic_float64(device, case, mask, bias, m, w):
    """fused=True equals fused=False in loss and every raw parameter's gradient, for every
    reduction, with row_offset != 0 (float64, ~1e-12 relative)."""
    energy, x, q = make_case(case, device=device, mask=mask, bias=bias)
    for reduction in ("mean", "sum", "none"):
        fused = loss_and_grads(energy, lambda: ed(energy, x, q, m, w, fused=True, reduction=reduction))
        generic = loss_and_grads(energy, lambda: ed(energy, x, q, m, w, fused=False, reduction=reduction))
        assert fused[0].shape == generic[0].shape and fused[0].dtype == torch.float64
        assert_close_relative(fused[0], generic[0], what=f"loss ({reduction})")
        names = [n for n, _ in energy.named_parameters()]
        for name, a, b in zip(names, fused[1], generic[1]):
            assert_close_relative(a, b, what=f"grad {name} ({reduction})")


@pytest.mark.parametrize("case", CASES)
def test_fused_float32_within_design_tolerance(device, case):
    """float32 (DESIGN §6): the fused error against float64 is at most twice the float32
    generic path's error plus a small floor, in the loss and every gradient."""
    energy32, x32, q = make_case(case, device=device, dtype=torch.float32, mask=True)
    energy64 = copy.deepcopy(energy32).double()  # the same (float32-rounded) parameters
    x64 = x32 if x32.dtype == torch.int64 else x32.double()
    m, reduction = 33, "none"
    exact = loss_and_grads(energy64, lambda: ed(energy64, x64, q, m, fused=False, reduction=reduction))
    fused = loss_and_grads(energy32, lambda: ed(energy32, x32, q, m, fused=True, reduction=reduction))
    generic = loss_and_grads(energy32, lambda: ed(energy32, x32, q, m, fused=False, reduction=reduction))
    assert fused[0].dtype == torch.float32
    names = ["loss"] + [f"grad {n}" for n, _ in energy32.named_parameters()]
    for what, e, f, g in zip(names, [exact[0], *exact[1]], [fused[0], *fused[1]], [generic[0], *generic[1]]):
        floor = 1e-6 * max(1.0, e.abs().max().item())
        fused_err = (f.double() - e).abs().max().item()
        generic_err = (g.double() - e).abs().max().item()
        assert fused_err <= 2 * generic_err + floor, f"{what}: fused {fused_err:.3e}, generic {generic_err:.3e}"


# ------------------------------------------------------------------ 2. against edfast.reference

@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("w", [1.0, 0.0])
def test_fused_equals_reference(device, case, w):
    """The fused loss and gradients equal reference.energy_discrepancy_from_samples on the
    negatives edfast.perturb draws for the same seed and row_offset."""
    energy, x, q = make_case(case, device=device, mask=True)
    m = 9
    _, negatives = edfast.perturb(x, q, m, seed=SEED, row_offset=ROW_OFFSET)
    for reduction in ("mean", "none"):
        got = loss_and_grads(energy, lambda: ed(energy, x, q, m, w, fused=True, reduction=reduction))
        expected = loss_and_grads(energy, lambda: reference.energy_discrepancy_from_samples(
            energy, x, negatives, w, reduction=reduction))
        assert_close_relative(got[0], expected[0], what=f"loss ({reduction})")
        for a, b in zip(got[1], expected[1]):
            assert_close_relative(a, b, what=f"grad ({reduction})")


def test_potts_op_counts_diagonal_blocks_as_documented():
    """potts_ed's schema: U = -(1/2 sum_{i,j} J[i,x_i,j,x_j] + sum_i b[i,x_i]) over all (i, j),
    J the symmetrised coupling. With a raw coupling (non-symmetric, non-zero i == j blocks) the
    op equals that formula evaluated on edfast.perturb's negatives."""
    d, k, m, w = 5, 3, 6, 0.5
    g = torch.Generator().manual_seed(3)
    coupling = torch.randn(d, k, d, k, generator=g, dtype=torch.float64) * 0.3
    bias = torch.randn(d, k, generator=g, dtype=torch.float64) * 0.3
    x = torch.randint(0, k, (4, d), generator=g)
    q = edfast.Cyclic(k, 0.4)
    symmetric = 0.5 * (coupling + coupling.permute(2, 3, 0, 1))

    def energy(t):
        onehot = torch.nn.functional.one_hot(t, k).double()
        return -(0.5 * torch.einsum("bia,iajc,bjc->b", onehot, symmetric, onehot) + (onehot * bias).sum((1, 2)))

    _, negatives = edfast.perturb(x, q, m, seed=SEED, row_offset=3)
    expected = reference.energy_discrepancy_from_samples(energy, x, negatives, w, reduction="none")
    v, _, _ = torch.ops.edfast.potts_ed(x, coupling, bias, q.op_args("cpu")[2], m, w, SEED, 3)
    assert_close_relative(v, expected, what="potts_ed with diagonal blocks")


def test_ising_op_symmetrises_coupling():
    """ising_ed uses (J + J^T) / 2: a raw and its symmetrised coupling give the same v."""
    g = torch.Generator().manual_seed(4)
    coupling = torch.randn(6, 6, generator=g, dtype=torch.float64)
    coupling.fill_diagonal_(0)
    x = torch.randint(0, 2, (5, 6), generator=g).double()
    args = (1, 0.2, 5, 1.0, SEED, 0)
    raw, _, _ = torch.ops.edfast.ising_ed(x, coupling, None, *args)
    sym, _, _ = torch.ops.edfast.ising_ed(x, 0.5 * (coupling + coupling.T), None, *args)
    assert_close_relative(raw, sym)


# ------------------------------------------------------------------ 3. gradcheck on the ops

GB, GD, GM, GK, GH = 3, 5, 4, 3, 4


def _gradcheck_inputs(seed=5):
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: (torch.randn(*shape, generator=g, dtype=torch.float64) * 0.5).requires_grad_()
    binary = torch.randint(0, 2, (GB, GD), generator=g).double()
    categorical = torch.randint(0, GK, (GB, GD), generator=g)
    return rand, binary, categorical


@pytest.mark.parametrize("kind,param", [(1, 0.3), (2, 0.0)], ids=["bernoulli", "bitflip"])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("w", [1.0, 0.0])
def test_gradcheck_ising_ed(device, kind, param, with_bias, w):
    rand, x, _ = _gradcheck_inputs()
    coupling = rand(GD, GD).to(device).detach().requires_grad_()  # not symmetric: the op symmetrises
    bias = rand(GD).to(device).detach().requires_grad_() if with_bias else None
    x = x.to(device)
    fn = lambda c, b=None: torch.ops.edfast.ising_ed(x, c, b, kind, param, GM, w, SEED, 2)[0]
    assert torch.autograd.gradcheck(fn, (coupling, bias) if with_bias else (coupling,))


@pytest.mark.parametrize("q", [edfast.Categorical(GK, 0.3), edfast.Cyclic(GK, 0.4), edfast.Ordinal(GK, 0.4)],
                         ids=["categorical", "cyclic", "ordinal"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_gradcheck_potts_ed(device, q, with_bias):
    rand, _, x = _gradcheck_inputs()
    coupling = rand(GD, GK, GD, GK).to(device).detach().requires_grad_()
    bias = rand(GD, GK).to(device).detach().requires_grad_() if with_bias else None
    x, cdf = x.to(device), q.op_args(device)[2]
    fn = lambda c, b=None: torch.ops.edfast.potts_ed(x, c, b, cdf, GM, 0.7, SEED, 2)[0]
    assert torch.autograd.gradcheck(fn, (coupling, bias) if with_bias else (coupling,))


@pytest.mark.parametrize("kind,param", [(1, 0.3), (2, 0.0)], ids=["bernoulli", "bitflip"])
def test_gradcheck_rbm_ed(device, kind, param):
    rand, x, _ = _gradcheck_inputs()
    weight, visible_bias, hidden_bias = (rand(GH, GD).to(device).detach().requires_grad_(),
                                         rand(GD).to(device).detach().requires_grad_(),
                                         rand(GH).to(device).detach().requires_grad_())
    x = x.to(device)
    fn = lambda wt, b, c: torch.ops.edfast.rbm_ed(x, wt, b, c, kind, param, GM, 0.7, SEED, 2)[0]
    assert torch.autograd.gradcheck(fn, (weight, visible_bias, hidden_bias))


# ------------------------------------------------------------------ 4. opcheck

def _op_inputs(op, device, dtype=torch.float64, with_bias=True, requires_grad=False):
    """Small valid positional inputs of a forward fused op."""
    g = torch.Generator().manual_seed(6)
    rand = lambda *shape: (torch.randn(*shape, generator=g, dtype=torch.float64) * 0.5).to(device, dtype) \
        .requires_grad_(requires_grad)
    if op == "ising_ed":
        x = torch.randint(0, 2, (GB, GD), generator=g).to(device, dtype)
        return (x, rand(GD, GD), rand(GD) if with_bias else None, 1, 0.2, GM, 1.0, SEED, 3)
    if op == "potts_ed":
        x = torch.randint(0, GK, (GB, GD), generator=g).to(device)
        cdf = edfast.Cyclic(GK, 0.3).op_args(device)[2]
        return (x, rand(GD, GK, GD, GK), rand(GD, GK) if with_bias else None, cdf, GM, 0.5, SEED, 3)
    x = torch.randint(0, 2, (GB, GD), generator=g).to(device, dtype)
    return (x, rand(GH, GD), rand(GD), rand(GH), 2, 0.0, GM, 0.5, SEED, 3)


def _backward_inputs(op, forward_inputs):
    """Inputs of ``op``_backward: grad_v, the forward's inputs, its log_normaliser and energies."""
    inputs = [t.detach() if isinstance(t, torch.Tensor) else t for t in forward_inputs]
    v, log_normaliser, energies = getattr(torch.ops.edfast, op)(*inputs)
    grad_v = torch.linspace(-1, 2, v.shape[0], dtype=v.dtype, device=v.device)
    tensors = {"ising_ed": 3, "potts_ed": 4, "rbm_ed": 4}[op]  # x and the parameter tensors
    return (grad_v, *inputs[:tensors], log_normaliser, energies, *inputs[tensors:])


OPCHECK_CASES = [("ising_ed", True), ("ising_ed", False), ("potts_ed", True), ("potts_ed", False), ("rbm_ed", True)]


@pytest.mark.parametrize("op,with_bias", OPCHECK_CASES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_opcheck(device, op, with_bias, dtype):
    inputs = _op_inputs(op, device, dtype, with_bias)
    torch.library.opcheck(getattr(torch.ops.edfast, op), inputs)
    torch.library.opcheck(getattr(torch.ops.edfast, op), _op_inputs(op, device, dtype, with_bias, requires_grad=True))
    torch.library.opcheck(getattr(torch.ops.edfast, f"{op}_backward"), _backward_inputs(op, inputs))


# ------------------------------------------------------------------ 5. dispatch

class SubIsing(Ising):
    """A subclass with no override: still takes the generic path."""


def _dispatched(monkeypatch, energy, x, q, fused="auto"):
    """Runs energy_discrepancy and says which path it took: ("fused", family) when a fused op
    ran, ("generic", None) when the energy's forward ran instead."""
    fused_calls = []
    for family, op in list(_fused._OPS.items()):
        def spy(*args, _op=op, _family=family):
            fused_calls.append(_family)
            return _op(*args)
        monkeypatch.setitem(_fused._OPS, family, spy)
    forward_calls = []
    handle = energy.register_forward_pre_hook(lambda *_: forward_calls.append(1))
    try:
        loss = edfast.energy_discrepancy(energy, x, q, 3, seed=0, fused=fused)
        loss.backward()
    finally:
        handle.remove()
    assert bool(fused_calls) != bool(forward_calls), (fused_calls, forward_calls)
    return ("fused", fused_calls[0]) if fused_calls else ("generic", None)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_auto_dispatches_families_to_fused(monkeypatch, case, dtype):
    energy, x, q = make_case(case, dtype=dtype, b=4)
    assert _dispatched(monkeypatch, energy, x, q) == ("fused", type(energy))
    assert _dispatched(monkeypatch, energy, x, q, fused=True) == ("fused", type(energy))
    assert _dispatched(monkeypatch, energy, x, q, fused=False) == ("generic", None)


def test_subclass_takes_generic_path(monkeypatch):
    energy = randomise_(SubIsing(8).double(), 0)
    x, q = make_data("ising", 4, 8), edfast.Bernoulli(0.1)
    assert _dispatched(monkeypatch, energy, x, q) == ("generic", None)
    with pytest.raises(ValueError, match="fused=True: edfast has no fused kernel for SubIsing"):
        edfast.energy_discrepancy(energy, x, q, 3, seed=0, fused=True)


def _unsupported_cases():
    ising16 = randomise_(Ising(8), 0).half()
    rbm16 = randomise_(BernoulliRBM(8, 3), 0).half()
    x16 = make_data("ising", 4, 8).half()
    ising = randomise_(Ising(8).double(), 0)
    potts = randomise_(Potts(6, K).double(), 0)
    x_potts = make_data("potts", 4, 6, k=K - 1)  # valid for both the energy and the perturbation
    return [
        pytest.param(ising16, x16, edfast.Bernoulli(0.1), "float32 or float64 parameters, got torch.float16",
                     id="ising-float16"),
        pytest.param(rbm16, x16, edfast.BitFlip(), "float32 or float64 parameters, got torch.float16",
                     id="rbm-float16"),
        pytest.param(ising, make_data("ising", 4, 8), edfast.Gaussian(0.5),
                     "the fused Ising kernel takes Bernoulli, BitFlip, not Gaussian", id="ising-gaussian"),
        pytest.param(potts, x_potts, edfast.Cyclic(K - 1, 0.3),
                     f"the perturbation has {K - 1} classes but the Potts energy {K}", id="potts-classes"),
        pytest.param(potts, x_potts.clamp(max=1), edfast.Bernoulli(0.1),  # 0/1 data: valid for both
                     "the fused Potts kernel takes Categorical, Cyclic, Ordinal, not Bernoulli", id="potts-bernoulli"),
    ]


@pytest.mark.parametrize("energy,x,q,why", _unsupported_cases())
def test_unsupported_goes_generic_and_fused_true_says_why(monkeypatch, energy, x, q, why):
    assert _dispatched(monkeypatch, energy, x, q) == ("generic", None)
    with pytest.raises(ValueError, match="^fused=True: .*" + re.escape(why)):
        edfast.energy_discrepancy(energy, x, q, 3, seed=0, fused=True)


# ------------------------------------------------------------------ 6. determinism

# D = 192 and M = 8: the CPU kernels' grain (csrc/cpu/grain.h, 65536 elements per task) splits
# both the forward's rows and the backward's 56-row chunks over threads.
DET_B, DET_D, DET_M = 200, 192, 8
DETERMINISM = {
    "ising": lambda: (make_energy("ising", d=DET_D, seed=2), make_data("ising", DET_B, DET_D), edfast.Bernoulli(0.1)),
    "potts": lambda: (make_energy("potts", d=DET_D, k=3, seed=2), make_data("potts", DET_B, DET_D, k=3),
                      edfast.Categorical(3, 0.1)),
    "rbm": lambda: (make_energy("rbm", d=DET_D, hidden=16, seed=2), make_data("rbm", DET_B, DET_D), edfast.BitFlip()),
}


@pytest.mark.parametrize("family", list(DETERMINISM))
def test_bitwise_deterministic_across_runs_and_threads(family):
    energy, x, q = DETERMINISM[family]()
    run = lambda: loss_and_grads(energy, lambda: ed(energy, x, q, DET_M, fused=True, reduction="none"))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        first, second = run(), run()
        torch.set_num_threads(1)
        single = run()
    finally:
        torch.set_num_threads(threads)
    for other in (second, single):
        assert torch.equal(first[0], other[0])
        for a, b in zip(first[1], other[1]):
            assert torch.equal(a, b)


# ------------------------------------------------------------------ 7. shards

@pytest.mark.parametrize("case", ["ising-bernoulli-dense", "potts-ordinal", "rbm-bernoulli"])
def test_shards_match_whole_batch(device, case):
    """Two halves with row_offset 0 and B/2 give the whole batch's per-row losses, and their
    summed gradients (reduction "sum") the whole batch's."""
    energy, x, q = make_case(case, device=device, mask=True, b=12)
    half = x.shape[0] // 2
    whole = loss_and_grads(energy, lambda: ed(energy, x, q, 5, fused=True, reduction="sum", row_offset=0))
    per_row = ed(energy, x, q, 5, fused=True, reduction="none", row_offset=0).detach()
    shards = [loss_and_grads(energy, lambda: ed(energy, x[i * half:(i + 1) * half], q, 5, fused=True,
                                                reduction="none", row_offset=i * half)) for i in range(2)]
    assert_close_relative(torch.cat([shards[0][0], shards[1][0]]), per_row, rtol=1e-13, what="per-row loss")
    sharded = [loss_and_grads(energy, lambda: ed(energy, x[i * half:(i + 1) * half], q, 5, fused=True,
                                                 reduction="sum", row_offset=i * half)) for i in range(2)]
    assert_close_relative(sharded[0][0] + sharded[1][0], whole[0], rtol=1e-13, what="summed loss")
    for a, b, c in zip(sharded[0][1], sharded[1][1], whole[1]):
        assert_close_relative(a + b, c, rtol=1e-12, what="summed gradient")


# ------------------------------------------------------------------ 8. memory

def _saved_numel(energy, x, q, m, fused):
    return saved_numel(lambda: ed(energy, x, q, m, fused=fused))


@pytest.mark.parametrize("case", ["ising-bernoulli-dense", "potts-categorical", "rbm-bitflip"])
def test_fused_saves_nothing_of_size_m_times_d(case):
    """The fused ops save the items' energies [B, M + 1] and nothing else that grows with M: no
    negatives, no [B, M, D] changes."""
    energy, x, q = make_case(case, mask=True)
    b = x.shape[0]
    growth = _saved_numel(energy, x, q, 128, fused=True) - _saved_numel(energy, x, q, 8, fused=True)
    assert growth == b * (128 - 8)
    # the hook does see the generic path's M-sized tensors
    assert _saved_numel(energy, x, q, 128, fused=False) > _saved_numel(energy, x, q, 8, fused=False)


# ------------------------------------------------------------------ 9. bad input at the op level

def _ising_args(**changes):
    args = dict(x=torch.randint(0, 2, (3, 5)).double(), coupling=torch.randn(5, 5, dtype=torch.float64),
                bias=torch.randn(5, dtype=torch.float64), kind=1, param=0.2, m=4, w=1.0, seed=0, row_offset=0)
    args.update(changes)
    return list(args.values())


def _potts_args(**changes):
    args = dict(x=torch.randint(0, 3, (3, 5)), coupling=torch.randn(5, 3, 5, 3, dtype=torch.float64),
                bias=torch.randn(5, 3, dtype=torch.float64), cdf=edfast.Cyclic(3, 0.3).op_args("cpu")[2], m=4,
                w=1.0, seed=0, row_offset=0)
    args.update(changes)
    return list(args.values())


def _rbm_args(**changes):
    args = dict(x=torch.randint(0, 2, (3, 5)).double(), weight=torch.randn(4, 5, dtype=torch.float64),
                visible_bias=torch.randn(5, dtype=torch.float64), hidden_bias=torch.randn(4, dtype=torch.float64),
                kind=2, param=0.0, m=4, w=1.0, seed=0, row_offset=0)
    args.update(changes)
    return list(args.values())


BAD_INPUTS = [
    ("ising_ed", _ising_args(x=torch.randint(0, 2, (3, 5)).float()), TypeError, r"x must be (Double|double)"),
    ("ising_ed", _ising_args(x=torch.randint(0, 2, (3, 5))), TypeError, r"x must be (Double|double)"),
    ("ising_ed", _ising_args(x=torch.zeros(5, dtype=torch.float64)), ValueError, r"x must have shape \[B, D\]"),
    ("ising_ed", _ising_args(x=torch.full((3, 5), 2.0, dtype=torch.float64)), ValueError, "x must hold only 0 and 1"),
    ("ising_ed", _ising_args(coupling=torch.randn(5, 4, dtype=torch.float64)), ValueError,
     "coupling must have shape"),
    ("ising_ed", _ising_args(bias=torch.randn(4, dtype=torch.float64)), ValueError, "bias must have shape"),
    ("ising_ed", _ising_args(bias=torch.randn(5)), TypeError, "bias must be"),
    ("ising_ed", _ising_args(m=0), ValueError, r"m \(negatives per data point\) must be >= 1"),
    ("ising_ed", _ising_args(w=-0.5), ValueError, "w must be finite and >= 0"),
    ("ising_ed", _ising_args(w=float("nan")), ValueError, "w must be finite and >= 0"),
    ("ising_ed", _ising_args(kind=3), ValueError, "must be Bernoulli or BitFlip"),
    ("ising_ed", _ising_args(coupling=torch.randn(5, 5, dtype=torch.float16), bias=None,
                             x=torch.zeros(3, 5, dtype=torch.float16)), TypeError, "float32 or float64"),
    ("potts_ed", _potts_args(x=torch.full((3, 5), 3)), ValueError, r"categorical x must lie in \[0, 2\]"),
    ("potts_ed", _potts_args(x=torch.full((3, 5), -1)), ValueError, r"categorical x must lie in \[0, 2\]"),
    ("potts_ed", _potts_args(x=torch.zeros(3, 5, dtype=torch.float64)), TypeError, "need int64 x"),
    ("potts_ed", _potts_args(coupling=torch.randn(5, 3, 5, 2, dtype=torch.float64)), ValueError,
     "coupling must have shape"),
    ("potts_ed", _potts_args(bias=torch.randn(5, 2, dtype=torch.float64)), ValueError, "bias must have shape"),
    ("potts_ed", _potts_args(m=0), ValueError, r"m \(negatives per data point\) must be >= 1"),
    ("potts_ed", _potts_args(w=-1.0), ValueError, "w must be finite and >= 0"),
    ("rbm_ed", _rbm_args(weight=torch.randn(4, 6, dtype=torch.float64)), ValueError, "weight must have shape"),
    ("rbm_ed", _rbm_args(visible_bias=torch.randn(4, dtype=torch.float64)), ValueError,
     "visible_bias must have shape"),
    ("rbm_ed", _rbm_args(hidden_bias=torch.randn(5, dtype=torch.float64)), ValueError,
     "hidden_bias must have shape"),
    ("rbm_ed", _rbm_args(x=torch.full((3, 5), 0.5, dtype=torch.float64)), ValueError, "x must hold only 0 and 1"),
    ("rbm_ed", _rbm_args(w=float("nan")), ValueError, "w must be finite and >= 0"),
]


@pytest.mark.parametrize("op,args,error,match", BAD_INPUTS,
                         ids=[f"{i}-{op}-{re.sub(r'[^A-Za-z_]+', '-', match)[:30]}" for i, (op, _, _, match) in
                              enumerate(BAD_INPUTS)])
def test_op_bad_inputs(op, args, error, match):
    with pytest.raises(error, match=match):
        getattr(torch.ops.edfast, op)(*args)


def test_energy_discrepancy_bad_inputs_on_fused_path():
    energy = randomise_(Ising(5).double(), 0)
    with pytest.raises(ValueError, match="x must hold only 0 and 1"):
        edfast.energy_discrepancy(energy, torch.full((3, 5), 2.0, dtype=torch.float64), edfast.Bernoulli(0.1),
                                  4, seed=0, fused=True)
    with pytest.raises(ValueError, match="w must"):
        edfast.energy_discrepancy(energy, torch.zeros(3, 5, dtype=torch.float64), edfast.Bernoulli(0.1), 4,
                                  w=-1.0, seed=0, fused=True)


# ------------------------------------------------------------------ 10. torch.compile

@pytest.mark.parametrize("case", ["ising-bernoulli-dense", "potts-cyclic"])
def test_compile_aot_eager_matches_eager(case):
    energy, x, q = make_case(case, b=6)
    step = lambda data, seed: ed(energy, data, q, 4, fused=True, seed=seed)
    torch._dynamo.reset()
    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    for seed in (11, 12):
        got = loss_and_grads(energy, lambda: compiled(x, seed))
        expected = loss_and_grads(energy, lambda: step(x, seed))
        assert_close_relative(got[0], expected[0], what="compiled loss")
        for a, b in zip(got[1], expected[1]):
            assert_close_relative(a, b, what="compiled gradient")


# ------------------------------------------------------------------ 11. CUDA against CPU

@requires_cuda
@pytest.mark.parametrize("case", CASES)
def test_cuda_matches_cpu(case):
    """The CUDA kernels draw the same negatives and give the CPU's loss and gradients."""
    energy, x, q = make_case(case, mask=True)
    cpu = loss_and_grads(energy, lambda: ed(energy, x, q, 17, fused=True, reduction="none"))
    energy_cuda = copy.deepcopy(energy).cuda()
    gpu = loss_and_grads(energy_cuda, lambda: ed(energy_cuda, x.cuda(), q, 17, fused=True, reduction="none"))
    assert_close_relative(gpu[0].cpu(), cpu[0], what="loss")
    for a, b in zip(gpu[1], cpu[1]):
        assert_close_relative(a.cpu(), b, what="gradient")
