"""``edfast train discrete-toy``: an MLP energy on 2D toy data encoded as 32-bit Gray codes.

Data: a continuous 2D toy dataset encoded as in ALOE and the discrete ED papers
(:class:`edfast.data.GrayCode`: per coordinate a sign bit and 15 Gray-coded magnitude bits,
scale from 5000 samples). Model: :class:`edfast.energies.MLPEnergy` on the 32 bits, trained
with Energy Discrepancy under Bernoulli(epsilon) or bit-flip perturbations (M=32, w=1).
Evaluation: Gibbs samples from the model (:func:`edfast.samplers.gibbs`, started from uniform
bits), their exponential-Hamming MMD to held-out data (bandwidth 0.1; the papers report it
x 1e4), and the NLL by importance sampling from the uniform proposal, as in those papers
(a rough, optimistic estimate for a model this far from uniform).
"""

from __future__ import annotations

import argparse

import torch

from edfast.train import common, plots

NAME = "discrete-toy"
HELP = "MLP energy on 2D toy data encoded as 32-bit Gray codes (Bernoulli/bit-flip)"
DEFAULTS = dict(steps=3000, batch_size=128, m=32, lr=1e-3, out="out/discrete-toy")
LIM = 4.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edfast.data import TOY_DATASETS

    g = parser.add_argument_group("task")
    g.add_argument("--dataset", type=common.choice_of(TOY_DATASETS, "dataset"), default="2spirals",
                   metavar="NAME", help=f"one of {', '.join(TOY_DATASETS)} (default: %(default)s)")
    g.add_argument("--perturbation", type=common.choice_of(("bernoulli", "bitflip"), "perturbation"),
                   default="bernoulli", help="bernoulli (flip each bit w.p. --epsilon) or bitflip "
                   "(flip one uniform bit) (default: %(default)s)")
    g.add_argument("--epsilon", type=common.probability, default=0.1,
                   help="Bernoulli flip probability (default: %(default)s)")
    g.add_argument("--hidden", type=common.positive_int, nargs="+", default=[256, 256, 256],
                   metavar="WIDTH", help="hidden layer widths of the MLP energy (default: 256 256 256)")
    g.add_argument("--activation", default="silu",
                   type=common.choice_of(("softplus", "silu", "relu", "leaky_relu", "tanh", "elu"),
                                         "activation"),
                   help="MLP activation (default: %(default)s)")
    g.add_argument("--data-size", type=common.positive_int, default=100_000,
                   help="training points drawn once and encoded (default: %(default)s)")
    e = parser.add_argument_group("evaluation")
    e.add_argument("--num-samples", type=common.positive_int, default=2000,
                   help="Gibbs chains for the picture and the MMD (default: %(default)s)")
    e.add_argument("--sample-sweeps", type=common.nonneg_int, default=30,
                   help="Gibbs sweeps per chain (a sweep updates all 32 bits) (default: %(default)s)")
    e.add_argument("--nll-samples", type=common.nonneg_int, default=200_000,
                   help="uniform proposal draws for the importance-sampled NLL; 0 skips it "
                        "(default: %(default)s)")


def validate(args, parser) -> None:
    if args.num_samples < 2:
        parser.error("argument --num-samples: must be >= 2 (the MMD needs two samples)")


def run(args, run: common.Run) -> dict:
    from edfast.data import GrayCode, sample_toy
    from edfast.energies import MLPEnergy
    from edfast.metrics import exp_hamming_mmd, nll_importance
    from edfast.samplers import gibbs

    device = run.device
    code = GrayCode.from_data(sample_toy(args.dataset, 5000, generator=run.data_seed(2)))
    dtype = run.dtype
    data = code.encode(sample_toy(args.dataset, args.data_size, generator=run.data_seed(0))).to(device, dtype)
    test = code.encode(sample_toy(args.dataset, args.num_samples, generator=run.data_seed(1))).to(device, dtype)
    bits = data.shape[1]
    model = MLPEnergy(bits, hidden=tuple(args.hidden), activation=args.activation).to(device, dtype)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    perturbation = common.binary_perturbation(args)
    run.train(run.ed_step(model, data, perturbation, opt))
    if not run.is_main:  # rank 0 evaluates and writes
        return {}
    model.eval()

    sampler_gen = run.generator(1)
    x0 = torch.randint(0, 2, (args.num_samples, bits), generator=sampler_gen, device=device).to(dtype)
    samples = gibbs(model, x0, args.sample_sweeps, generator=sampler_gen)
    metrics = run.base_metrics()
    mmd = exp_hamming_mmd(samples, test, bandwidth=0.1)
    metrics.update({"dataset": args.dataset, "perturbation": args.perturbation,
                    "mmd": mmd, "mmd_x1e4": mmd * 1e4, "sample_sweeps": args.sample_sweeps})
    if args.nll_samples:
        metrics["nll_importance"] = nll_importance(model, test, args.nll_samples,
                                                   generator=run.generator(2))
        metrics["nll_samples"] = args.nll_samples
    title = f"edfast ED: {args.dataset} as 32-bit Gray codes, {args.perturbation}, {args.steps} steps"
    plots.discrete_toy(code.decode(test), code.decode(samples), run.path("samples.png"), lim=LIM,
                       title=title)
    run.save(model, metrics, gray_code={"int_scale": code.int_scale, "bits_per_coord": code.bits_per_coord},
             model_config={"class": "MLPEnergy", "in_features": bits, "hidden": list(args.hidden),
                           "activation": args.activation})
    return metrics
