"""Ground-truth lattice Ising data (the benchmark of Grathwohl et al. 2021 and the ED papers).

The model is p(s) ∝ exp(s^T J s) on s in {-1,1}^D, D = n*n, J = sigma * A with A the
adjacency of the periodic n x n lattice; data are x = (s + 1) / 2 in {0,1}. This is
edfast's :class:`~edfast.energies.ising.Ising` with bias 0 and coupling J
(U = -s^T J s; s^T J s counts each pair twice, so a bond contributes 2 sigma s_i s_j).
"""

from __future__ import annotations

import torch

from edfast.data._rng import as_torch_generator


def lattice_coupling(n: int, sigma: float, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """J = sigma * adjacency of the periodic n x n lattice, [n*n, n*n].

    Site (r, c) has index r * n + c and neighbours (r±1 mod n, c), (r, c±1 mod n). For
    n = 2 the two neighbours along an axis coincide; the entry is still 1 (a simple graph).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    idx = torch.arange(n * n).reshape(n, n)
    adj = torch.zeros(n * n, n * n, dtype=dtype)
    for shift, axis in ((1, 0), (-1, 0), (1, 1), (-1, 1)):
        adj[idx.reshape(-1), torch.roll(idx, shift, axis).reshape(-1)] = 1.0
    return sigma * adj


def greedy_colouring(coupling: torch.Tensor) -> list[torch.Tensor]:
    """Partition the sites into classes with no coupling inside a class.

    Greedy colouring of the graph {i ~ j : J_ij != 0, i != j} in index order. On an even
    periodic lattice this is the checkerboard (2 colours); odd periodic lattices are not
    bipartite and need at least 3 (greedy uses 4 for n = 9). Sites of one class are
    conditionally independent given the rest, so a whole class can be resampled at once
    and the Gibbs chain stays exact.

    Returns: list of int64 index tensors, one per colour.
    """
    d = coupling.shape[0]
    adj = (coupling != 0).cpu()
    adj.fill_diagonal_(False)
    colour = [-1] * d
    for i in range(d):
        taken = {colour[j] for j in torch.nonzero(adj[i]).flatten().tolist()}
        colour[i] = next(c for c in range(d) if c not in taken)
    col = torch.tensor(colour)
    return [torch.nonzero(col == c).flatten() for c in range(int(col.max()) + 1)]


@torch.no_grad()
def gibbs_ising(coupling: torch.Tensor, num_chains: int, steps: int, *, generator,
                bias: torch.Tensor | None = None, init: torch.Tensor | None = None) -> torch.Tensor:
    """Chromatic (block) Gibbs sampling of p(s) ∝ exp(s^T J s + b^T s), many chains at once.

    One step updates every colour class of :func:`greedy_colouring` in turn. With the
    symmetric, zero-diagonal J, the conditional of one spin is
    p(s_i = 1 | rest) = sigmoid(4 (J s)_i + 2 b_i).

    Args:
        coupling: J [D, D], symmetric with zero diagonal (floating).
        num_chains: number of independent chains C.
        steps: number of full sweeps.
        generator: torch.Generator on J's device, or an int seed.
        bias: optional b [D].
        init: optional start x [C, D] in {0, 1}; default uniform random.

    Returns: x [C, D] in {0, 1}, J's dtype, the final state of each chain.
    """
    j = coupling
    if j.dim() != 2 or j.shape[0] != j.shape[1] or not j.is_floating_point():
        raise ValueError(f"coupling must be a square floating [D, D] tensor, got {list(j.shape)}")
    if not torch.equal(j, j.T) or bool(j.diagonal().ne(0).any()):
        raise ValueError("coupling must be symmetric with zero diagonal")
    d = j.shape[0]
    g = as_torch_generator(generator, j.device)
    if init is None:
        s = 2.0 * torch.randint(0, 2, (num_chains, d), generator=g, device=j.device).to(j.dtype) - 1
    else:
        if init.shape != (num_chains, d):
            raise ValueError(f"init must have shape [{num_chains}, {d}], got {list(init.shape)}")
        s = 2.0 * init.to(j.dtype) - 1
    # Reorder the sites so that each colour class is a contiguous block: updates are then
    # slice assignments and each class's columns of J a precomputed contiguous matrix.
    classes = [c.to(j.device) for c in greedy_colouring(j)]
    perm = torch.cat(classes)
    s = s[:, perm].contiguous()
    blocks, start = [], 0
    for cls in classes:
        stop = start + len(cls)
        field = 2.0 * bias[cls] if bias is not None else None
        blocks.append((start, stop, j[perm][:, cls].contiguous(), field))
        start = stop
    for _ in range(steps):
        for start, stop, j_cols, field in blocks:
            logits = 4.0 * (s @ j_cols)
            if field is not None:
                logits = logits + field
            u = torch.rand(logits.shape, generator=g, device=j.device, dtype=j.dtype)
            s[:, start:stop] = torch.where(u < torch.sigmoid(logits), 1.0, -1.0)
    s = s[:, torch.argsort(perm)]
    return (s + 1) / 2


def sample_lattice_ising(n: int, sigma: float, num_samples: int = 2000, steps: int = 10_000, *,
                         generator, device="cpu") -> torch.Tensor:
    """Data from the lattice Ising benchmark: ``num_samples`` independent chains, each run
    ``steps`` sweeps from a uniform random start, last state kept.

    Returns: float32 [num_samples, n*n] in {0, 1}.
    """
    j = lattice_coupling(n, sigma).to(device)
    return gibbs_ising(j, num_samples, steps, generator=generator)
