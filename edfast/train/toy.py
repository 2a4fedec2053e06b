"""``edfast train toy``: an MLP energy on a continuous 2D toy density, Gaussian perturbation.

Defaults follow the authors' 2D notebook (ED-FACTS.md): Gaussian(scale=1.0), M=4, w=1,
MLP 2-128-128-128-128-1 with Softplus, batch 128, except for a shorter run (6000 steps, not
50k) with a larger Adam step (2e-3, not 1e-3) and EMA 0.998 (not 0.999), so that the demo
trains in about a minute on two CPU cores with the eight modes of 8gaussians plainly
separated. One CPU thread by default: at this size, thread synchronisation costs more than
it saves (--threads 0 restores torch's default).
"""

from __future__ import annotations

import argparse

import torch

import edfast
from edfast.train import common, plots

NAME = "toy"
HELP = "MLP energy on a continuous 2D toy density (Gaussian perturbation)"
#: Defaults of the common options for this task.
DEFAULTS = dict(steps=6000, batch_size=128, m=4, lr=2e-3, out="out/toy", threads=1)
LIM = 4.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edfast.data import TOY_DATASETS

    g = parser.add_argument_group("task")
    g.add_argument("--dataset", type=common.choice_of(TOY_DATASETS, "dataset"), default="8gaussians",
                   metavar="NAME", help=f"one of {', '.join(TOY_DATASETS)} (default: %(default)s)")
    g.add_argument("--scale", type=common.positive_float, default=1.0,
                   help="Gaussian perturbation standard deviation s (default: %(default)s)")
    g.add_argument("--hidden", type=common.positive_int, nargs="+", default=[128, 128, 128, 128],
                   metavar="WIDTH", help="hidden layer widths of the MLP energy (default: 128 128 128 128)")
    g.add_argument("--activation", default="softplus",
                   type=common.choice_of(("softplus", "silu", "relu", "leaky_relu", "tanh", "elu"),
                                         "activation"),
                   help="MLP activation (default: %(default)s)")
    g.add_argument("--ema", type=common.unit_interval, default=0.998,
                   help="EMA decay of the parameters used for pictures and metrics; "
                        "0 turns EMA off (default: %(default)s)")
    g.add_argument("--data-size", type=common.positive_int, default=100_000,
                   help="training points drawn once from the dataset (default: %(default)s)")
    e = parser.add_argument_group("evaluation")
    e.add_argument("--num-samples", type=common.positive_int, default=2000,
                   help="Langevin chains for the samples picture (default: %(default)s)")
    e.add_argument("--sample-steps", type=common.nonneg_int, default=200,
                   help="Langevin (ULA) steps per chain (default: %(default)s)")
    e.add_argument("--sample-step-size", type=common.positive_float, default=0.01,
                   help="Langevin step size epsilon (default: %(default)s)")
    e.add_argument("--resolution", type=common.positive_int, default=200,
                   help="grid cells per side for the density picture and metrics on "
                        "[-4, 4]^2 (default: %(default)s)")


def validate(args, parser) -> None:
    if args.resolution < 2:
        parser.error("argument --resolution: must be >= 2")
    if args.num_samples < 2:
        parser.error("argument --num-samples: must be >= 2")


def run(args, run: common.Run) -> dict:
    from edfast.data import TOY_DENSITIES, sample_toy
    from edfast.energies import MLPEnergy
    from edfast.metrics import grid_density_error, grid_log_density
    from edfast.samplers import langevin

    device = run.device
    dtype = run.dtype
    data = sample_toy(args.dataset, args.data_size, generator=run.data_seed(0)).to(device, dtype)
    model = MLPEnergy(2, hidden=tuple(args.hidden), activation=args.activation).to(device, dtype)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    ema = common.EMA(model, args.ema) if args.ema > 0 else None
    perturbation = edfast.Gaussian(scale=args.scale)
    run.train(run.ed_step(model, data, perturbation, opt, ema=ema))
    if not run.is_main:  # rank 0 evaluates and writes
        return {}
    final = ema.model if ema is not None else model
    final.eval()

    log_density = grid_log_density(final, lim=LIM, resolution=args.resolution, dtype=dtype,
                                   device=device)
    x0 = (torch.rand(args.num_samples, 2, generator=run.generator(1), device=device,
                     dtype=dtype) * 2 - 1) * LIM
    samples = langevin(final, x0, args.sample_steps, args.sample_step_size, generator=run.generator(2))

    metrics = run.base_metrics()
    metrics.update({"dataset": args.dataset, "ema": args.ema})
    if args.dataset in TOY_DENSITIES:
        err = grid_density_error(final, args.dataset, lim=LIM, resolution=args.resolution,
                                 dtype=dtype, device=device)
        metrics.update({f"grid_{k}": v for k, v in err.items()})
        metrics["grid_resolution"] = args.resolution
    # Held-out fit: mean log-density (normalised on the grid) of fresh data, a number that
    # exists for every dataset (higher is better).
    test = sample_toy(args.dataset, 5000, generator=run.data_seed(1)).to(device, dtype)
    cell = 2 * LIM / args.resolution
    ij = ((test + LIM) / cell).floor().long().clamp(0, args.resolution - 1)
    metrics["heldout_mean_log_density"] = float(log_density[ij[:, 1], ij[:, 0]].mean())
    inside = ((samples.abs() <= LIM).all(1)).float().mean()
    metrics["langevin_samples_inside_square"] = float(inside)

    title = f"edfast ED: {args.dataset}, {args.steps} steps, s={args.scale:g}, M={args.m}"
    plots.toy_density(data[:20000], log_density, samples, run.path("density.png"), lim=LIM, title=title)
    extra = {"ema_model": ema.model.state_dict()} if ema is not None else {}
    run.save(model, metrics, model_config={"class": "MLPEnergy", "in_features": 2,
                                           "hidden": list(args.hidden), "activation": args.activation},
             **extra)
    return metrics
