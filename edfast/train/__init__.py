"""The ``edfast train`` commands: one module per task, shared pieces in ``common``/``plots``.

Each task module exposes ``NAME``, ``HELP``, ``add_arguments(parser)``,
``validate(args, parser)`` (argument checks argparse cannot express; call
``parser.error``) and ``run(args, run: common.Run) -> dict`` (trains, writes pictures, returns
the task's metrics). :func:`edfast.cli.main` wires them up.
"""

TASKS = ("toy", "ising", "discrete-toy", "digits")
