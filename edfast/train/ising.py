"""``edfast train ising``: recover the couplings of a lattice Ising model from samples.

Data: ``--num-data`` samples of p(s) ∝ exp(s^T J s), J = sigma * (periodic size x size
lattice adjacency), from block-Gibbs chains (:func:`edfast.data.sample_lattice_ising`).
Model: :class:`edfast.energies.Ising` without bias (a full D x D coupling, no lattice mask),
trained with Energy Discrepancy under a Bernoulli(epsilon) or bit-flip perturbation (M=32,
w=1 as in the papers) and Adam (lr 1e-3, batch 256) with an l1 penalty on the couplings
(``l1 * sum|J_ij| / D``; without it the D*D - 4D off-lattice entries fit the sampling noise
of the data and the RMSE rises again after a few hundred steps; Adam at 1e-2 overshoots the
lattice couplings). Metric: the RMSE between learned and true J over training and its
negative log (the papers' table metric, higher is better).
"""

from __future__ import annotations

import argparse

import torch

from edfast.train import common, plots

NAME = "ising"
HELP = "lattice Ising model: learn the couplings J from Gibbs samples"
DEFAULTS = dict(steps=1000, batch_size=256, m=32, lr=1e-3, out="out/ising")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("task")
    g.add_argument("--size", type=common.positive_int, default=10,
                   help="lattice side n (D = n*n spins, periodic), >= 2 (default: %(default)s)")
    g.add_argument("--sigma", type=common.finite_float, default=0.1,
                   help="coupling strength: J = sigma * lattice adjacency (default: %(default)s)")
    g.add_argument("--perturbation", type=common.choice_of(("bernoulli", "bitflip"), "perturbation"),
                   default="bernoulli", help="bernoulli (flip each spin w.p. --epsilon) or bitflip "
                   "(flip one uniform spin) (default: %(default)s)")
    g.add_argument("--epsilon", type=common.probability, default=0.1,
                   help="Bernoulli flip probability (default: %(default)s)")
    g.add_argument("--l1", type=common.nonneg_float, default=1.0,
                   help="l1 penalty: adds l1 * sum|J_ij| / D to the loss (default: %(default)s)")
    g.add_argument("--num-data", type=common.positive_int, default=2000,
                   help="training samples (independent Gibbs chains) (default: %(default)s)")
    g.add_argument("--data-sweeps", type=common.positive_int, default=1000,
                   help="Gibbs sweeps per data chain (default: %(default)s)")
    g.add_argument("--eval-every", type=common.nonneg_int, default=0,
                   help="steps between RMSE evaluations (default: 0 = steps/50)")


def validate(args, parser) -> None:
    if args.size < 2:
        parser.error(f"argument --size: must be >= 2, got {args.size}")


def run(args, run: common.Run) -> dict:
    from edfast.data import lattice_coupling, sample_lattice_ising
    from edfast.energies import Ising
    from edfast.metrics import coupling_rmse, neg_log_rmse

    device = run.device
    d = args.size * args.size
    true_j = lattice_coupling(args.size, args.sigma).to(device)
    data = sample_lattice_ising(args.size, args.sigma, args.num_data, args.data_sweeps,
                                generator=run.generator(10), device=device).to(run.dtype)
    model = Ising(d, bias=False).to(device, run.dtype)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    perturbation = common.binary_perturbation(args)
    # Kept in run.history so that a resumed run's curve starts where the checkpoint's ended.
    curve = run.history.setdefault("rmse_curve", {"steps": [], "rmse": []})
    curve_steps, curve_rmse = curve["steps"], curve["rmse"]
    l1_penalty = (lambda: args.l1 * model.coupling.abs().sum() / d) if args.l1 else None
    step = run.ed_step(model, data, perturbation, opt, penalty=l1_penalty)

    def evaluate(step_index):
        with torch.no_grad():
            rmse = coupling_rmse(model.coupling, true_j)
        curve_steps.append(step_index)
        curve_rmse.append(rmse)
        return {"rmse": f"{rmse:.2e}"}

    run.train(step, on_eval=evaluate, eval_every=args.eval_every or max(1, args.steps // 50))
    if not run.is_main:  # rank 0 evaluates and writes
        return {}

    metrics = run.base_metrics()
    with torch.no_grad():
        learned = model.coupling.detach()
    metrics.update({
        "size": args.size, "sigma": args.sigma, "perturbation": args.perturbation,
        "rmse": coupling_rmse(learned, true_j), "neg_log_rmse": neg_log_rmse(learned, true_j),
        "rmse_curve": {"steps": curve_steps, "rmse": curve_rmse},
    })
    title = (f"edfast ED: lattice Ising {args.size}x{args.size}, sigma={args.sigma:g}, "
             f"{args.perturbation}, {args.steps} steps")
    plots.ising_couplings(learned, true_j, curve_steps, curve_rmse, run.path("couplings.png"),
                          title=title)
    run.save(model, metrics, true_coupling=true_j.cpu(),
             model_config={"class": "Ising", "dim": d, "bias": False})
    return metrics
