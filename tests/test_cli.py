"""The `edfast` command: every train command runs a few steps and writes its files, seeds
reproduce runs, bad arguments exit 2 with one line, --help lists the options."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edfast.cli import main

# Tiny, fast versions of each command (a few seconds each on two CPU cores).
TINY = {
    "toy": ["--steps", "3", "--batch-size", "16", "--data-size", "500", "--num-samples", "50",
            "--sample-steps", "2", "--resolution", "16"],
    "ising": ["--size", "3", "--num-data", "64", "--data-sweeps", "2", "--steps", "3",
              "--batch-size", "16", "--m", "4"],
    "discrete-toy": ["--dataset", "8gaussians", "--steps", "3", "--batch-size", "16", "--m", "4",
                     "--hidden", "16", "--data-size", "500", "--num-samples", "16",
                     "--sample-sweeps", "1", "--nll-samples", "256"],
    "digits": ["--steps", "3", "--batch-size", "16", "--m", "4", "--hidden", "8",
               "--num-samples", "4", "--sample-sweeps", "1"],
}
PICTURES = {"toy": ["density.png"], "ising": ["couplings.png"], "discrete-toy": ["samples.png"],
            "digits": ["samples.png"]}


def _train(task, out, *extra):
    return main(["train", task, *TINY[task], "--device", "cpu", "--quiet", "--out", str(out), *extra])


def _one_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    return lines[0]


@pytest.mark.parametrize("task", list(TINY))
def test_train_writes_checkpoint_metrics_and_pictures(task, tmp_path):
    out = tmp_path / "run"
    assert _train(task, out) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == task and metrics["steps"] == 3
    assert isinstance(metrics["final_loss"], float) and metrics["train_time_s"] >= 0
    for name in PICTURES[task] + ["loss.png"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["task"] == task and ckpt["args"]["steps"] == 3 and ckpt["args"]["seed"] == 0
    assert ckpt["model"] and all(isinstance(v, torch.Tensor) for v in ckpt["model"].values())
    if task == "ising":
        assert metrics["rmse"] > 0 and "neg_log_rmse" in metrics
        assert len(metrics["rmse_curve"]["rmse"]) >= 2
    if task == "discrete-toy":
        assert "mmd" in metrics and "nll_importance" in metrics


def test_ising_bitflip_and_l1(tmp_path):
    assert _train("ising", tmp_path, "--perturbation", "bitflip", "--l1", "0.1") == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["perturbation"] == "bitflip"


def test_seed_reproduces_the_run(tmp_path):
    runs = {}
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        assert _train("toy", tmp_path / name, "--seed", seed) == 0
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())["final_loss"]
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


def _recording_loss(monkeypatch):
    """Replaces edfast.energy_discrepancy by a wrapper that records its ``fused`` argument and
    computes the loss on the generic path."""
    import edfast

    real, seen = edfast.energy_discrepancy, []

    def recording(*args, fused="auto", **kwargs):
        seen.append(fused)
        return real(*args, fused=False if fused is True else fused, **kwargs)

    monkeypatch.setattr(edfast, "energy_discrepancy", recording)
    return seen


@pytest.mark.parametrize("task", ["ising", "digits"])
@pytest.mark.parametrize("setting, expected", [(None, "auto"), ("auto", "auto"), ("on", True), ("off", False)])
def test_fused_option_reaches_the_loss_and_metrics(task, setting, expected, tmp_path, monkeypatch):
    seen = _recording_loss(monkeypatch)
    extra = [] if setting is None else ["--fused", setting]
    assert _train(task, tmp_path, *extra) == 0
    # Every training step (3) goes through energy_discrepancy with the setting.
    assert seen == [expected] * 3
    assert json.loads((tmp_path / "metrics.json").read_text())["fused"] == (setting or "auto")
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["args"]["fused"] == (setting or "auto")


@pytest.mark.parametrize("task", ["ising", "digits"])
def test_fused_on_and_off_train_alike(task, tmp_path):
    """ising (Ising under Bernoulli) and digits (BernoulliRBM) have fused kernels: --fused on
    trains through them, and its first loss is the generic path's (same seed, same negatives).
    Only the first: Adam moves every parameter by about lr whatever its gradient's size, so
    float-level differences in near-zero gradients (Ising starts at J = 0) change later steps."""
    losses = {}
    for setting in ("on", "off"):
        assert _train(task, tmp_path / setting, "--fused", setting, "--steps", "1") == 0
        metrics = json.loads((tmp_path / setting / "metrics.json").read_text())
        assert metrics["fused"] == setting and metrics["steps"] == 1
        losses[setting] = metrics["final_loss"]
    assert losses["on"] == pytest.approx(losses["off"], rel=1e-5, abs=1e-6)


def test_fused_on_without_a_fused_kernel_is_one_line(tmp_path, monkeypatch, capsys):
    seen = _recording_loss(monkeypatch)
    # An MLPEnergy wider than the fused kernels' range (widths <= 256)
    assert _train("toy", tmp_path, "--hidden", "300", "--fused", "on") == 2
    line = _one_line(capsys.readouterr().err)
    assert "argument --fused: on: fused=True: the fused MLPEnergy kernel takes up to 8 hidden layers of width " \
           "up to 256, got [300]" in line, line
    assert seen == [] and not (tmp_path / "metrics.json").exists()  # stopped before training


@pytest.mark.parametrize("argv, needle", [
    (["train", "toy", "--steps", "0"], "--steps"),
    (["train", "toy", "--steps", "many"], "--steps"),
    (["train", "toy", "--batch-size", "-3"], "--batch-size"),
    (["train", "toy", "--dataset", "nosuch"], "8gaussians, 25gaussians"),
    (["train", "discrete-toy", "--dataset", "nosuch"], "2spirals"),
    (["train", "ising", "--size", "1"], "--size"),
    (["train", "ising", "--perturbation", "gaussian"], "bernoulli, bitflip"),
    (["train", "ising", "--epsilon", "1.5"], "--epsilon"),
    (["train", "ising", "--fused", "yes"], "auto, on, off"),
    (["train", "toy", "--w", "-1"], "--w"),
    (["train", "toy", "--device", "tpu"], "--device"),
    (["train", "nosuch"], "nosuch"),
    (["train", "toy", "--no-such-option"], "--no-such-option"),
    (["frobnicate"], "frobnicate"),
])
def test_bad_arguments_exit_2_with_one_line(argv, needle, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    line = _one_line(captured.err)
    assert "error:" in line and needle in line, line


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_device_cuda_without_cuda_is_one_line(capsys, tmp_path):
    assert main(["train", "toy", "--device", "cuda", "--out", str(tmp_path)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "CUDA is not available" in line
    assert not (tmp_path / "metrics.json").exists()


def test_help_lists_commands_and_options(capsys):
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    for word in ("train", "bench"):
        assert word in top
    assert main(["train", "--help"]) == 0
    train = capsys.readouterr().out
    for task in TINY:
        assert task in train
    for task in TINY:
        assert main(["train", task, "--help"]) == 0
        text = capsys.readouterr().out
        for option in ("--steps", "--batch-size", "--m", "--out", "--device", "--seed", "--lr",
                       "--w", "--fused", "--quiet"):
            assert option in text, (task, option)
    assert main(["train", "toy", "--help"]) == 0
    assert "--dataset" in capsys.readouterr().out


def test_bench_forwards_arguments(monkeypatch, capsys):
    import types

    seen = {}

    def fake_main(argv):
        seen["argv"] = argv
        return 0

    fake = types.ModuleType("edfast.benchmarks.run")
    fake.main = fake_main
    package = types.ModuleType("edfast.benchmarks")
    package.__path__ = []
    package.run = fake
    monkeypatch.setitem(sys.modules, "edfast.benchmarks", package)
    monkeypatch.setitem(sys.modules, "edfast.benchmarks.run", fake)
    assert main(["bench", "--device", "cpu", "--help"]) == 0
    assert seen["argv"] == ["--device", "cpu", "--help"]


def test_bench_missing_package_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "edfast.benchmarks", None)  # import raises ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "edfast.benchmarks.run", raising=False)
    assert main(["bench"]) == 2
    assert "edfast.benchmarks" in _one_line(capsys.readouterr().err)


def test_console_script():
    script = Path(sys.executable).parent / "edfast"
    if not script.exists():
        script = shutil.which("edfast")
    if not script:
        pytest.skip("the edfast console script is not installed (pip install -e . installs it)")
    help_run = subprocess.run([str(script), "train", "toy", "--help"], capture_output=True,
                              text=True, timeout=120)
    assert help_run.returncode == 0 and "--steps" in help_run.stdout
    bad = subprocess.run([str(script), "train", "toy", "--steps", "0"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "--steps" in _one_line(bad.stderr)


# ------------------------------------------------------------------ large batches (issue 12)

def test_help_lists_the_large_batch_options(capsys):
    for task in TINY:
        assert main(["train", task, "--help"]) == 0
        text = capsys.readouterr().out
        for option in ("--nproc", "--accumulate", "--chunk-size", "--checkpoint-every", "--resume",
                       "--dtype"):
            assert option in text, (task, option)


@pytest.mark.parametrize("task", list(TINY))
def test_dtype_float64_trains_every_task(task, tmp_path):
    assert _train(task, tmp_path, "--dtype", "float64", "--accumulate", "2", "--chunk-size", "2") == 0
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert all(v.dtype == torch.float64 for v in ckpt["model"].values() if v.is_floating_point())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["dtype"] == "float64" and metrics["accumulate"] == 2 and metrics["chunk_size"] == 2
    assert metrics["world_size"] == 1 and metrics["rows_per_s"] > 0 and metrics["train_peak_rss_mb"] > 0


def test_checkpoint_every_writes_a_resumable_checkpoint(tmp_path):
    assert _train("toy", tmp_path, "--checkpoint-every", "1") == 0
    first = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert first["train_state"]["step"] == 3 and len(first["train_state"]["losses"]) == 3
    # Resuming a finished run with more steps continues it.
    assert _train("toy", tmp_path, "--resume", "--steps", "5") == 0
    resumed = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert resumed["train_state"]["step"] == 5
    assert resumed["train_state"]["losses"][:3] == first["train_state"]["losses"]


@pytest.mark.parametrize("argv, needle", [
    (["--dtype", "float16"], "float32, float64"),
    (["--nproc", "0"], "--nproc"),
    (["--accumulate", "0"], "--accumulate"),
    (["--chunk-size", "0"], "--chunk-size"),
    (["--checkpoint-every", "-1"], "--checkpoint-every"),
])
def test_bad_large_batch_arguments_exit_2_with_one_line(argv, needle, capsys):
    assert main(["train", "toy", *argv]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "error:" in line and needle in line, line


def test_python_dash_m_edfast():
    env = dict(__import__("os").environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    bad = subprocess.run([sys.executable, "-m", "edfast", "train", "toy", "--accumulate", "3"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 2 and "--accumulate: 3 does not divide --batch-size 128" in _one_line(bad.stderr)
