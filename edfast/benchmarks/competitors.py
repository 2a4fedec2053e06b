"""What each case is timed against: one training step (forward + backward) per competitor.

- ``edfast`` / ``edfast chunk=c``: ``edfast.energy_discrepancy`` (fused when edfast has a
  kernel for the energy, else the generic path), a new seed each step as in training.
- ``reference eager``: the authors' way: perturb x, perturb y M times with torch's RNG,
  evaluate the energy on all B*M negatives, logsumexp (``edfast.reference``). Its perturbation
  steps (:func:`eager_perturb`) are the cheapest plain-PyTorch ones (one RNG call and a masked
  ``where`` per step, y broadcast rather than repeated), so it is a strong baseline.
- ``reference compiled``: the same function under ``torch.compile`` (inductor).
- ``ebmkit``: the peer library's ``EnergyDiscrepancy`` (Gaussian noise only).
- ``bare network``: the energy's forward + backward on B*(M+1) pre-drawn rows, no loss at
  all: what a perfectly free loss would cost.

A competitor that cannot run raises :class:`Unavailable` with the reason, which the report
records instead of a time.
"""
from __future__ import annotations

import itertools
import math
import re
from typing import Callable, List, Optional, Sequence, Tuple

import torch

import edfast
import edfast.reference as reference
from edfast.benchmarks.cases import Case, Setup
from edfast.perturbations import Bernoulli, BitFlip, Categorical, Gaussian, Perturbation

Step = Callable[[], None]


class Unavailable(Exception):
    """A competitor that cannot run here; ``str(err)`` says why."""


def names(case: Case) -> List[str]:
    """The competitors of ``case``, edfast's configurations first (the first is primary)."""
    edfast_names = ["edfast" if c is None else f"edfast chunk={c}" for c in case.edfast_chunks]
    build = case.build("cpu", 2, 1)  # tiny: only to see which perturbation the case uses
    others = ["reference eager", "reference compiled"]
    if isinstance(build.perturbation, Gaussian):
        others.append("ebmkit")
    return edfast_names + others + list(case.extra)


# ---------------------------------------------------------------- plain PyTorch


def eager_perturb_step(a: torch.Tensor, q: Perturbation, shape: Optional[Sequence[int]] = None) -> torch.Tensor:
    """One step of q from ``a`` to a tensor of ``shape`` (default ``a.shape``; ``a`` broadcasts
    to it, so y[:, None] gives M independent steps without repeating y), written the fastest
    plain way we found (torch's RNG; DESIGN §6): one RNG call and one fused elementwise op.
    The last dimension is the event (BitFlip flips one coordinate along it)."""
    shape = tuple(a.shape if shape is None else shape)
    if isinstance(q, Gaussian):
        return torch.add(a, torch.randn(shape, dtype=a.dtype, device=a.device), alpha=q.scale)
    if isinstance(q, Bernoulli):
        flip = torch.rand(shape, device=a.device) < q.epsilon
        return torch.where(flip, 1 - a, a) if a.is_floating_point() else a ^ flip
    if isinstance(q, BitFlip):
        out = a.expand(shape).clone()
        index = torch.randint(shape[-1], (*shape[:-1], 1), device=a.device)
        picked = out.gather(-1, index)
        return out.scatter_(-1, index, ~picked if picked.dtype == torch.bool else 1 - picked)
    if isinstance(q, Categorical):
        resample = torch.rand(shape, device=a.device) < q.epsilon
        return torch.where(resample, torch.randint(q.num_classes, shape, device=a.device), a)
    return reference.perturb_step(a.expand(shape).contiguous(), q)  # Cyclic, Ordinal: inverse CDF


def eager_perturb(x: torch.Tensor, q: Perturbation, m: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``edfast.perturb(x, q, m)`` in plain PyTorch: ``y`` like x and the ``[B, m, *event]``
    negatives, all drawn from the one y of their row."""
    b, event = x.shape[0], x.shape[1:]
    flat = x.reshape(b, -1)  # the event as one dimension (BitFlip draws one of all its coordinates)
    y = eager_perturb_step(flat, q)
    negatives = eager_perturb_step(y.unsqueeze(1), q, (b, m, flat.shape[1]))
    return y.reshape(x.shape), negatives.reshape(b, m, *event)


def eager_contrastive_logsumexp(e_pos: torch.Tensor, e_neg: torch.Tensor, w: float) -> torch.Tensor:
    """``edfast.contrastive_logsumexp`` in plain PyTorch, the fastest form we found: one
    logsumexp over the M differences, w joined by ``logaddexp`` (no [B, M+1] concatenation)."""
    v = torch.logsumexp(e_pos.unsqueeze(1) - e_neg, dim=1)
    if w > 0:
        v = torch.logaddexp(v, torch.tensor(math.log(w), dtype=v.dtype, device=v.device))
    return v - math.log(e_neg.shape[1])


def reference_loss(energy, x: torch.Tensor, q: Perturbation, m: int, w: float) -> torch.Tensor:
    """The authors' ED loss (DESIGN §1's normalised value) in plain PyTorch: perturb x once,
    perturb y M times, evaluate U on the B*M negatives and contrast with a logsumexp."""
    _, negatives = eager_perturb(x, q, m)
    return reference.energy_discrepancy_from_samples(energy, x, negatives, w)


# ---------------------------------------------------------------- steps


def _stepper(setup: Setup, loss: Callable[[], torch.Tensor]) -> Step:
    params = list(setup.energy.parameters())

    def step() -> None:
        for p in params:  # as optimizer.zero_grad(set_to_none=True)
            p.grad = None
        loss().backward()

    return step


def _edfast(setup: Setup, chunk_size: Optional[int]) -> Step:
    seeds = itertools.count()
    return _stepper(setup, lambda: edfast.energy_discrepancy(
        setup.energy, setup.x, setup.perturbation, setup.m, setup.w,
        chunk_size=chunk_size, seed=next(seeds)))


def _reference(setup: Setup, compiled: bool) -> Step:
    def loss(x):
        return reference_loss(setup.energy, x, setup.perturbation, setup.m, setup.w)

    if compiled:
        # A fresh dynamo cache per setup: otherwise successive cases recompile the same code
        # object until the recompile limit, after which dynamo silently runs eagerly.
        torch._dynamo.reset()
        loss = torch.compile(loss, dynamic=False)
    return _stepper(setup, lambda: loss(setup.x))


def _ebmkit(setup: Setup) -> Step:
    try:
        from ebm import EnergyDiscrepancy
    except ImportError as err:
        raise Unavailable(f"ebmkit is not installed ({err}); pip install 'edfast[bench]'") from err
    if not isinstance(setup.perturbation, Gaussian):
        raise Unavailable("ebmkit's EnergyDiscrepancy supports Gaussian noise only")
    loss_fn = EnergyDiscrepancy(sigma=setup.perturbation.scale, m_particles=setup.m, w_stable=setup.w)
    # .loss: ebmkit returns a LossOutput (and calls loss.item() for its metrics every step).
    return _stepper(setup, lambda: loss_fn(setup.energy, setup.x).loss)


def _bare(setup: Setup) -> Step:
    b = setup.x.shape[0]
    _, negatives = edfast.perturb(setup.x, setup.perturbation, setup.m, seed=0)
    rows = torch.cat([setup.x, negatives.reshape(b * setup.m, *setup.x.shape[1:])]).detach()
    return _stepper(setup, lambda: setup.energy(rows).mean())


def make_step(name: str, setup: Setup) -> Step:
    """The step function of competitor ``name`` on ``setup``; raises :class:`Unavailable`."""
    chunked = re.fullmatch(r"edfast chunk=(\d+)", name)
    if chunked:
        return _edfast(setup, int(chunked.group(1)))
    builders = {
        "edfast": lambda: _edfast(setup, None),
        "reference eager": lambda: _reference(setup, compiled=False),
        "reference compiled": lambda: _reference(setup, compiled=True),
        "ebmkit": lambda: _ebmkit(setup),
        "bare network": lambda: _bare(setup),
    }
    if name not in builders:
        raise KeyError(f"unknown competitor {name!r}")
    return builders[name]()
