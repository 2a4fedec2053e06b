"""edfast's benchmark harness (DESIGN §6): one ED training step per case, timed for edfast and
its competitors in the same run, peak memory per case in fresh subprocesses, the floor the
step must cost on this machine, and CSV / Markdown / PNG reports.

Modules, one idea each: ``cases`` (the registry), ``competitors`` (what edfast is timed
against), ``timing``, ``memory`` (subprocess peak memory), ``machine`` (description, GEMM
rate, bandwidth), ``floor``, ``figures`` (ratios and the issues' targets), ``report``,
``run`` (``main(argv)``, behind ``bench/run.py`` and ``edfast bench``).
"""


class MeasurementError(RuntimeError):
    """A figure the report needs could not be measured. The run fails with this error (its
    message names the figure and the cause) rather than print "n/a" (DESIGN §6)."""
