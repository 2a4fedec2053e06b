"""Checkpoints that survive a crash and resume a run bit for bit.

A checkpoint is written to a temporary file in the same directory, flushed to disk, then
renamed over the old one (:func:`atomic_save`): a crash at any moment leaves either the old
checkpoint or the new one, never a torn file. Besides the model it holds ``train_state``: the
step, the optimiser, the EMA, the losses so far, the task's history (e.g. the Ising RMSE
curve) and the state of every random source (torch's CPU and CUDA default generators, the
run's own generators for the minibatch indices and the ED noise seeds, Python's ``random``
and numpy's global generator). Everything in it is a tensor or a plain value, so it loads
with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

#: Options that may differ between a run and its resumption: how the work is run, not what
#: is computed (the same global batches, noise and updates; --fused, --nproc, --accumulate
#: and --chunk-size change float rounding only, so a bit-exact resume keeps them too).
FREE_OPTIONS = frozenset({"steps", "out", "quiet", "threads", "checkpoint_every", "resume",
                          "nproc", "accumulate", "chunk_size", "fused", "device"})


def atomic_save(obj, path: Path) -> None:
    """``torch.save(obj, path)`` through a temporary file in ``path``'s directory, fsync, then
    ``os.replace``: readers see the old file or the new one, never a partial one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


# ----------------------------------------------------------------------------- random state


def rng_state(generators: Dict[str, torch.Generator]) -> dict:
    """The state of every random source a training step may touch."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, generators: Dict[str, torch.Generator]) -> None:
    """Restore :func:`rng_state`'s snapshot (the named generators in place)."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, g in generators.items():
        g.set_state(state["generators"][name])


# ----------------------------------------------------------------------------- resuming


def _option(key: str) -> str:
    return "--" + key.replace("_", "-")


def _shown(value) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return "(unset)" if value is None else str(value)


def load_for_resume(path: Path, task: str, args: dict, device: torch.device,
                    parser: argparse.ArgumentParser) -> dict:
    """Read the checkpoint ``--resume`` continues from and check that it belongs to this run:
    the same task, a training state, the same values of every option outside
    :data:`FREE_OPTIONS`, the same device type, and a step not beyond ``--steps``. Any
    mismatch is a one-line argument error (exit 2) before training starts."""
    where = f"argument --resume: {path}"
    if not path.is_file():
        parser.error(f"{where}: no checkpoint to resume from (write one with --checkpoint-every)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        parser.error(f"{where}: cannot read it ({type(err).__name__}: {str(err).splitlines()[0]})")
    if not isinstance(ckpt, dict) or "train_state" not in ckpt or "model" not in ckpt:
        parser.error(f"{where}: not a resumable edfast checkpoint (no training state)")
    if ckpt.get("task") != task:
        parser.error(f"{where} is a checkpoint of `edfast train {ckpt.get('task')}`, not {task}")
    saved = ckpt.get("args", {})
    for key in sorted(set(saved) | set(args)):
        if key in FREE_OPTIONS:
            continue
        if saved.get(key) != args.get(key):
            parser.error(f"{where} was written with {_option(key)} {_shown(saved.get(key))}, "
                         f"this run has {_option(key)} {_shown(args.get(key))} (options that "
                         f"change the training must match)")
    state = ckpt["train_state"]
    if state.get("device_type") != device.type:
        parser.error(f"{where} was written on {state.get('device_type')}, this run is on "
                     f"{device.type} (the random generators' states are per device type)")
    if state["step"] > args["steps"]:
        parser.error(f"{where} is at step {state['step']}, beyond --steps {args['steps']}")
    return ckpt


def restore(ckpt: dict, model: torch.nn.Module, optimizer: Optional[torch.optim.Optimizer],
            ema_model: Optional[torch.nn.Module], generators: Dict[str, torch.Generator]) -> int:
    """Load a checkpoint's model, optimiser, EMA and random state; returns its step."""
    state = ckpt["train_state"]
    model.load_state_dict(ckpt["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if ema_model is not None:
        ema_model.load_state_dict(state["ema"])
    set_rng_state(state["rng"], generators)
    return int(state["step"])
