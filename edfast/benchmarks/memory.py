"""Peak memory of one training step, each (case, competitor, M) in a fresh subprocess.

A fresh process per measurement, so nothing another competitor allocated (caches, compiled
graphs, a larger earlier peak) leaks into the figure.

- CUDA: ``torch.cuda.max_memory_allocated`` during one step, over what was allocated before
  it (the allocator's own figure: tensors only, not the caching allocator's reserve).
- CPU: the process's peak resident size during one step over its resident size just before
  it. After imports, data creation and one warm-up step (which holds one-time costs: oneDNN
  primitive caches and, for ``torch.compile``, the compiler itself), writing "5" to
  /proc/self/clear_refs resets VmHWM to the current RSS; the measured step's VmHWM minus
  that baseline is its peak. The child runs with ``MALLOC_MMAP_THRESHOLD_`` fixed so glibc
  returns freed large blocks to the OS instead of keeping them (which would hide the next
  step's allocations from VmHWM). Where clear_refs cannot be written, the baseline is VmHWM
  after imports and data creation and the peak includes the warm-up step (said in `method`).

    python -m edfast.benchmarks.memory '{"case": "mlp-2x128x4", "competitor": "edfast", "m": 32,
                                         "device": "cpu", "batch": 1024}'

The child imports the same edfast files as the parent (:func:`child_command`), not whatever
``edfast`` the current directory holds, and says which it imported; a child that fails is a
:class:`~edfast.benchmarks.MeasurementError`, never a missing figure.
"""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import torch

import edfast
from edfast.benchmarks import MeasurementError


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure_here(case_name: str, competitor: str, m: int, device: str, batch: int) -> Dict[str, object]:
    """Builds the case and measures one step's peak in this process (call it in a fresh one)."""
    from edfast.benchmarks import competitors
    from edfast.benchmarks.cases import CASES

    setup = CASES[case_name].build(device, batch, m)
    try:
        step = competitors.make_step(competitor, setup)
    except competitors.Unavailable as err:
        return {"unavailable": str(err)}
    gc.collect()
    if device == "cuda":
        step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return {"peak_bytes": torch.cuda.max_memory_allocated() - before, "resolution_bytes": 0,
                "method": "torch.cuda.max_memory_allocated over allocated before the step"}
    baseline_kib = _status_kib("VmHWM")  # fallback: after imports and data creation
    step()
    gc.collect()
    if _reset_hwm():
        baseline_kib = _status_kib("VmRSS")
        method = "VmHWM during the step over VmRSS before it (clear_refs reset, after 1 warm-up step)"
    else:
        method = "VmHWM over VmHWM after imports+data (clear_refs unavailable: includes warm-up)"
    step()
    # The kernel syncs per-thread RSS counters lazily (every 64 page faults), so the figures
    # are good to about 0.25 MB per thread and can read slightly below the baseline: clamp.
    peak_kib = max(_status_kib("VmHWM"), _status_kib("VmRSS")) - baseline_kib
    return {"peak_bytes": max(peak_kib, 0) * 1024, "resolution_bytes": cpu_resolution_bytes(),
            "method": method}


def cpu_resolution_bytes() -> int:
    """What a CPU peak is good to: the kernel folds each thread's RSS count into the process's
    every 64 page faults, so up to 64 pages per torch thread can be missing from VmHWM (a
    fused step whose true peak is a few hundred KB reads anywhere from 0 to about this)."""
    return 64 * os.sysconf("SC_PAGE_SIZE") * max(1, torch.get_num_threads())


# The child's program: import edfast from the directory this process imported it from (first
# on sys.path just for that import), with the current directory ("" under -c) off sys.path, so
# a source checkout's unbuilt edfast/ there can never stand in for the edfast being measured.
_BOOTSTRAP = """\
import sys
root = sys.argv.pop(1)
sys.path[:] = [root] + [p for p in sys.path if p != ""]
import edfast
sys.path.remove(root)
from edfast.benchmarks.memory import main
sys.exit(main())
"""


def child_command(request: str) -> List[str]:
    """The command line of a memory child for ``request`` (a JSON string)."""
    root = Path(edfast.__file__).resolve().parents[1]  # the directory that holds edfast/
    return [sys.executable, "-c", _BOOTSTRAP, str(root), request]


def in_subprocess(case_name: str, competitor: str, m: int, device: str, batch: int,
                  timeout: float = 600.0) -> Dict[str, object]:
    """Runs :func:`measure_here` in a fresh interpreter that imports this process's edfast and
    returns its JSON answer. Raises :class:`MeasurementError`, naming the row and the cause,
    when the child fails, times out or imported another edfast."""
    what = f"peak memory of {case_name} / {competitor} at M={m}"
    request = json.dumps({"case": case_name, "competitor": competitor, "m": m, "device": device,
                          "batch": batch})
    # The child uses this process's thread count (scratch buffers can scale with threads).
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", PYTHONWARNINGS="ignore",
               OMP_NUM_THREADS=str(torch.get_num_threads()))
    try:
        done = subprocess.run(child_command(request), env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise MeasurementError(f"{what}: the child timed out after {timeout:.0f} s") from err
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise MeasurementError(f"{what}: the child exited with status {done.returncode}: {tail[0][:300]}")
    try:
        answer = json.loads(lines[-1])
    except json.JSONDecodeError as err:
        raise MeasurementError(f"{what}: the child's answer is not JSON: {lines[-1][:300]!r}") from err
    imported = answer.get("edfast")
    if imported is None or Path(imported).resolve() != Path(edfast.__file__).resolve():
        raise MeasurementError(f"{what}: the child imported edfast from {imported}, "
                               f"this process from {edfast.__file__}")
    if "peak_bytes" not in answer:
        raise MeasurementError(f"{what}: {answer.get('unavailable', answer)}")
    return answer


def main(argv=None) -> int:
    request = json.loads((argv or sys.argv[1:])[0])
    answer = measure_here(request["case"], request["competitor"], int(request["m"]), request["device"],
                          int(request["batch"]))
    print(json.dumps(dict(answer, edfast=edfast.__file__)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
