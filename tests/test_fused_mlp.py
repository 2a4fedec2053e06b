"""The fused MLP op (issue 11, DESIGN §5): torch.ops.edfast.mlp_ed.

The op draws the same negatives as ``edfast.perturb`` for the same seed, so its loss and every
gradient (parameters and x) are compared with the generic path and with ``edfast.reference``;
then gradcheck and opcheck, dispatch, determinism, shards, memory, bad input and
torch.compile.
"""
import copy
import re

import pytest
import torch

import edfast
from edfast import _fused, _fused_mlp, reference
from edfast.energies import MLPEnergy
from edfast.energies.mlp import ACTIVATIONS

from conftest import requires_cuda
from fused_helpers import assert_close_relative, backward_reduced, saved_numel

SEED = 4321
ROW_OFFSET = 5
B = 9

#: name -> (in_features, hidden): depth 0 and 8, widths that are no multiple of a tile or a
#: vector (3, 17, 5), and the benchmark's shape, small.
NETWORKS = {
    "depth0": (3, ()),
    "3-17-5": (3, (17, 5)),
    "depth8": (6, (9, 7, 12, 5, 8, 11, 6, 10)),
    "wide": (13, (40, 33)),
}
PERTURBATIONS = {
    "gaussian": lambda: edfast.Gaussian(0.7),
    "bernoulli-dense": lambda: edfast.Bernoulli(0.3),
    "bernoulli-sparse": lambda: edfast.Bernoulli(0.02),
    "bitflip": lambda: edfast.BitFlip(),
}


def make_energy(network="3-17-5", activation="softplus", *, dtype=torch.float64, device="cpu", seed=0):
    d, hidden = NETWORKS[network] if isinstance(network, str) else network
    torch.manual_seed(seed)
    energy = MLPEnergy(d, hidden=hidden, activation=activation)
    with torch.no_grad():  # larger than the default init, so that every activation bends
        for p in energy.parameters():
            p.mul_(2.0)
    return energy.to(device, dtype)


def make_data(d, perturbation, *, b=B, dtype=torch.float64, device="cpu", seed=1, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    if isinstance(perturbation, edfast.Gaussian):
        x = torch.randn(b, d, generator=g, dtype=torch.float64)
    else:
        x = torch.randint(0, 2, (b, d), generator=g).double()
    return x.to(device, dtype).requires_grad_(requires_grad)


def ed(energy, x, q, m, w=1.0, *, fused, reduction="mean", seed=SEED, row_offset=ROW_OFFSET):
    return edfast.energy_discrepancy(energy, x, q, m, w, seed=seed, row_offset=row_offset, reduction=reduction,
                                     fused=fused)


def loss_and_grads(energy, x, loss_fn):
    """The loss, the parameters' gradients and x's (when x requires grad). A per-row loss is
    reduced with fixed non-uniform weights, so grad_v is not constant."""
    energy.zero_grad()
    if x.requires_grad:
        x.grad = None
    loss = loss_fn()
    backward_reduced(loss)
    grads = [p.grad.clone() for p in energy.parameters()]
    if x.requires_grad:
        grads.append(x.grad.clone())
    return loss.detach(), grads


def grad_names(energy, x):
    return [f"grad {n}" for n, _ in energy.named_parameters()] + (["grad x"] if x.requires_grad else [])


def assert_same_training(energy, x, fused, generic, rtol=1e-12):
    assert fused[0].shape == generic[0].shape and fused[0].dtype == generic[0].dtype
    assert_close_relative(fused[0], generic[0], rtol, what="loss")
    for name, a, b in zip(grad_names(energy, x), fused[1], generic[1]):
        assert_close_relative(a, b, rtol, what=name)


# ------------------------------------------------------------------ contract vs the generic path

@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("network", list(NETWORKS))
@pytest.mark.parametrize("perturbation", list(PERTURBATIONS))
def test_fused_equals_generic_float64(device, activation, network, perturbation):
    """Loss and every gradient (parameters, and x: through the negatives under Gaussian noise,
    the data point's own under binary noise) equal the generic path's, for every reduction."""
    q = PERTURBATIONS[perturbation]()
    energy = make_energy(network, activation, device=device)
    x = make_data(energy.in_features, q, device=device, requires_grad=True)
    for reduction in ("mean", "sum", "none"):
        fused = loss_and_grads(energy, x, lambda: ed(energy, x, q, 6, fused=True, reduction=reduction))
        generic = loss_and_grads(energy, x, lambda: ed(energy, x, q, 6, fused=False, reduction=reduction))
        assert_same_training(energy, x, fused, generic)


@pytest.mark.parametrize("m", [1, 33])
@pytest.mark.parametrize("w", [1.0, 0.0, 0.5])
@pytest.mark.parametrize("x_grad", [True, False])
def test_fused_equals_generic_m_w(device, m, w, x_grad):
    q = edfast.Gaussian(0.5)
    energy = make_energy("3-17-5", "silu", device=device)
    x = make_data(3, q, device=device, requires_grad=x_grad)
    for reduction in ("mean", "none"):
        fused = loss_and_grads(energy, x, lambda: ed(energy, x, q, m, w, fused=True, reduction=reduction))
        generic = loss_and_grads(energy, x, lambda: ed(energy, x, q, m, w, fused=False, reduction=reduction))
        assert_same_training(energy, x, fused, generic)


@pytest.mark.parametrize("perturbation", ["gaussian", "bernoulli-dense"])
def test_rows_longer_than_a_tile(perturbation):
    """M + 1 > 1024 items: a row's items run in chunks, the row's logsumexp spans them and the
    forward differentiates in a second pass."""
    q = PERTURBATIONS[perturbation]()
    energy = make_energy("3-17-5", "tanh")
    x = make_data(3, q, b=3, requires_grad=True)
    for reduction in ("mean", "none"):
        fused = loss_and_grads(energy, x, lambda: ed(energy, x, q, 1500, fused=True, reduction=reduction))
        generic = loss_and_grads(energy, x, lambda: ed(energy, x, q, 1500, fused=False, reduction=reduction))
        assert_same_training(energy, x, fused, generic)


def test_benchmark_shapes_float64():
    """The issue's networks at tile-sized batches: 2-128x4-1 Softplus under Gaussian noise and
    32-256x3-1 SiLU under Bernoulli (several tiles, several gradient partitions)."""
    for network, activation, q in [((2, (128,) * 4), "softplus", edfast.Gaussian(1.0)),
                                   ((32, (256,) * 3), "silu", edfast.Bernoulli(0.1))]:
        energy = make_energy(network, activation)
        x = make_data(network[0], q, b=70)
        fused = loss_and_grads(energy, x, lambda: ed(energy, x, q, 32, fused=True))
        generic = loss_and_grads(energy, x, lambda: ed(energy, x, q, 32, fused=False))
        assert_same_training(energy, x, fused, generic)


def assert_float32_within_design_tolerance(energy32, x32, q, m):
    """DESIGN §6: the fused float32 error against float64 is at most twice the float32
    generic path's error plus a small floor, in the loss and every gradient."""
    energy64 = copy.deepcopy(energy32).double()
    x64 = x32.detach().double().requires_grad_(x32.requires_grad)
    exact = loss_and_grads(energy64, x64, lambda: ed(energy64, x64, q, m, fused=False, reduction="none"))
    fused = loss_and_grads(energy32, x32, lambda: ed(energy32, x32, q, m, fused=True, reduction="none"))
    generic = loss_and_grads(energy32, x32, lambda: ed(energy32, x32, q, m, fused=False, reduction="none"))
    assert fused[0].dtype == torch.float32
    names = ["loss"] + grad_names(energy32, x32)
    for what, e, f, g in zip(names, [exact[0], *exact[1]], [fused[0], *fused[1]], [generic[0], *generic[1]]):
        floor = 1e-6 * max(1.0, e.abs().max().item())
        fused_err = (f.double() - e).abs().max().item()
        generic_err = (g.double() - e).abs().max().item()
        assert fused_err <= 2 * generic_err + floor, f"{what}: fused {fused_err:.3e}, generic {generic_err:.3e}"


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("perturbation", ["gaussian", "bernoulli-dense"])
def test_fused_float32_within_design_tolerance(device, activation, perturbation):
    q = PERTURBATIONS[perturbation]()
    energy32 = make_energy((8, (64, 48)), activation, dtype=torch.float32, device=device)
    x32 = make_data(8, q, b=40, dtype=torch.float32, device=device, requires_grad=True)
    assert_float32_within_design_tolerance(energy32, x32, q, 33)


# ------------------------------------------------------------------ against edfast.reference

@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("perturbation", ["gaussian", "bitflip"])
def test_op_equals_reference(device, activation, perturbation):
    """mlp_ed's v equals reference.energy_discrepancy_from_samples with reference.mlp_energy on
    edfast.perturb's negatives, and its row statistics are (U(x), L, P) of mlp_args.h."""
    q = PERTURBATIONS[perturbation]()
    energy = make_energy("3-17-5", activation, device=device)
    x = make_data(3, q, device=device)
    weights = [layer.weight.detach() for layer in energy.linears]
    biases = [layer.bias.detach() for layer in energy.linears]
    kind, param, _ = q.op_args(device)
    m, w = 7, 0.5
    v, stats, *_ = torch.ops.edfast.mlp_ed(x, weights, biases, activation, kind, param, m, w, SEED, ROW_OFFSET)
    _, negatives = edfast.perturb(x, q, m, seed=SEED, row_offset=ROW_OFFSET)
    u = lambda rows: reference.mlp_energy(rows, weights, biases, activation)
    expected = reference.energy_discrepancy_from_samples(u, x, negatives, w, reduction="none")
    assert_close_relative(v, expected, what="v")
    u_x, u_neg = u(x), u(negatives.reshape(-1, 3)).reshape(x.shape[0], m)
    normaliser = torch.logsumexp(torch.cat([u_x[:, None] - u_neg, torch.full_like(u_x, w).log()[:, None]], 1), 1)
    assert_close_relative(stats[:, 0], u_x, what="U(x)")
    assert_close_relative(stats[:, 1], normaliser, what="L")
    assert_close_relative(stats[:, 2], torch.exp(u_x[:, None] - u_neg - normaliser[:, None]).sum(1), what="P")


# ------------------------------------------------------------------ gradcheck and opcheck

def _op_inputs(device, *, kind=0, network="3-17-5", activation="softplus", requires_grad=False, dtype=torch.float64):
    q = {0: edfast.Gaussian(0.6), 1: edfast.Bernoulli(0.3), 2: edfast.BitFlip()}[kind]
    energy = make_energy(network, activation, device=device, dtype=dtype)
    x = make_data(energy.in_features, q, b=5, device=device, dtype=dtype, requires_grad=requires_grad and kind == 0)
    weights = [layer.weight.detach().clone().requires_grad_(requires_grad) for layer in energy.linears]
    biases = [layer.bias.detach().clone().requires_grad_(requires_grad) for layer in energy.linears]
    _, param, _ = q.op_args(device)
    return x, weights, biases, activation, kind, param, 4, 0.5, SEED, ROW_OFFSET


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("kind", [0, 1], ids=["gaussian", "bernoulli"])
@pytest.mark.parametrize("precompute", [False, True])
def test_gradcheck_mlp_ed(device, activation, kind, precompute):
    """gradcheck with respect to x (Gaussian), every weight and bias: of v itself (any upstream
    gradient: the regenerating backward) and of its mean (with precompute, the forward's
    gradients of sum_i v_i, scaled)."""
    x, weights, biases, *rest = _op_inputs(device, kind=kind, activation=activation, requires_grad=True)
    layers = len(weights)

    def v(x, *params, precompute=False):
        return torch.ops.edfast.mlp_ed(x, list(params[:layers]), list(params[layers:]), *rest, precompute,
                                       x.requires_grad)[0]

    if not precompute:
        assert torch.autograd.gradcheck(v, (x, *weights, *biases))
    assert torch.autograd.gradcheck(lambda *a: v(*a, precompute=precompute).mean(), (x, *weights, *biases))


def test_precompute_refuses_a_non_uniform_upstream_gradient():
    x, weights, biases, *rest = _op_inputs("cpu", requires_grad=True)
    v = torch.ops.edfast.mlp_ed(x, weights, biases, *rest, True, True)[0]
    with pytest.raises(RuntimeError, match="precompute_grads=True needs the same upstream gradient for every row"):
        (v * torch.arange(v.shape[0], dtype=v.dtype)).sum().backward()


OPCHECK_CASES = [(0, "softplus", "3-17-5"), (1, "silu", "depth0"), (2, "tanh", "depth8")]


@pytest.mark.parametrize("kind,activation,network", OPCHECK_CASES, ids=["gaussian", "bernoulli", "bitflip"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_opcheck(device, kind, activation, network, dtype):
    op = torch.ops.edfast.mlp_ed
    inputs = _op_inputs(device, kind=kind, activation=activation, network=network, dtype=dtype)
    torch.library.opcheck(op, inputs)
    with_grad = _op_inputs(device, kind=kind, activation=activation, network=network, dtype=dtype, requires_grad=True)
    torch.library.opcheck(op, with_grad)
    for grad_x in (False, True):  # the forward that also returns the gradients of sum_i v_i
        torch.library.opcheck(op, (*with_grad, True, grad_x))
    x, weights, biases, *rest = inputs
    _, stats, *_ = op(*inputs)
    grad_v = torch.linspace(-1, 2, x.shape[0], dtype=dtype, device=device)
    for grad_x in (False, True):
        torch.library.opcheck(torch.ops.edfast.mlp_ed_backward, (grad_v, x, weights, biases, stats, *rest, grad_x))


def test_precomputed_gradients_equal_backward_op():
    """The forward's gradients of sum_i v_i equal mlp_ed_backward with grad_v = 1."""
    x, weights, biases, *rest = _op_inputs("cpu", kind=0, network="depth8", activation="elu")
    v, stats, gw, gb, gx = torch.ops.edfast.mlp_ed(x, weights, biases, *rest, True, True)
    bw, bb, bx = torch.ops.edfast.mlp_ed_backward(torch.ones_like(v), x, weights, biases, stats, *rest, True)
    assert len(gw) == len(weights)
    for a, b in zip([*gw, *gb, gx], [*bw, *bb, bx]):
        assert_close_relative(a, b, what="precomputed gradient")


# ------------------------------------------------------------------ dispatch

class SubMLP(MLPEnergy):
    """A subclass with no override: still takes the generic path."""


def _path(energy, x, q, fused="auto"):
    kernel, why = _fused.fused_kernel(energy, x, q)
    if fused is True and kernel is None:
        with pytest.raises(ValueError, match=re.escape(why)):
            edfast.energy_discrepancy(energy, x, q, 3, seed=0, fused=True)
    return kernel


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("perturbation", list(PERTURBATIONS))
def test_auto_dispatches_mlp_to_fused(monkeypatch, dtype, perturbation):
    q = PERTURBATIONS[perturbation]()
    energy = make_energy("3-17-5", dtype=dtype)
    x = make_data(3, q, dtype=dtype)
    assert _fused.fused_kernel(energy, x, q) == (_fused_mlp.fused_mlp, "")
    calls = []
    monkeypatch.setitem(_fused._OPS, MLPEnergy, lambda *a: calls.append(1) or _fused_mlp.fused_mlp(*a))
    forward_calls = []
    handle = energy.register_forward_pre_hook(lambda *_: forward_calls.append(1))
    try:
        edfast.energy_discrepancy(energy, x, q, 3, seed=0).backward()
        assert calls and not forward_calls
        edfast.energy_discrepancy(energy, x, q, 3, seed=0, fused=False).backward()
        assert len(calls) == 1 and forward_calls
    finally:
        handle.remove()


def _out_of_range():
    gaussian = edfast.Gaussian(1.0)
    yield "wider than 256", make_energy((3, (257,))), make_data(3, gaussian), gaussian, "width up to 256"
    yield "9 hidden layers", make_energy((3, (4,) * 9)), make_data(3, gaussian), gaussian, "up to 8 hidden layers"
    yield "1025 inputs", make_energy((1025, (4,))), make_data(1025, gaussian, b=2), gaussian, "up to 1024 input"
    yield "float16", make_energy().half(), make_data(3, gaussian).half(), gaussian, "float32 or float64"
    yield "x of another dtype", make_energy(), make_data(3, gaussian).float(), gaussian, "dtype torch.float64"
    yield "categorical", make_energy(), torch.zeros(4, 3, dtype=torch.int64), edfast.Categorical(3, 0.1), \
        "takes Gaussian, Bernoulli or BitFlip"
    yield "subclass", SubMLP(3, (5,)).double(), make_data(3, gaussian), gaussian, "no fused kernel for SubMLP"
    no_bias = make_energy()
    no_bias.linears[1].bias = None
    yield "no bias", no_bias, make_data(3, gaussian), gaussian, "needs every layer's bias"


@pytest.mark.parametrize("name,energy,x,q,why", list(_out_of_range()), ids=[c[0] for c in _out_of_range()])
def test_out_of_range_goes_generic_and_fused_true_says_why(name, energy, x, q, why):
    kernel, reason = _fused.fused_kernel(energy, x, q)
    assert kernel is None and why in reason
    with pytest.raises(ValueError, match="fused=True: " + re.escape(reason)):
        edfast.energy_discrepancy(energy, x, q, 3, seed=0, fused=True)


def test_default_range_is_documented_in_the_kernel():
    """The Python range check and the op's own agree: the largest served network runs."""
    energy = make_energy((1024, (256,) * 8), "relu", dtype=torch.float32)
    q = edfast.Gaussian(1.0)
    x = make_data(1024, q, b=2, dtype=torch.float32)
    assert _fused.fused_kernel(energy, x, q)[0] is _fused_mlp.fused_mlp
    fused = loss_and_grads(energy, x, lambda: ed(energy, x, q, 2, fused=True))
    generic = loss_and_grads(energy, x, lambda: ed(energy, x, q, 2, fused=False))
    assert_close_relative(fused[0], generic[0], rtol=1e-4, what="float32 loss at the range's edge")


# ------------------------------------------------------------------ determinism, shards, memory

def test_bitwise_deterministic_across_runs():
    """The gradient partitions are fixed by the shapes and the thread count, so repeated runs
    give the same bits. Across thread counts the partitions differ (and the BLAS, MKL without
    its reproducibility mode, may pick another kernel outside a parallel region), so 1 and 2
    threads agree to float32 rounding."""
    q = edfast.Gaussian(1.0)
    energy = make_energy((4, (32, 32)), "softplus", dtype=torch.float32)
    x = make_data(4, q, b=300, dtype=torch.float32, requires_grad=True)
    threads = torch.get_num_threads()
    results = {}
    try:
        for count in (2, 1):
            torch.set_num_threads(count)
            for reduction in ("mean", "none"):
                runs = [loss_and_grads(energy, x, lambda: ed(energy, x, q, 16, fused=True, reduction=reduction))
                        for _ in range(2)]
                assert torch.equal(runs[0][0], runs[1][0])
                assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
                results[count, reduction] = runs[0]
    finally:
        torch.set_num_threads(threads)
    for reduction in ("mean", "none"):
        two, one = results[2, reduction], results[1, reduction]
        assert torch.equal(two[0], one[0])
        for name, a, b in zip(grad_names(energy, x), two[1], one[1]):
            assert_close_relative(a, b, rtol=1e-6, what=f"{name}, 1 against 2 threads")


@pytest.mark.parametrize("perturbation", ["gaussian", "bernoulli-dense"])
def test_shards_match_whole_batch(device, perturbation):
    q = PERTURBATIONS[perturbation]()
    energy = make_energy("3-17-5", "silu", device=device)
    x = make_data(3, q, b=12, device=device)
    whole = loss_and_grads(energy, x, lambda: ed(energy, x, q, 5, fused=True, reduction="sum", row_offset=0))
    halves = [loss_and_grads(energy, x, lambda: ed(energy, x[i * 6:(i + 1) * 6], q, 5, fused=True, reduction="sum",
                                                   row_offset=i * 6)) for i in range(2)]
    assert_close_relative(halves[0][0] + halves[1][0], whole[0], rtol=1e-13, what="summed loss")
    for a, b, c in zip(halves[0][1], halves[1][1], whole[1]):
        assert_close_relative(a + b, c, what="summed gradient")


def _saved_numel(energy, x, q, m, fused):
    return saved_numel(lambda: ed(energy, x, q, m, fused=fused))


def test_fused_saves_nothing_that_grows_with_m():
    q = edfast.Gaussian(1.0)
    energy = make_energy("3-17-5")
    x = make_data(3, q, requires_grad=True)
    assert _saved_numel(energy, x, q, 128, fused=True) == _saved_numel(energy, x, q, 8, fused=True)
    # the hook does see the generic path's M-sized tensors
    assert _saved_numel(energy, x, q, 128, fused=False) > _saved_numel(energy, x, q, 8, fused=False)


# ------------------------------------------------------------------ bad input at the op level

def _args(**changes):
    x, weights, biases, activation, kind, param, m, w, seed, row_offset = _op_inputs("cpu")
    args = dict(x=x, weights=weights, biases=biases, activation=activation, kind=kind, param=param, m=m, w=w,
                seed=seed, row_offset=row_offset)
    args.update(changes)
    return list(args.values())


def _weights(*shapes, dtype=torch.float64):
    return [torch.randn(*s, dtype=dtype) for s in shapes]


BAD_INPUTS = [
    (_args(activation="gelu"), ValueError, "activation must be one of softplus"),
    (_args(weights=[], biases=[]), ValueError, "weights must hold 1 to 9 layers"),
    (_args(weights=_weights(*[(2, 3)] + [(2, 2)] * 8 + [(1, 2)]), biases=_weights(*[(2,)] * 9 + [(1,)])),
     ValueError, "weights must hold 1 to 9 layers"),
    (_args(biases=_weights((17,), (5,))), ValueError, "one bias per layer"),
    (_args(weights=_weights((17, 4), (5, 17), (1, 5))), ValueError, r"weights\[0\] must have shape \[out, 3\]"),
    (_args(weights=_weights((17, 3), (5, 17), (2, 5)), biases=_weights((17,), (5,), (2,))), ValueError,
     "last layer must have one output"),
    (_args(weights=_weights((300, 3), (5, 300), (1, 5)), biases=_weights((300,), (5,), (1,))), ValueError,
     "take widths 1 to 256"),
    (_args(biases=_weights((17,), (6,), (1,))), ValueError, r"biases\[1\] must have shape \[5\]"),
    (_args(biases=[torch.randn(17), *_weights((5,), (1,))]), TypeError, r"biases\[0\] must be"),
    (_args(x=torch.randn(5, 3)), TypeError, "x must be"),
    (_args(x=torch.randn(5, 3, 1, dtype=torch.float64)), ValueError, r"x must have shape \[B, D\]"),
    (_args(kind=3), ValueError, "must be Gaussian, Bernoulli or BitFlip"),
    (_args(param=0.0), ValueError, "Gaussian scale must be finite and > 0"),
    (_args(kind=1, param=0.3), ValueError, "x must hold only 0 and 1"),
    (_args(kind=1, param=1.5, x=torch.ones(5, 3, dtype=torch.float64)), ValueError, "epsilon must lie in"),
    (_args(m=0), ValueError, r"m \(negatives per data point\) must be >= 1"),
    (_args(w=-1.0), ValueError, "w must be finite and >= 0"),
    (_args(seed=-1), ValueError, "seed must be >= 0"),
    (_args(x=torch.randn(5, 1025, dtype=torch.float64)), ValueError, "1 to 1024 features"),
]


@pytest.mark.parametrize("args,error,match", BAD_INPUTS,
                         ids=[f"{i}-{re.sub(r'[^A-Za-z_]+', '-', m)[:30]}" for i, (_, _, m) in enumerate(BAD_INPUTS)])
def test_op_bad_inputs(args, error, match):
    with pytest.raises(error, match=match):
        torch.ops.edfast.mlp_ed(*args)


def test_backward_op_bad_inputs():
    x, weights, biases, *rest = _op_inputs("cpu")
    _, stats, *_ = torch.ops.edfast.mlp_ed(x, weights, biases, *rest)
    grad_v = torch.ones(x.shape[0], dtype=x.dtype)
    with pytest.raises(ValueError, match=r"grad_v must have shape \[5\]"):
        torch.ops.edfast.mlp_ed_backward(grad_v[:3], x, weights, biases, stats, *rest, False)
    with pytest.raises(ValueError, match=r"row_stats must have shape \[5, 3\]"):
        torch.ops.edfast.mlp_ed_backward(grad_v, x, weights, biases, stats[:, :2], *rest, False)


# ------------------------------------------------------------------ torch.compile

def test_compile_aot_eager_matches_eager():
    q = edfast.Gaussian(1.0)
    energy = make_energy("3-17-5", "softplus")
    x = make_data(3, q, b=6)
    step = lambda data, seed: ed(energy, data, q, 4, fused=True, seed=seed)
    torch._dynamo.reset()
    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    for seed in (11, 12):
        got = loss_and_grads(energy, x, lambda: compiled(x, seed))
        expected = loss_and_grads(energy, x, lambda: step(x, seed))
        assert_same_training(energy, x, got, expected)


# ------------------------------------------------------------------ CUDA against CPU

@requires_cuda
@pytest.mark.parametrize("perturbation", list(PERTURBATIONS))
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_cuda_matches_cpu(perturbation, activation):
    q = PERTURBATIONS[perturbation]()
    energy = make_energy("depth8", activation)
    x = make_data(6, q, requires_grad=True)
    cpu = loss_and_grads(energy, x, lambda: ed(energy, x, q, 17, fused=True, reduction="none"))
    energy_cuda = copy.deepcopy(energy).cuda()
    x_cuda = x.detach().cuda().requires_grad_()
    gpu = loss_and_grads(energy_cuda, x_cuda, lambda: ed(energy_cuda, x_cuda, q, 17, fused=True, reduction="none"))
    assert_close_relative(gpu[0].cpu(), cpu[0], what="loss")
    for name, a, b in zip(grad_names(energy, x), gpu[1], cpu[1]):
        assert_close_relative(a.cpu(), b, what=name)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_non_finite_data_gives_the_generic_paths_non_finite_rows(activation):
    """A NaN in a row's data makes that row's v NaN on both paths (the vectorised float32
    activations propagate NaN as torch's do); the other rows are untouched."""
    q = edfast.Gaussian(0.5)
    energy = make_energy((4, (20, 20)), activation, dtype=torch.float32)
    x = make_data(4, q, b=6, dtype=torch.float32)
    x[2, 1] = float("nan")
    with torch.no_grad():
        fused = ed(energy, x, q, 5, fused=True, reduction="none")
        generic = ed(energy, x, q, 5, fused=False, reduction="none")
    assert torch.equal(torch.isnan(fused), torch.isnan(generic)) and torch.isnan(fused[2])
    finite = ~torch.isnan(generic)
    assert_close_relative(fused[finite].double(), generic[finite].double(), rtol=1e-5, what="finite rows")


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_activation_tails_float32(activation):
    """Pre-activations far in both tails (softplus's threshold at 20, exp under- and
    overflow): the vectorised float32 activations and slopes hold DESIGN §6's tolerance."""
    q = edfast.Gaussian(0.1)
    energy = make_energy((3, (16, 8)), activation, dtype=torch.float32)
    with torch.no_grad():
        energy.linears[0].bias.copy_(torch.linspace(-120.0, 120.0, 16))
    x = make_data(3, q, b=8, dtype=torch.float32, requires_grad=True)
    assert_float32_within_design_tolerance(energy, x, q, 5)
