"""Shared pieces of the train commands: common options, device and seed handling, the
training loop with a live-loss progress bar, periodic and final checkpoints (resumable) and
metrics files. Large batches: :mod:`edfast.train.ed_step` (shards, micro-batches, chunks),
:mod:`edfast.train.distributed` (process groups), :mod:`edfast.train.checkpoint`."""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from pathlib import Path
from typing import Callable, Optional

import torch

from edfast.train import checkpoint
from edfast.train.distributed import World, all_gather, all_reduce_sum

# ----------------------------------------------------------------------------- argument types


def binary_perturbation(args: argparse.Namespace):
    """The discrete commands' ``--perturbation bernoulli|bitflip`` (with ``--epsilon``)."""
    import edfast

    return edfast.Bernoulli(args.epsilon) if args.perturbation == "bernoulli" else edfast.BitFlip()


def _int_at_least(low: int) -> Callable[[str], int]:
    """argparse type: an int >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


positive_int = _int_at_least(1)
nonneg_int = _int_at_least(0)


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value:g}")
    return value


def nonneg_float(text: str) -> float:
    """argparse type: a finite float >= 0."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value:g}")
    return value


def finite_float(text: str) -> float:
    """argparse type: any finite float."""
    return _float(text)


def probability(text: str) -> float:
    """argparse type: a float in the open interval (0, 1)."""
    value = _float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1), got {value:g}")
    return value


def unit_interval(text: str) -> float:
    """argparse type: a float in [0, 1) (EMA decay; 0 turns EMA off)."""
    value = _float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {value:g}")
    return value


def choice_of(valid, what: str):
    """argparse type: one of ``valid``; the error lists them all on one line."""
    valid = tuple(valid)

    def parse(text: str) -> str:
        if text not in valid:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {text!r}; valid {what}s: {', '.join(valid)}")
        return text

    parse.__name__ = what  # argparse names the type in some messages
    return parse


# ----------------------------------------------------------------------------- common options


# --fused: the command's word -> energy_discrepancy's argument.
FUSED = {"auto": "auto", "on": True, "off": False}
# --dtype: the word -> the model's and the data's floating dtype.
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def add_common_arguments(parser: argparse.ArgumentParser, *, steps: int, batch_size: int, m: int,
                         lr: float, out: str, threads: int = 1) -> None:
    """The options every train command takes; defaults differ per task."""
    g = parser.add_argument_group("training (every train command)")
    g.add_argument("--steps", type=positive_int, default=steps,
                   help="optimisation steps (default: %(default)s)")
    g.add_argument("--batch-size", type=positive_int, default=batch_size,
                   help="data points per step (default: %(default)s)")
    g.add_argument("--m", type=positive_int, default=m,
                   help="ED negatives per data point M (default: %(default)s)")
    g.add_argument("--w", type=nonneg_float, default=1.0,
                   help="ED stabiliser w >= 0 (default: %(default)s; 0 is known to be unstable)")
    g.add_argument("--lr", type=positive_float, default=lr,
                   help="Adam learning rate (default: %(default)s)")
    g.add_argument("--out", type=Path, default=Path(out),
                   help="output directory for checkpoint.pt, metrics.json and the PNG pictures; "
                        "created if missing, files in it overwritten (default: %(default)s)")
    g.add_argument("--device", default="auto",
                   help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N "
                        "(default: %(default)s)")
    g.add_argument("--seed", type=nonneg_int, default=0,
                   help="seed of every random draw (data, initialisation, ED noise, samplers); "
                        "the same seed on the same device gives the same run (default: %(default)s)")
    g.add_argument("--threads", type=nonneg_int, default=threads,
                   help="CPU threads for torch; the example models are small and one thread is "
                        "usually fastest (on a busy machine by far); 0 keeps torch's default "
                        "(default: %(default)s)")
    g.add_argument("--fused", type=choice_of(FUSED, "fused setting"), default="auto",
                   help="the ED loss's fused kernel (edfast.energy_discrepancy(fused=...)): auto "
                        "uses it when edfast has one for the model and perturbation, else the "
                        "generic path; on requires it (an error before training when there is "
                        "none); off always takes the generic path (default: %(default)s)")
    g.add_argument("--dtype", type=choice_of(DTYPES, "dtype"), default="float32",
                   help="floating dtype of the model and the data: float32 or float64 "
                        "(default: %(default)s)")
    g.add_argument("--quiet", action="store_true",
                   help="no progress bar and no summary line")
    b = parser.add_argument_group("large batches, many processes, checkpoints (every train command)")
    b.add_argument("--nproc", type=positive_int, default=1,
                   help="train as N processes with torch.distributed DDP (gloo on CPU, nccl on "
                        "CUDA, one GPU each): each takes 1/N of every batch; the same as "
                        "torchrun --nproc-per-node N -m edfast train ... (default: %(default)s)")
    b.add_argument("--accumulate", type=positive_int, default=1, metavar="K",
                   help="split each process's share of the batch into K micro-batches and "
                        "accumulate their gradients; K must divide it (default: %(default)s)")
    b.add_argument("--chunk-size", type=positive_int, default=None, metavar="C",
                   help="evaluate the M negatives C at a time under recomputation (the generic "
                        "path; fused kernels never hold the negatives) (default: all at once)")
    b.add_argument("--checkpoint-every", type=nonneg_int, default=0, metavar="S",
                   help="write a resumable checkpoint.pt atomically every S steps; 0: only at the "
                        "end (default: %(default)s)")
    b.add_argument("--resume", action="store_true",
                   help="continue the run from --out's checkpoint.pt (same task and options; "
                        "with the same --nproc, --accumulate, --chunk-size, --fused and "
                        "--threads it continues bit for bit)")


def check_split(args: argparse.Namespace, world_size: int, parser: argparse.ArgumentParser) -> None:
    """The batch must split evenly over the processes and then over --accumulate micro-batches
    (one-line argument errors, exit 2)."""
    batch = args.batch_size
    if batch % world_size:
        parser.error(f"argument --batch-size: {batch} is not divisible by the world size "
                     f"{world_size} (processes)")
    local = batch // world_size
    if local % args.accumulate:
        where = (f"--batch-size {batch}" if world_size == 1 else
                 f"the per-process batch {local} (--batch-size {batch} over {world_size} processes)")
        parser.error(f"argument --accumulate: {args.accumulate} does not divide {where}")


def resolve_device(spec: str, parser: argparse.ArgumentParser, *, world_size: int = 1,
                   local_rank: int = 0) -> torch.device:
    """``auto`` -> cuda when available, else cpu. With several processes, each takes
    ``cuda:LOCAL_RANK``. Errors (via ``parser.error``) are one line."""
    device = _resolve_device(spec, parser)
    if device.type != "cuda" or world_size == 1:
        return device
    if device.index is not None:
        parser.error(f"argument --device: {spec} names one GPU; with {world_size} processes use "
                     "--device cuda (each process takes cuda:LOCAL_RANK)")
    if torch.cuda.device_count() < world_size:
        parser.error(f"argument --nproc: {world_size} processes need {world_size} CUDA devices, "
                     f"found {torch.cuda.device_count()}")
    return torch.device("cuda", local_rank)


def _resolve_device(spec: str, parser: argparse.ArgumentParser) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        parser.error(f"argument --device: unknown device {spec!r}; use auto, cpu, cuda or cuda:N")
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        parser.error(f"argument --device: unsupported device {spec!r}; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        parser.error(f"argument --device: {spec} requested but CUDA is not available "
                     "(torch.cuda.is_available() is False); use --device cpu or auto")
    if device.index is not None and device.index >= torch.cuda.device_count():
        parser.error(f"argument --device: {spec} requested but only "
                     f"{torch.cuda.device_count()} CUDA device(s) are present")
    return device


# ----------------------------------------------------------------------------- the run


class Run:
    """What a task needs from the command: device, seeded generators, output paths, the loop.

    Randomness: ``torch.manual_seed(seed)`` (model initialisation), and separate generators
    derived from the seed for data (:meth:`data_seed`), the ED noise (:attr:`loss_generator`,
    on the CPU: it draws one op seed per step) and samplers (:meth:`generator`).

    Processes: ``world`` says which rank of how many this is; every rank runs the same
    training on its shard of each batch, only rank 0 (:attr:`is_main`) writes files and
    shows the progress bar. Checkpoints: ``--checkpoint-every`` and the end of training write
    ``checkpoint.pt`` atomically with the training state; ``resume_from`` (a checkpoint
    checked by :func:`edfast.train.checkpoint.load_for_resume`) continues from it.
    """

    def __init__(self, task: str, args: argparse.Namespace, device: torch.device, *,
                 world: Optional[World] = None, resume_from: Optional[dict] = None):
        self.task, self.args, self.device = task, args, device
        self.world = world or World()
        self.dtype = DTYPES[getattr(args, "dtype", "float32")]
        self.out = Path(args.out)
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.seed = args.seed
        torch.manual_seed(self.seed)
        self.loss_generator = torch.Generator().manual_seed(self.seed + 1)
        self.losses: list[float] = []
        self.train_time = 0.0
        #: Task values kept across a resume (e.g. the Ising RMSE curve); plain lists/values.
        self.history: dict = {}
        self._resume = resume_from
        if resume_from is not None:
            state = resume_from["train_state"]
            self.history = copy.deepcopy(state["history"])
            self.losses = list(state["losses"])
            self.train_time = float(state["train_time"])
        self._model = self._optimizer = self._ema = None
        self._generators: dict = {"loss": self.loss_generator}
        self._final_state: Optional[dict] = None
        self.peak_rss_mb: list = []
        self.rss_before_train_mb: list = []

    @property
    def is_main(self) -> bool:
        return self.world.is_main

    def data_seed(self, k: int = 0) -> int:
        """An int seed for data generation, distinct for each k."""
        return (self.seed * 1_000_003 + 17 + k) % (2**31 - 1)

    def generator(self, k: int = 0) -> torch.Generator:
        """A torch.Generator on the run's device, for samplers and minibatch indices."""
        return torch.Generator(device=self.device).manual_seed(self.data_seed(100 + k))

    def path(self, name: str) -> Path:
        return self.out / name

    def train(self, step_fn: Callable[[int], torch.Tensor], *,
              on_eval: Optional[Callable[[int], Optional[dict]]] = None, eval_every: int = 0) -> None:
        """Run ``args.steps`` calls of ``step_fn(step) -> loss`` (a detached scalar tensor: this
        rank's share of the batch's loss) under a tqdm bar that shows the live loss.
        ``on_eval(step)`` runs every ``eval_every`` steps (and after the last); a dict it
        returns joins the bar's postfix. Resumes from the checkpoint given to the run, and
        writes one every ``--checkpoint-every`` steps."""
        from tqdm.auto import tqdm

        steps, every = self.args.steps, getattr(self.args, "checkpoint_every", 0)
        first = self._restore() if self._resume is not None else 0
        rss_before = rss_mb()
        bar = tqdm(range(first + 1, steps + 1), initial=first, total=steps,
                   desc=f"edfast train {self.task}", unit="step",
                   disable=self.args.quiet or not self.is_main, mininterval=0.25,
                   dynamic_ncols=True)
        extra: dict = {}
        if on_eval is not None and eval_every and first == 0:
            extra = on_eval(0) or {}
        start = time.perf_counter()
        pending = []
        for step in bar:
            pending.append(step_fn(step))
            checkpoint_due = every and step % every == 0 and step < steps
            # Read losses back in groups so a CUDA run is not synchronised every step.
            if len(pending) >= 10 or step == steps or checkpoint_due:
                total = all_reduce_sum(torch.stack(pending).double(), self.world)
                values = total.cpu().tolist()
                self.losses.extend(values)
                pending = []
                if not math.isfinite(values[-1]):
                    bar.close()
                    raise FloatingPointError(
                        f"the loss became {values[-1]} at step {step}; lower --lr or raise --w")
                bar.set_postfix(loss=f"{values[-1]:.4f}", **extra, refresh=False)
            if on_eval is not None and eval_every and (step % eval_every == 0 or step == steps):
                self.train_time += time.perf_counter() - start
                extra = on_eval(step) or {}
                start = time.perf_counter()
            if checkpoint_due and self.is_main:
                self.train_time += time.perf_counter() - start
                checkpoint.atomic_save(self._state(step), self.path("checkpoint.pt"))
                start = time.perf_counter()
        self.train_time += time.perf_counter() - start
        bar.close()
        if self.is_main:
            self._final_state = self._state(steps)
        self.peak_rss_mb = all_gather(rss_mb("VmHWM"), self.world)
        self.rss_before_train_mb = all_gather(rss_before, self.world)

    def ed_step(self, model, data: torch.Tensor, perturbation, optimizer, *,
                penalty: Optional[Callable[[], torch.Tensor]] = None,
                ema: Optional["EMA"] = None,
                after_step: Optional[Callable[[], None]] = None) -> Callable[[int], torch.Tensor]:
        """The step function :meth:`train` runs: the ED loss of ``model`` on a random global
        minibatch of ``data`` (this rank's shard, in ``--accumulate`` micro-batches, negatives
        ``--chunk-size`` at a time; plus ``penalty()``; ``--fused`` chooses the loss's path),
        one optimiser step, the ``ema`` update, then ``after_step()``. Returns the ED loss
        (without the penalty) for the progress bar. The model, optimiser, EMA and generators
        are what checkpoints hold. With ``--fused on`` a model or perturbation that no fused
        kernel serves is an argument error (exit 2) here, before training starts."""
        from edfast.train.ed_step import make_step

        args = self.args
        fused = FUSED[args.fused]
        if fused is True:
            self._check_fused(model, data, perturbation)
        index_generator = self.generator(0)
        self._model, self._optimizer, self._ema = model, optimizer, ema
        self._generators["index"] = index_generator

        def after():
            if ema is not None:
                ema.update(model)
            if after_step is not None:
                after_step()

        return make_step(model, data, perturbation, optimizer, batch_size=args.batch_size,
                         m=args.m, w=args.w, chunk_size=getattr(args, "chunk_size", None),
                         fused=fused, accumulate=getattr(args, "accumulate", 1), world=self.world,
                         index_generator=index_generator, seed_generator=self.loss_generator,
                         penalty=penalty, after_step=after)

    def _check_fused(self, model, data: torch.Tensor, perturbation) -> None:
        """``--fused on``: a model or perturbation no fused kernel serves fails as a one-line
        argument error before training, not as a traceback at the first step."""
        from edfast._fused import fused_kernel

        kernel, why_not = fused_kernel(model, data[:1], perturbation)
        if kernel is None:
            parser = getattr(self.args, "parser", None)
            message = f"fused=True: {why_not}"
            if parser is None:
                raise ValueError(message)
            parser.error(f"argument --fused: on: {message}")

    # ------------------------------------------------------------------ checkpoints

    def _state(self, step: int) -> dict:
        """The checkpoint of the training at ``step`` (after its update)."""
        if self._model is None:
            raise RuntimeError("Run.train needs the step function from Run.ed_step")
        return {
            "task": self.task, "args": serialisable_args(self.args),
            "model": _cpu(self._model.state_dict()),
            "train_state": {
                "step": step,
                "optimizer": _cpu(self._optimizer.state_dict()) if self._optimizer else None,
                "ema": _cpu(self._ema.model.state_dict()) if self._ema is not None else None,
                "rng": checkpoint.rng_state(self._generators),
                "losses": list(self.losses),
                "history": copy.deepcopy(self.history),
                "train_time": self.train_time,
                "device_type": self.device.type,
                "world_size": self.world.size,
            },
        }

    def _restore(self) -> int:
        ema_model = self._ema.model if self._ema is not None else None
        return checkpoint.restore(self._resume, self._model, self._optimizer, ema_model,
                                  self._generators)

    # ------------------------------------------------------------------ results

    def base_metrics(self) -> dict:
        tail = self.losses[-100:]
        args = self.args
        steps_per_s = args.steps / max(self.train_time, 1e-9)
        return {
            "task": self.task,
            "final_loss": self.losses[-1],
            "mean_loss_last_100": sum(tail) / len(tail),
            "steps": args.steps,
            "train_time_s": round(self.train_time, 3),
            "steps_per_s": round(steps_per_s, 2),
            "rows_per_s": round(steps_per_s * args.batch_size, 1),
            "batch_size": args.batch_size,
            "world_size": self.world.size,
            "accumulate": getattr(args, "accumulate", 1),
            "chunk_size": getattr(args, "chunk_size", None),
            "dtype": getattr(args, "dtype", "float32"),
            # Peak resident memory of each process at the end of training (before evaluation),
            # and its resident memory when training started (imports, data and model done).
            "train_peak_rss_mb": self.peak_rss_mb[0] if self.peak_rss_mb else None,
            "train_peak_rss_mb_per_rank": self.peak_rss_mb,
            "rss_before_train_mb_per_rank": self.rss_before_train_mb,
            "fused": args.fused,
            "device": str(self.device),
            "seed": self.seed,
            "edfast_version": _edfast_version(),
            "torch_version": str(torch.__version__),
        }

    def save(self, model: torch.nn.Module, metrics: dict, **extra) -> None:
        """checkpoint.pt ({"model", "args", "task", "metrics", "train_state", **extra}, written
        atomically), metrics.json and loss.png. Rank 0 only."""
        from edfast.train import plots

        if not self.is_main:
            return
        state = self._final_state or {"task": self.task, "args": serialisable_args(self.args)}
        state = dict(state, model=_cpu(model.state_dict()), metrics=metrics, **extra)
        checkpoint.atomic_save(state, self.path("checkpoint.pt"))
        with open(self.path("metrics.json"), "w") as f:
            json.dump(metrics, f, indent=2, sort_keys=False)
            f.write("\n")
        plots.loss_curve(self.losses, self.path("loss.png"), title=f"edfast train {self.task}")


def _cpu(state):
    """A (nested) state dict with its tensors on the CPU, so a checkpoint loads anywhere."""
    if isinstance(state, torch.Tensor):
        return state.detach().cpu().clone()
    if isinstance(state, dict):
        return {k: _cpu(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_cpu(v) for v in state]
    return state


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory now (``VmRSS``) or its peak so far (``VmHWM``), MiB, from
    /proc/self/status; where that is missing, the peak from ``ru_maxrss`` for both."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _edfast_version() -> str:
    import edfast

    return edfast.__version__


def serialisable_args(args: argparse.Namespace) -> dict:
    """vars(args) as plain values (Paths as strings; the handler, parser and task module
    left out): what the checkpoint records."""
    out = {}
    for key, value in vars(args).items():
        if key == "argv":
            continue
        if isinstance(value, os.PathLike):
            value = str(value)
        if value is None or isinstance(value, (bool, int, float, str)) or (
                isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, str)) for v in value)):
            out[key] = value
    return out


class EMA:
    """Exponential moving average of a model's parameters (decay in (0, 1))."""

    def __init__(self, model: torch.nn.Module, decay: float):
        import copy

        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for avg, p in zip(self.model.parameters(), model.parameters()):
            avg.lerp_(p.detach(), 1.0 - self.decay)
