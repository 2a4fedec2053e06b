"""Many processes for ``edfast train``: torch.distributed (gloo on CPU, nccl on CUDA).

A train command runs as one rank of a process group when the environment says so, the way
``torchrun --nproc-per-node N -m edfast train ...`` starts it (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``). ``edfast train ... --nproc N`` does the
same for the user: :func:`launch` starts N copies of the command with that environment,
waits for them, and stops the others as soon as one fails.

Every rank draws the same global batch indices and the same noise seed from identically
seeded generators, and trains on its shard (rows ``rank * local_batch`` on); only rank 0
writes files and shows the progress bar.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import List, Sequence

import torch


@dataclass(frozen=True)
class World:
    """This process's place in the group: ``rank`` of ``size`` (``local_rank`` on its host)."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env() -> World:
    """The world torchrun (or :func:`launch`) describes in the environment; one process when
    ``WORLD_SIZE`` is unset."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return World(rank=rank, local_rank=local, size=size)


def is_secondary_rank() -> bool:
    """True in ranks other than 0 of a process group (they stay silent on argument errors:
    every rank parses the same command line, rank 0 reports)."""
    return world_from_env().rank != 0


def init(world: World, device: torch.device) -> None:
    """Join the process group (env:// rendezvous): gloo for CPU runs, nccl for CUDA."""
    import torch.distributed as dist

    if not world.distributed or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method="env://", rank=world.rank, world_size=world.size)


def finish(world: World) -> None:
    """Wait for every rank (rank 0 writes the files after training), then leave the group."""
    import torch.distributed as dist

    if world.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, world: World) -> torch.Tensor:
    """The sum over ranks of ``values`` (``values`` itself in one process)."""
    import torch.distributed as dist

    if world.distributed:
        values = values.clone()
        dist.all_reduce(values)
    return values


def all_gather(value, world: World) -> list:
    """Every rank's ``value`` (picklable), in rank order."""
    import torch.distributed as dist

    if not world.distributed:
        return [value]
    out = [None] * world.size
    dist.all_gather_object(out, value)
    return out


# ----------------------------------------------------------------------------- the launcher


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In a launched rank (Linux): get SIGTERM when the launcher dies, even by SIGKILL, so no
    rank is left waiting in a collective for a peer that will never come."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def launch(argv: Sequence[str], nproc: int) -> int:
    """Run ``python -m edfast *argv`` as ``nproc`` ranks on this host and wait for them.

    Returns 0 when every rank succeeds; otherwise the first failing rank's exit status
    (2 for an argument error), after stopping the other ranks.
    """
    env = dict(os.environ)
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE=str(nproc),
               LOCAL_WORLD_SIZE=str(nproc))
    procs: List[subprocess.Popen] = []
    for rank in range(nproc):
        env_rank = dict(env, RANK=str(rank), LOCAL_RANK=str(rank))
        procs.append(subprocess.Popen([sys.executable, "-m", "edfast", *argv], env=env_rank,
                                      preexec_fn=_die_with_parent if sys.platform == "linux" else None))
    status = 0
    try:
        running = list(procs)
        while running:
            for proc in list(running):
                code = proc.poll()
                if code is None:
                    continue
                running.remove(proc)
                if code != 0 and status == 0:
                    status = code if code > 0 else 1  # killed by a signal: 1
                    _stop(running)
                    running = []
                    break
            time.sleep(0.05)
    except KeyboardInterrupt:
        _stop(procs)
        return 130
    return status


def _stop(procs: Sequence[subprocess.Popen], grace: float = 5.0) -> None:
    """SIGTERM the ranks still running, then SIGKILL those left after ``grace`` seconds."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
