"""Shared pieces of the train commands: common options, device and seed handling, the
training loop with a live-loss progress bar, checkpoint and metrics files."""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Callable, Optional

import torch

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
    g.add_argument("--quiet", action="store_true",
                   help="no progress bar and no summary line")


def resolve_device(spec: str, parser: argparse.ArgumentParser) -> torch.device:
    """``auto`` -> cuda when available, else cpu. Errors (via ``parser.error``) are one line."""
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
    on the CPU: it only draws the op's seed) and samplers (:meth:`generator`).
    """

    def __init__(self, task: str, args: argparse.Namespace, device: torch.device):
        self.task, self.args, self.device = task, args, device
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.seed = args.seed
        torch.manual_seed(self.seed)
        self.loss_generator = torch.Generator().manual_seed(self.seed + 1)
        self.losses: list[float] = []
        self.train_time = 0.0

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
        """Run ``args.steps`` calls of ``step_fn(step) -> loss`` (a detached scalar tensor) under
        a tqdm bar that shows the live loss. ``on_eval(step)`` runs every ``eval_every`` steps
        (and after the last); a dict it returns joins the bar's postfix."""
        from tqdm.auto import tqdm

        steps = self.args.steps
        bar = tqdm(range(1, steps + 1), desc=f"edfast train {self.task}", unit="step",
                   disable=self.args.quiet, mininterval=0.25, dynamic_ncols=True)
        extra: dict = {}
        if on_eval is not None and eval_every:
            extra = on_eval(0) or {}
        start = time.perf_counter()
        pending = []
        for step in bar:
            pending.append(step_fn(step))
            # Read losses back in groups so a CUDA run is not synchronised every step.
            if len(pending) >= 10 or step == steps:
                values = torch.stack(pending).double().cpu().tolist()
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
        self.train_time += time.perf_counter() - start
        bar.close()

    def ed_step(self, model, data: torch.Tensor, perturbation, optimizer, *,
                penalty: Optional[Callable[[], torch.Tensor]] = None,
                after_step: Optional[Callable[[], None]] = None) -> Callable[[int], torch.Tensor]:
        """The step function :meth:`train` runs: the ED loss of ``model`` on a random
        minibatch of ``data`` (plus ``penalty()``; ``--fused`` chooses the loss's path), one
        optimiser step, then ``after_step()``. Returns the ED loss (without the penalty) for
        the progress bar. With ``--fused on`` a model or perturbation that no fused kernel
        serves is an argument error (exit 2) here, before training starts."""
        import edfast

        args, index_gen = self.args, self.generator(0)
        fused = FUSED[args.fused]
        if fused is True:
            self._check_fused(model, data, perturbation)

        def step(_):
            idx = torch.randint(0, len(data), (args.batch_size,), generator=index_gen, device=data.device)
            loss = edfast.energy_discrepancy(model, data[idx], perturbation, m=args.m, w=args.w,
                                             generator=self.loss_generator, fused=fused)
            total = loss + penalty() if penalty is not None else loss
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            if after_step is not None:
                after_step()
            return loss.detach()

        return step

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

    def base_metrics(self) -> dict:
        tail = self.losses[-100:]
        return {
            "task": self.task,
            "final_loss": self.losses[-1],
            "mean_loss_last_100": sum(tail) / len(tail),
            "steps": self.args.steps,
            "train_time_s": round(self.train_time, 3),
            "steps_per_s": round(self.args.steps / max(self.train_time, 1e-9), 2),
            "fused": self.args.fused,
            "device": str(self.device),
            "seed": self.seed,
            "edfast_version": _edfast_version(),
            "torch_version": torch.__version__,
        }

    def save(self, model: torch.nn.Module, metrics: dict, **extra) -> None:
        """checkpoint.pt ({"model", "args", "task", "metrics", **extra}), metrics.json and
        loss.png."""
        from edfast.train import plots

        torch.save({"model": model.state_dict(), "args": serialisable_args(self.args),
                    "task": self.task, "metrics": metrics, **extra}, self.path("checkpoint.pt"))
        with open(self.path("metrics.json"), "w") as f:
            json.dump(metrics, f, indent=2, sort_keys=False)
            f.write("\n")
        plots.loss_curve(self.losses, self.path("loss.png"), title=f"edfast train {self.task}")


def _edfast_version() -> str:
    import edfast

    return edfast.__version__


def serialisable_args(args: argparse.Namespace) -> dict:
    """vars(args) as plain values (Paths as strings; the handler, parser and task module
    left out): what the checkpoint records."""
    out = {}
    for key, value in vars(args).items():
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
