"""The ``edfast`` command.

    edfast train toy --dataset 8gaussians       MLP energy on a 2D toy density
    edfast train ising --size 10 --sigma 0.1    lattice Ising coupling recovery
    edfast train discrete-toy --dataset 2spirals  32-bit Gray-coded 2D toy
    edfast train digits                         binarised 8x8 digits
    edfast bench ...                            the benchmarks (edfast.benchmarks.run)

    edfast train toy --nproc 2 --accumulate 4 --chunk-size 4 --checkpoint-every 100
    torchrun --nproc-per-node 2 -m edfast train toy ...   (the same as --nproc 2)

Every train command writes ``checkpoint.pt``, ``metrics.json`` and PNG pictures into
``--out``. :func:`main` returns the exit status instead of exiting, so it can be called
in-process: 0 on success, 2 for bad arguments (one line on stderr), 1 when training fails.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from typing import Optional, Sequence

from edfast.train import TASKS

_MODULES = {"toy": "toy", "ising": "ising", "discrete-toy": "discrete_toy", "digits": "digits"}


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line on stderr: ``prog: error: message`` (exit 2)."""

    def error(self, message):
        from edfast.train.distributed import is_secondary_rank

        # Every rank of a process group parses the same command line: rank 0 reports.
        shown = None if is_secondary_rank() else f"{self.prog}: error: {message} (see {self.prog} --help)\n"
        self.exit(2, shown)


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog):
        super().__init__(prog, max_help_position=32, width=100)


def _task_module(task: str):
    return importlib.import_module(f"edfast.train.{_MODULES[task]}")


def build_parser() -> argparse.ArgumentParser:
    import edfast
    from edfast.train import common

    parser = _Parser(prog="edfast", formatter_class=_Formatter,
                     description="Energy Discrepancy training with edfast: train the example "
                                 "models and run the benchmarks.")
    parser.add_argument("--version", action="version", version=f"edfast {edfast.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    train = commands.add_parser(
        "train", help="train an example energy-based model with Energy Discrepancy",
        formatter_class=_Formatter,
        description="Train an example model; writes checkpoint.pt, metrics.json and PNG pictures "
                    "into --out. Each task has its own --help.")
    tasks = train.add_subparsers(dest="task", metavar="TASK", parser_class=_Parser)
    tasks.required = True
    for task in TASKS:
        module = _task_module(task)
        # The module docstring, less its reST markup (``code``, :func:`name`).
        description = re.sub(r":\w+:`([^`]*)`", r"\1", module.__doc__.strip().replace("``", ""))
        sub = tasks.add_parser(task, help=module.HELP, description=description,
                               formatter_class=_Formatter)
        module.add_arguments(sub)
        common.add_common_arguments(sub, **module.DEFAULTS)
        sub.set_defaults(handler=_train, module=module, parser=sub)

    bench = commands.add_parser(
        "bench", help="run the benchmarks (edfast.benchmarks.run); arguments are passed on",
        formatter_class=_Formatter, add_help=False,
        description="Forward every following argument to edfast.benchmarks.run.main; "
                    "`edfast bench --help` shows the benchmark's own options.")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments for the benchmarks")
    bench.set_defaults(handler=_bench)
    return parser


def _train(args) -> int:
    """Check everything that can be checked (one-line errors, exit 2, before any training),
    then train: in this process, as one rank of a process group (torchrun or ``--nproc``'s
    ranks), or, with ``--nproc N``, by launching N ranks."""
    import torch

    from edfast.train import checkpoint, common, distributed

    parser, module = args.parser, args.module
    module.validate(args, parser)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"argument --out: {args.out} exists and is not a directory")
    world = distributed.world_from_env()
    if world.distributed and args.nproc not in (1, world.size):
        parser.error(f"argument --nproc: {args.nproc} inside a process group of {world.size} "
                     "(started by torchrun?); leave --nproc out there")
    size = world.size if world.distributed else args.nproc
    device = common.resolve_device(args.device, parser, world_size=size,
                                   local_rank=world.local_rank)
    common.check_split(args, size, parser)
    resume_from = None
    if args.resume:
        resume_from = checkpoint.load_for_resume(args.out / "checkpoint.pt", args.task,
                                                 common.serialisable_args(args), device, parser)
    if size > 1 and not world.distributed:
        return distributed.launch(args.argv, args.nproc)

    if args.threads:
        torch.set_num_threads(args.threads)
    distributed.init(world, device)
    run = common.Run(args.task, args, device, world=world, resume_from=resume_from)
    try:
        metrics = module.run(args, run)
    except FloatingPointError as err:
        if world.is_main:
            print(f"edfast train {args.task}: error: {err}", file=sys.stderr)
        return 1
    distributed.finish(world)
    if not args.quiet and world.is_main:
        shown = {k: v for k, v in metrics.items()
                 if isinstance(v, (int, float)) and k not in ("seed",)}
        print(f"wrote {run.out}/: checkpoint.pt, metrics.json, pictures; "
              + json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in shown.items()}))
    return 0


def _bench(args) -> int:
    try:
        from edfast.benchmarks import run as bench_run
    except ModuleNotFoundError as err:
        if err.name and (err.name == "edfast.benchmarks" or err.name.startswith("edfast.benchmarks.")):
            print("edfast bench: error: the benchmark package edfast.benchmarks is not installed "
                  "in this copy of edfast", file=sys.stderr)
            return 2
        raise
    return int(bench_run.main(list(args.bench_args)) or 0)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``edfast`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit
    status (argparse's exits, e.g. for ``--help`` or a bad argument, are returned too)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        # Everything after `bench` belongs to the benchmarks, --help included.
        return _bench(argparse.Namespace(bench_args=argv[1:]))
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.argv = argv  # --nproc relaunches the same command line as each rank
        return args.handler(args)
    except SystemExit as exc:  # --help, --version and argument errors
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)


if __name__ == "__main__":
    sys.exit(main())
