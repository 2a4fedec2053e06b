"""``edfast train digits``: an energy model of binarised 8x8 handwritten digits.

Data: scikit-learn's 1797 8x8 digits, pixels > 8 set to 1 (:func:`edfast.data.load_digits_binary`).
Model: a :class:`edfast.energies.BernoulliRBM` (default) or an :class:`edfast.energies.MLPEnergy`
on the 64 pixels, trained with Energy Discrepancy (M=32, w=1) under Bernoulli(epsilon) or
bit-flip perturbations. The default epsilon is 0.05: the image code of the papers uses
0.005 on 784-pixel MNIST, i.e. about 4 expected flips per step; on 64 pixels 0.005 would flip
0.3 pixels per step, so most negatives would equal the data point and carry no signal, while
0.05 flips about 3 of 64 pixels, the same scale of move. Pictures: a grid of per-pixel Gibbs
samples started from Bernoulli(mean data image) noise, beside data; metrics: their
exponential-Hamming MMD to the data and their mean Hamming distance to the nearest training
image, each also for the starting noise.
"""

from __future__ import annotations

import argparse

import torch

from edfast.train import common, plots

NAME = "digits"
HELP = "RBM or MLP energy on binarised 8x8 digits (Bernoulli/bit-flip)"
DEFAULTS = dict(steps=2000, batch_size=128, m=32, lr=1e-3, out="out/digits")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("task")
    g.add_argument("--model", type=common.choice_of(("rbm", "mlp"), "model"), default="rbm",
                   help="rbm (BernoulliRBM free energy) or mlp (MLPEnergy, two hidden layers, "
                        "SiLU) (default: %(default)s)")
    g.add_argument("--hidden", type=common.positive_int, default=128,
                   help="RBM hidden units, or MLP hidden width (default: %(default)s)")
    g.add_argument("--perturbation", type=common.choice_of(("bernoulli", "bitflip"), "perturbation"),
                   default="bernoulli", help="bernoulli (flip each pixel w.p. --epsilon) or bitflip "
                   "(flip one uniform pixel) (default: %(default)s)")
    g.add_argument("--epsilon", type=common.probability, default=0.05,
                   help="Bernoulli flip probability (default: %(default)s)")
    e = parser.add_argument_group("evaluation")
    e.add_argument("--num-samples", type=common.positive_int, default=256,
                   help="Gibbs chains for the MMD; the first 64 are shown (default: %(default)s)")
    e.add_argument("--sample-sweeps", type=common.nonneg_int, default=100,
                   help="Gibbs sweeps per chain (a sweep updates all 64 pixels) (default: %(default)s)")


def validate(args, parser) -> None:
    if args.num_samples < 2:
        parser.error("argument --num-samples: must be >= 2 (the MMD needs two samples)")


def run(args, run: common.Run) -> dict:
    from edfast.data import load_digits_binary
    from edfast.energies import BernoulliRBM, MLPEnergy
    from edfast.metrics import exp_hamming_mmd, hamming_distance
    from edfast.samplers import gibbs

    device = run.device
    data = load_digits_binary().to(device, run.dtype)
    d = data.shape[1]
    if args.model == "rbm":
        model = BernoulliRBM(d, args.hidden)
        config = {"class": "BernoulliRBM", "visible": d, "hidden": args.hidden}
    else:
        model = MLPEnergy(d, hidden=(args.hidden, args.hidden), activation="silu")
        config = {"class": "MLPEnergy", "in_features": d, "hidden": [args.hidden] * 2,
                  "activation": "silu"}
    model = model.to(device, run.dtype)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    perturbation = common.binary_perturbation(args)
    run.train(run.ed_step(model, data, perturbation, opt))
    if not run.is_main:  # rank 0 evaluates and writes
        return {}
    model.eval()

    gen = run.generator(1)
    mean = data.mean(0).clamp(0.02, 0.98)
    x0 = torch.bernoulli(mean.expand(args.num_samples, d), generator=gen)
    samples = gibbs(model, x0, args.sample_sweeps, generator=gen)
    order = torch.randperm(len(data), generator=run.generator(2), device=device)
    reference = data[order[:max(args.num_samples, 500)]]
    metrics = run.base_metrics()
    mmd = exp_hamming_mmd(samples, reference, bandwidth=0.1)
    noise_mmd = exp_hamming_mmd(x0, reference, bandwidth=0.1)
    metrics.update({"model": args.model, "hidden": args.hidden, "perturbation": args.perturbation,
                    "epsilon": args.epsilon, "sample_sweeps": args.sample_sweeps,
                    "mmd_samples_vs_data": mmd, "mmd_start_noise_vs_data": noise_mmd,
                    # Pixels to change to reach the nearest training image (0 = a copy).
                    "nearest_data_hamming_samples": _nearest(hamming_distance, samples, data),
                    "nearest_data_hamming_start_noise": _nearest(hamming_distance, x0, data)})
    title = f"edfast ED: 8x8 digits, {args.model}, {args.perturbation}, {args.steps} steps"
    shown = min(64, args.num_samples)
    plots.image_grid(samples[:shown], reference[:shown], run.path("samples.png"), side=8, title=title)
    run.save(model, metrics, model_config=config)
    return metrics


def _nearest(hamming_distance, x, data) -> float:
    return float(hamming_distance(x, data).min(1).values.double().mean())
