"""Energy families against hand computations, gradients in float64, and input errors."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from edfast.energies import ACTIVATIONS, BernoulliRBM, Ising, MLPEnergy, Potts


def _binary(b, d, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (b, d), generator=g).double()


def _fill_(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def test_ising_matches_double_sum():
    d = 5
    m = _fill_(Ising(d).double(), 0)
    w, b = m.weight.detach(), m.bias.detach()
    x = _binary(7, d, 1)
    expected = []
    for row in x.tolist():
        s = [2 * v - 1 for v in row]
        total = 0.0
        for i in range(d):
            for j in range(d):
                if i != j:
                    total += 0.5 * (w[i, j] + w[j, i]).item() * s[i] * s[j]
            total += b[i].item() * s[i]
        expected.append(-total)
    torch.testing.assert_close(m(x), torch.tensor(expected, dtype=torch.float64))


def test_ising_coupling_mask_and_no_bias():
    d = 4
    mask = torch.tensor([[0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0]], dtype=torch.bool)
    m = _fill_(Ising(d, bias=False, mask=mask).double(), 2)
    assert m.bias is None
    j = m.coupling
    torch.testing.assert_close(j, j.T)
    assert torch.all(j.diagonal() == 0)
    assert torch.all(j[~mask] == 0) and torch.all(j[mask] != 0)
    x = _binary(6, d, 3)
    s = 2 * x - 1
    torch.testing.assert_close(m(x), -torch.einsum("bi,ij,bj->b", s, j, s))


def test_ising_starts_uniform():
    m = Ising(3)
    assert torch.all(m(torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])) == 0)


def test_potts_matches_pair_loop():
    d, k = 4, 3
    m = _fill_(Potts(d, k).double(), 4)
    w, h = m.weight.detach(), m.bias.detach()
    g = torch.Generator().manual_seed(5)
    x = torch.randint(0, k, (6, d), generator=g)
    expected = []
    for row in x.tolist():
        total = sum(h[i, row[i]].item() for i in range(d))
        for i, j in itertools.combinations(range(d), 2):
            total += 0.5 * (w[i, row[i], j, row[j]] + w[j, row[j], i, row[i]]).item()
        expected.append(-total)
    torch.testing.assert_close(m(x), torch.tensor(expected, dtype=torch.float64))


def test_potts_coupling_symmetry_and_mask():
    d, k = 3, 4
    mask = torch.tensor([[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    m = _fill_(Potts(d, k, mask=mask, bias=False).double(), 6)
    assert m.bias is None
    j = m.coupling
    torch.testing.assert_close(j, j.permute(2, 3, 0, 1))
    for i in range(d):
        assert torch.all(j[i, :, i, :] == 0)
    assert torch.all(j[0, :, 2, :] == 0) and torch.all(j[0, :, 1, :] != 0)


def test_rbm_is_hidden_marginal():
    # The free energy must equal -log sum_h exp(b.x + c.h + h^T W x) over all 2^H hidden states.
    v, hdim = 4, 3
    m = _fill_(BernoulliRBM(v, hdim).double(), 7)
    x = _binary(5, v, 8)
    hs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=hdim)), dtype=torch.float64)
    joint = (x @ m.visible_bias)[:, None] + (hs @ m.hidden_bias)[None] + (hs @ m.weight @ x.T).T
    expected = -torch.logsumexp(joint.detach(), 1)  # [B, 2^H] -> [B]
    torch.testing.assert_close(m(x), expected)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_mlp_matches_manual_forward(activation):
    m = MLPEnergy(3, hidden=(5, 4), activation=activation).double()
    manual = {"softplus": F.softplus, "silu": lambda h: h * torch.sigmoid(h),
              "relu": lambda h: h.clamp_min(0), "leaky_relu": lambda h: torch.where(h > 0, h, 0.2 * h),
              "tanh": torch.tanh, "elu": lambda h: torch.where(h > 0, h, torch.expm1(h))}[activation]
    g = torch.Generator().manual_seed(9)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    h = x
    for layer in m.linears[:-1]:
        h = manual(h @ layer.weight.T + layer.bias)
    expected = (h @ m.linears[-1].weight.T + m.linears[-1].bias)[:, 0]
    out = m(x)
    assert out.shape == (6,)
    torch.testing.assert_close(out, expected)


def test_mlp_default_architecture():
    m = MLPEnergy(2)
    assert [tuple(l.weight.shape) for l in m.linears] == [(128, 2), (128, 128), (128, 128), (128, 128), (1, 128)]


@pytest.mark.parametrize("make", [lambda: Ising(4), lambda: BernoulliRBM(4, 3), lambda: MLPEnergy(4, (6,))])
def test_gradcheck_float_families(make):
    m = _fill_(make().double(), 10)
    x = (_binary(3, 4, 11) + 0.1).requires_grad_(True)  # off the {0,1} corners: any real x works
    params = tuple(m.parameters())

    def f(x, *ps):
        return torch.func.functional_call(m, dict(zip(dict(m.named_parameters()), ps)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params))


def test_gradcheck_potts():
    m = _fill_(Potts(3, 3).double(), 12)
    x = torch.tensor([[0, 2, 1], [1, 1, 0]])
    names = [n for n, _ in m.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in m.parameters())
    assert torch.autograd.gradcheck(
        lambda *ps: torch.func.functional_call(m, dict(zip(names, ps)), (x,)), params)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"x must have shape \[B, 4\]"):
        Ising(4)(torch.zeros(4))
    with pytest.raises(ValueError, match=r"\[B, 4\]"):
        Ising(4)(torch.zeros(2, 5))
    with pytest.raises(TypeError, match="floating"):
        Ising(4)(torch.zeros(2, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="dtype"):
        Ising(4)(torch.zeros(2, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="int64"):
        Potts(3, 2)(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        Potts(3, 2)(torch.full((2, 3), 2))
    with pytest.raises(ValueError, match="symmetric"):
        Ising(2, mask=torch.tensor([[0, 1], [0, 0]]))
    with pytest.raises(ValueError, match="mask must have shape"):
        Potts(3, 2, mask=torch.ones(2, 2))
    with pytest.raises(ValueError, match="activation"):
        MLPEnergy(2, activation="gelu")
    with pytest.raises(ValueError, match="dim"):
        Ising(0)
    with pytest.raises(ValueError, match="num_classes"):
        Potts(3, 1)
    with pytest.raises(ValueError, match="visible"):
        BernoulliRBM(-1, 2)
    with pytest.raises(ValueError, match=r"\[B, 2\]"):
        MLPEnergy(2)(torch.zeros(3, 3))


def test_potts_compiles_without_graph_breaks_and_still_checks_range():
    from edfast.energies import Potts

    model = Potts(4, 3)
    x = torch.randint(0, 3, (5, 4))
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x))
    with pytest.raises(RuntimeError, match=r"values in \[0, 3\)"):
        compiled(torch.full((2, 4), 3))
