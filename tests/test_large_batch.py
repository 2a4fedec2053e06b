"""Large-batch training with `edfast train` (issue 12): the same global batch gives the same
training however it is split.

The toy and ising tasks run a few float64 steps; the final parameters (model and EMA) and the
loss curve of each split are compared with a 1-process, full-batch run to 1e-10 relative:
2 processes over gloo (`--nproc 2`, and `torchrun`), `--accumulate 4`, `--chunk-size 4` (on
the generic path, where chunking happens). A run SIGKILLed after a checkpoint and resumed
ends bit for bit where an uninterrupted run ends. Bad splits and bad resumes exit 2 with one
line before training.

The Ising comparisons run without the l1 penalty (`--l1 0`): the couplings start at J = 0,
where many entries have a gradient that is zero in exact arithmetic, and the penalty's
subgradient sign(J) turns the rounding noise of those entries (1e-17, different for every
summation order) into full Adam steps, so the training itself depends on rounding. The split
of the penalty (added once per step, to the last micro-batch) is checked on its own, from a
random J, by :func:`test_penalty_is_added_once_per_step`; the bit-exact resume keeps l1.

"Relative" is over the whole parameter vector: the output bias of the toy MLP has a gradient
that is zero in exact arithmetic (ED is invariant to a constant shift of U), so Adam's update
of it is normalised rounding noise (about 1e-11 absolute), which is large relative to that
one number but not to the parameters.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from edfast.cli import main

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["--dtype", "float64", "--device", "cpu", "--quiet", "--threads", "1"]
TASKS = {
    "toy": ["toy", "--batch-size", "16", "--m", "8", "--hidden", "32", "32", "--data-size", "500",
            "--num-samples", "20", "--sample-steps", "1", "--resolution", "8"],
    "ising": ["ising", "--size", "3", "--num-data", "64", "--data-sweeps", "2", "--batch-size", "16",
              "--m", "8", "--l1", "0"],
}
STEPS = ["--steps", "4"]


def _argv(task, out, *extra):
    return ["train", *TASKS[task], *COMMON, "--out", str(out), *extra]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _run_subprocess(argv, *prefix):
    proc = subprocess.run([sys.executable, *prefix, *argv], env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _load(out):
    return torch.load(Path(out) / "checkpoint.pt", weights_only=True)


def _params(ckpt):
    """Every trained number: the model's and the EMA's parameters, flattened."""
    tensors = [v.flatten() for v in ckpt["model"].values()]
    tensors += [v.flatten() for v in (ckpt.get("ema_model") or {}).values()]
    return torch.cat(tensors)


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def assert_same_training(got, expected, tol=1e-10):
    losses = torch.tensor(got["train_state"]["losses"], dtype=torch.float64)
    want = torch.tensor(expected["train_state"]["losses"], dtype=torch.float64)
    assert losses.shape == want.shape and len(want) == expected["train_state"]["step"]
    assert _rel(losses, want) <= tol, (losses, want)
    assert _rel(_params(got), _params(expected)) <= tol


@pytest.fixture(scope="module")
def baselines(tmp_path_factory):
    """The reference of each task: one process, the whole batch, the default (fused) path."""
    out = {}
    for task in TASKS:
        path = tmp_path_factory.mktemp(f"{task}-base")
        assert main(_argv(task, path, *STEPS)) == 0
        out[task] = _load(path)
    return out


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("split", [["--accumulate", "4"], ["--chunk-size", "4", "--fused", "off"]],
                         ids=["accumulate4", "chunk4-generic"])
def test_micro_batches_and_chunks_match_full_batch(task, split, baselines, tmp_path):
    """--accumulate 4 (four micro-batches, row offsets 0, 4, 8, 12) and --chunk-size 4 on the
    generic path (M=8: two chunks of negatives under recomputation)."""
    assert main(_argv(task, tmp_path, *STEPS, *split)) == 0
    got = _load(tmp_path)
    assert got["metrics"]["world_size"] == 1
    assert_same_training(got, baselines[task])


@pytest.mark.parametrize("task", list(TASKS))
def test_two_processes_over_gloo_match_full_batch(task, baselines, tmp_path, monkeypatch):
    """--nproc 2 (the launcher runs in this process, the two ranks are subprocesses)."""
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    assert main(_argv(task, tmp_path, *STEPS, "--nproc", "2")) == 0
    got = _load(tmp_path)
    assert got["metrics"]["world_size"] == 2
    assert len(got["metrics"]["train_peak_rss_mb_per_rank"]) == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files
    assert_same_training(got, baselines[task])


def test_torchrun_matches_full_batch(baselines, tmp_path):
    """The same command started by torchrun: 2 ranks, --standalone rendezvous, 2 micro-batches
    each. `--` after `-m edfast` keeps torchrun from reading edfast's options (it would take
    --m for one of its own)."""
    _run_subprocess(_argv("toy", tmp_path, *STEPS, "--accumulate", "2"), "-m",
                    "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
                    "edfast", "--")
    got = _load(tmp_path)
    assert got["metrics"]["world_size"] == 2 and got["metrics"]["accumulate"] == 2
    assert_same_training(got, baselines["toy"])


@pytest.mark.parametrize("task", list(TASKS))
def test_sigkill_after_checkpoint_then_resume_is_bit_exact(task, tmp_path):
    steps = ["--steps", "600"] + (["--l1", "1.0"] if task == "ising" else [])
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(_argv(task, whole, *steps)) == 0
    argv = _argv(task, killed, *steps, "--checkpoint-every", "5")
    proc = subprocess.Popen([sys.executable, "-m", "edfast", *argv], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt_path = killed / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not ckpt_path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it was killed: {err[-2000:]}"
    step = _load(killed)["train_state"]["step"]
    assert 0 < step < 600 and step % 5 == 0
    assert not (killed / "metrics.json").exists()  # killed before the end

    assert main(argv + ["--resume"]) == 0
    got, want = _load(killed), _load(whole)
    assert got["train_state"]["losses"] == want["train_state"]["losses"]
    assert got["train_state"]["history"] == want["train_state"]["history"]
    assert torch.equal(_params(got), _params(want))
    assert got["metrics"]["final_loss"] == want["metrics"]["final_loss"]


@pytest.mark.parametrize("split", [dict(accumulate=4), dict(accumulate=2, chunk_size=3, fused=False)])
def test_penalty_is_added_once_per_step(split):
    """The l1 penalty of the ising task under micro-batches: the same updates as the whole
    batch, from a random J (away from the l1 kink)."""
    import edfast
    from edfast.energies import Ising
    from edfast.train.distributed import World
    from edfast.train.ed_step import make_step

    data = torch.randint(0, 2, (64, 9), generator=torch.Generator().manual_seed(1)).double()

    def train(accumulate=1, chunk_size=None, fused="auto"):
        torch.manual_seed(3)
        model = Ising(9, bias=False).double()
        with torch.no_grad():
            model.weight.normal_(0, 0.1)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        step = make_step(model, data, edfast.Bernoulli(0.1), opt, batch_size=16, m=8, w=1.0,
                         chunk_size=chunk_size, fused=fused, accumulate=accumulate, world=World(),
                         index_generator=torch.Generator().manual_seed(4),
                         seed_generator=torch.Generator().manual_seed(5),
                         penalty=lambda: 1.0 * model.coupling.abs().sum() / 9)
        losses = torch.stack([step(i) for i in range(3)])
        return losses, model.weight.detach().clone()

    want_losses, want_weight = train()
    got_losses, got_weight = train(**split)
    assert _rel(got_losses, want_losses) <= 1e-12
    assert _rel(got_weight, want_weight) <= 1e-12


def test_checkpoint_holds_every_random_source_and_loads_weights_only(baselines):
    state = baselines["toy"]["train_state"]
    assert state["step"] == 4 and state["ema"] and state["optimizer"]["state"]
    assert {"torch", "python", "numpy", "generators"} <= set(state["rng"])
    assert set(state["rng"]["generators"]) == {"index", "loss"}


def test_atomic_save_leaves_the_old_checkpoint_when_a_write_fails(tmp_path, monkeypatch):
    from edfast.train import checkpoint

    path = tmp_path / "checkpoint.pt"
    checkpoint.atomic_save({"step": 1}, path)

    def torn(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.atomic_save({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


# ------------------------------------------------------------------ bad input: exit 2


def _one_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    return lines[0]


@pytest.fixture(scope="module")
def ising_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ising-ckpt")
    assert main(_argv("ising", path, "--steps", "2")) == 0
    return path


@pytest.mark.parametrize("extra, needle", [
    (["--accumulate", "3"], "--accumulate: 3 does not divide --batch-size 16"),
    (["--nproc", "3"], "--batch-size: 16 is not divisible by the world size 3"),
    (["--nproc", "2", "--accumulate", "3"], "3 does not divide the per-process batch 8"),
    (["--resume"], "no checkpoint to resume from"),
])
def test_bad_split_or_missing_checkpoint_exits_2_before_training(extra, needle, tmp_path, capsys):
    out = tmp_path / "run"
    start = time.perf_counter()
    assert main(_argv("toy", out, *STEPS, *extra)) == 2
    line = _one_line(capsys.readouterr().err)
    assert "error:" in line and needle in line, line
    assert not out.exists() and time.perf_counter() - start < 30  # nothing launched or written


@pytest.mark.parametrize("env, needle", [
    ({"WORLD_SIZE": "3", "RANK": "0"}, "not divisible by the world size 3"),
    ({"WORLD_SIZE": "2", "RANK": "0"}, "--nproc: 4 inside a process group of 2"),
])
def test_bad_world_under_torchrun_exits_2(env, needle, tmp_path, capsys, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    extra = ["--nproc", "4"] if "--nproc" in needle else []
    assert main(_argv("toy", tmp_path / "run", *STEPS, *extra)) == 2
    assert needle in _one_line(capsys.readouterr().err)


def test_only_rank_0_reports_argument_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "1")
    assert main(_argv("toy", tmp_path / "run", *STEPS)) == 2
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("task, extra, needle", [
    ("toy", [], "is a checkpoint of `edfast train ising`, not toy"),
    ("ising", ["--lr", "0.01"], "was written with --lr 0.001, this run has --lr 0.01"),
    ("ising", ["--m", "4"], "was written with --m 8, this run has --m 4"),
    ("ising", ["--dtype", "float32"], "was written with --dtype float64, this run has --dtype float32"),
    ("ising", ["--steps", "1"], "is at step 2, beyond --steps 1"),
])
def test_incompatible_resume_exits_2_before_training(task, extra, needle, ising_checkpoint, capsys):
    before = (ising_checkpoint / "checkpoint.pt").read_bytes()
    assert main(_argv(task, ising_checkpoint, "--steps", "3", "--resume", *extra)) == 2
    line = _one_line(capsys.readouterr().err)
    assert "argument --resume:" in line and needle in line, line
    assert (ising_checkpoint / "checkpoint.pt").read_bytes() == before


def test_resume_with_other_split_continues(ising_checkpoint, tmp_path, baselines):
    """How the work is split may change on resume (--nproc, --accumulate, --chunk-size): the
    resumed run equals the uninterrupted one to float tolerance."""
    import shutil

    resumed = tmp_path / "resumed"
    shutil.copytree(ising_checkpoint, resumed)
    assert main(_argv("ising", resumed, *STEPS, "--resume", "--accumulate", "2")) == 0
    assert_same_training(_load(resumed), baselines["ising"])
