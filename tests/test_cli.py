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


@pytest.mark.parametrize("argv, needle", [
    (["train", "toy", "--steps", "0"], "--steps"),
    (["train", "toy", "--steps", "many"], "--steps"),
    (["train", "toy", "--batch-size", "-3"], "--batch-size"),
    (["train", "toy", "--dataset", "nosuch"], "8gaussians, 25gaussians"),
    (["train", "discrete-toy", "--dataset", "nosuch"], "2spirals"),
    (["train", "ising", "--size", "1"], "--size"),
    (["train", "ising", "--perturbation", "gaussian"], "bernoulli, bitflip"),
    (["train", "ising", "--epsilon", "1.5"], "--epsilon"),
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
                       "--w", "--quiet"):
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
