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
"""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from typing import Dict

import torch


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
        return {"peak_bytes": torch.cuda.max_memory_allocated() - before,
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
    return {"peak_bytes": max(peak_kib, 0) * 1024, "method": method}


def in_subprocess(case_name: str, competitor: str, m: int, device: str, batch: int,
                  timeout: float = 600.0) -> Dict[str, object]:
    """Runs :func:`measure_here` in a fresh interpreter and returns its JSON answer (or
    ``{"error": ...}`` when the child failed)."""
    request = json.dumps({"case": case_name, "competitor": competitor, "m": m, "device": device,
                          "batch": batch})
    # The child uses this process's thread count (scratch buffers can scale with threads).
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", PYTHONWARNINGS="ignore",
               OMP_NUM_THREADS=str(torch.get_num_threads()))
    try:
        done = subprocess.run([sys.executable, "-m", "edfast.benchmarks.memory", request], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {done.returncode}: {tail[0][:200]}"}
    return json.loads(lines[-1])


def main(argv=None) -> int:
    request = json.loads((argv or sys.argv[1:])[0])
    answer = measure_here(request["case"], request["competitor"], int(request["m"]), request["device"],
                          int(request["batch"]))
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
