"""One ED training step on a global batch, however it is split.

The global batch of ``B`` rows is the same whatever the split: every rank draws all ``B``
indices from identically seeded generators, and one noise seed per step. Rank ``r`` of ``N``
takes rows ``[r * B/N, (r + 1) * B/N)``; with ``--accumulate K`` it runs them as ``K``
micro-batches of ``B/(N K)`` rows. Each micro-batch calls the loss with
``row_offset`` = the global index of its first row, so it draws exactly the noise those rows
get in the whole batch (DESIGN §3), and its mean loss is scaled by its share of the rank's
rows; DDP then averages the ranks' gradients, which gives the gradient of the global mean.
A penalty (the Ising l1 term) is added once per step, to the last micro-batch.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, Optional

import torch

from edfast.train.distributed import World


class EDObjective(torch.nn.Module):
    """The loss of one micro-batch as a module, so that DistributedDataParallel wraps the whole
    loss (the energy is called on its own class inside, and fused kernels still apply)."""

    def __init__(self, model: torch.nn.Module, perturbation, *, m: int, w: float,
                 chunk_size: Optional[int], fused, penalty: Optional[Callable[[], torch.Tensor]]):
        super().__init__()
        self.model = model
        self.perturbation, self.m, self.w = perturbation, m, w
        self.chunk_size, self.fused, self.penalty = chunk_size, fused, penalty

    def forward(self, x: torch.Tensor, seed: int, row_offset: int, scale: float,
                with_penalty: bool):
        """Returns (what to differentiate, the micro-batch's mean ED loss, detached)."""
        import edfast

        loss = edfast.energy_discrepancy(self.model, x, self.perturbation, m=self.m, w=self.w,
                                         chunk_size=self.chunk_size, seed=seed,
                                         row_offset=row_offset, fused=self.fused)
        total = loss * scale
        if with_penalty and self.penalty is not None:
            total = total + self.penalty()
        return total, loss.detach()


def make_step(model: torch.nn.Module, data: torch.Tensor, perturbation, optimizer, *,
              batch_size: int, m: int, w: float, chunk_size: Optional[int], fused,
              accumulate: int, world: World, index_generator: torch.Generator,
              seed_generator: torch.Generator,
              penalty: Optional[Callable[[], torch.Tensor]] = None,
              after_step: Optional[Callable[[], None]] = None) -> Callable[[int], torch.Tensor]:
    """The step function: ``step(i) -> this rank's share of the global mean ED loss`` (a
    detached scalar; the sum over ranks is the loss of the whole batch)."""
    from edfast._ops import draw_seed

    local = batch_size // world.size
    micro = local // accumulate
    objective = EDObjective(model, perturbation, m=m, w=w, chunk_size=chunk_size, fused=fused,
                            penalty=penalty)
    if world.distributed:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [data.device] if data.device.type == "cuda" else None
        objective = DistributedDataParallel(objective, device_ids=device_ids)
    scale = micro / local  # 1.0 exactly without accumulation
    share = micro / batch_size

    def step(_: int) -> torch.Tensor:
        idx = torch.randint(0, len(data), (batch_size,), generator=index_generator,
                            device=data.device)
        seed = draw_seed(seed_generator)  # the same on every rank: one seed per step
        optimizer.zero_grad(set_to_none=True)
        reported = None
        for k in range(accumulate):
            first = world.rank * local + k * micro
            last = k == accumulate - 1
            # DDP: reduce the gradients once, after the last micro-batch's backward.
            sync = nullcontext() if last or not world.distributed else objective.no_sync()
            with sync:
                total, loss = objective(data[idx[first:first + micro]], seed, first, scale, last)
                total.backward()
            part = loss * share if accumulate > 1 or world.distributed else loss
            reported = part if reported is None else reported + part
        optimizer.step()
        if after_step is not None:
            after_step()
        return reported

    return step
