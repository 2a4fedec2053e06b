"""Correctness of the benchmark harness (edfast/benchmarks): every registered case builds and
every competitor runs a tiny step; competitors that can share noise give the same loss; the
CSV, Markdown and floor arithmetic. No test asserts a time (DESIGN §6)."""
import csv
import math

import pytest
import torch

import edfast
import edfast.reference as reference
from edfast.benchmarks import competitors, figures, memory, report, run
from edfast.benchmarks.cases import CASES, Case, Check, Setup
from edfast.benchmarks.timing import summarise, time_interleaved
from edfast.benchmarks.floor import Floor, energy_flops, fraction_of_floor, measure_floor

TINY_B, TINY_M = 3, 4


def _tiny(case: Case) -> Setup:
    return case.build("cpu", TINY_B, TINY_M)


def test_registry_has_the_issue_cases():
    assert {"ising-25x25", "rbm-784x500", "potts-100x5", "mlp-2x128x4", "conv-28x28"} <= set(CASES)
    for case in CASES.values():
        assert case.m in case.ms["quick"] and set(case.ms) == {"quick", "full"}
        assert {"cpu", "cuda"} <= set(case.batch)
    assert "bare network" in competitors.names(CASES["mlp-2x128x4"])
    assert "ebmkit" in competitors.names(CASES["mlp-2x128x4"])
    assert "ebmkit" not in competitors.names(CASES["ising-25x25"])  # Gaussian only


@pytest.mark.parametrize("case_name", sorted(CASES))
def test_every_competitor_runs_one_step(case_name):
    case = CASES[case_name]
    setup = _tiny(case)
    for name in competitors.names(case):
        if name == "reference compiled":
            continue  # compiling every case takes minutes: one compiled test below
        try:
            step = competitors.make_step(name, setup)
        except competitors.Unavailable:
            continue
        step()
        grads = [p.grad for p in setup.energy.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name


@pytest.mark.parametrize("case_name", sorted(CASES))
def test_edfast_and_reference_agree_on_shared_noise(case_name):
    """The reference evaluated on edfast.perturb's negatives for the seed equals edfast's
    loss for that seed, chunked or not."""
    setup = _tiny(CASES[case_name])
    x, q, m = setup.x, setup.perturbation, setup.m
    _, negatives = edfast.perturb(x, q, m, seed=11)
    expected = reference.energy_discrepancy_from_samples(setup.energy, x, negatives, setup.w)
    for chunk in (None, 3):
        got = edfast.energy_discrepancy(setup.energy, x, q, m, setup.w, seed=11, chunk_size=chunk)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_ebmkit_matches_the_authors_reference_for_the_same_torch_seed():
    pytest.importorskip("ebm")
    from ebm import EnergyDiscrepancy

    setup = _tiny(CASES["mlp-2x128x4"])
    torch.manual_seed(5)
    theirs = EnergyDiscrepancy(sigma=1.0, m_particles=TINY_M, w_stable=1.0)(setup.energy, setup.x).loss
    torch.manual_seed(5)
    ours = competitors.reference_loss(setup.energy, setup.x, setup.perturbation, TINY_M, 1.0)
    # ebmkit reports the authors' v + log M (DESIGN §1).
    torch.testing.assert_close(theirs, ours + math.log(TINY_M), rtol=1e-5, atol=1e-5)


def test_compiled_reference_matches_eager():
    setup = Setup(edfast.energies.MLPEnergy(2, hidden=(8,)), torch.randn(TINY_B, 2), edfast.Gaussian(1.0), TINY_M)
    torch._dynamo.reset()
    with torch._inductor.config.patch(fallback_random=True):  # eager's RNG stream
        compiled = torch.compile(competitors.reference_loss, dynamic=False)
        torch.manual_seed(3)
        got = compiled(setup.energy, setup.x, setup.perturbation, setup.m, setup.w)
    torch.manual_seed(3)
    expected = competitors.reference_loss(setup.energy, setup.x, setup.perturbation, setup.m, setup.w)
    torch._dynamo.reset()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_authors_perturbation_steps_stay_in_the_domain():
    binary = (torch.rand(50, 40) < 0.5).float()
    flipped = competitors.authors_perturb_step(binary, edfast.Bernoulli(0.3))
    assert set(flipped.unique().tolist()) <= {0.0, 1.0} and (flipped != binary).any()
    classes = torch.randint(0, 5, (50, 40))
    moved = competitors.authors_perturb_step(classes, edfast.Categorical(5, 0.5))
    assert moved.dtype == torch.int64 and moved.min() >= 0 and moved.max() < 5


def test_unknown_competitor_is_an_error():
    with pytest.raises(KeyError):
        competitors.make_step("nope", _tiny(CASES["mlp-2x128x4"]))


def test_floor_arithmetic():
    floor = Floor(flops=4e9, min_bytes=1e9, negatives_bytes=2e9)
    assert floor.seconds(gemm_rate=1e9, bandwidth=1e9) == 4.0  # compute-bound
    assert floor.seconds(gemm_rate=1e10, bandwidth=1e9) == 1.0  # memory-bound
    assert floor.seconds_materialised(gemm_rate=1e10, bandwidth=1e9) == 5.0  # + write and read 2e9
    assert fraction_of_floor(1.0, 4.0) == 0.25
    with pytest.raises(ValueError):
        fraction_of_floor(1.0, 0.0)


def test_flop_count_of_a_linear_energy():
    energy = torch.nn.Linear(4, 1, bias=False)
    # forward 2*N*4 and the weight gradient 2*N*4 (x needs no gradient)
    assert energy_flops(energy, torch.randn(10, 4)) == 2 * (2 * 10 * 4)
    setup = Setup(energy, torch.randn(6, 4), edfast.Gaussian(1.0), 5)
    floor = measure_floor(setup)
    assert floor.flops == pytest.approx(2 * (2 * 6 * 6 * 4))  # B*(M+1) = 36 rows
    assert floor.negatives_bytes == 5 * 6 * 4 * 4
    assert floor.min_bytes == 6 * 4 * 4 + 2 * 4 * 4


def _rows():
    base = {"case": "conv-28x28", "m": 32, "status": "ok", "note": "", "flops": 1e9, "floor_s": 0.01}
    return [
        dict(base, competitor="edfast chunk=4", median_s=0.3, iqr_s=0.01, peak_bytes=50 * 2**20),
        dict(base, competitor="reference eager", median_s=0.25, iqr_s=0.02, peak_bytes=400 * 2**20),
        dict(base, competitor="ebmkit", status="unavailable", note="not installed"),
        dict(base, competitor="edfast chunk=4", m=8, median_s=0.1, peak_bytes=48 * 2**20),
        dict(base, competitor="edfast chunk=4", m=128, median_s=1.0, peak_bytes=52 * 2**20),
    ]


def test_ratios_and_checks():
    rows = _rows()
    case = CASES["conv-28x28"]
    figures.add_ratios(rows, {case.name: case})
    assert rows[0]["time_ratio"] == 1.0 and rows[1]["time_ratio"] == pytest.approx(1.2)
    assert rows[1]["memory_ratio"] == pytest.approx(0.125) and rows[2]["time_ratio"] is None
    checks = {c["label"]: c for c in figures.evaluate_all([case], rows)}
    memory_check = checks["peak memory chunk=4 / reference"]
    assert memory_check["value"] == pytest.approx(0.125) and memory_check["ok"]
    assert checks["step time chunk=4 / reference"]["ok"]
    flat = checks["peak memory chunk=4 over M=8,32,128: max/min - 1"]
    assert flat["value"] == pytest.approx(52 / 48 - 1) and flat["ok"]
    missing = figures.evaluate(Check("x", "time_ratio", 1.0, "bare network"), case, rows)
    assert missing["value"] is None and missing["ok"] is None


def test_csv_and_markdown(tmp_path):
    rows = _rows()
    figures.add_ratios(rows, {"conv-28x28": CASES["conv-28x28"]})
    for row in rows:
        row.update(cpu="Test CPU", cores=2, torch=torch.__version__, gpu="")
    path = tmp_path / "quick-cpu.csv"
    report.write_csv(rows, path)
    with open(path) as f:
        back = list(csv.DictReader(f))
    assert list(back[0]) == report.CSV_FIELDS and len(back) == len(rows)
    assert back[0]["median_ms"] == "300" and back[1]["peak_mb"] == "400" and back[0]["cpu"] == "Test CPU"
    checks = figures.evaluate_all([CASES["conv-28x28"]], rows)
    text = report.markdown(rows, checks, {"title": "t", "machine": "Test CPU"})
    assert "| conv-28x28 | 32 | reference eager | 250.0 |" in text
    assert "unavailable: not installed" in text and "## Targets" in text
    assert report.plot(rows, "median_s", "ms", 1e3, tmp_path / "t.png").exists()


def test_memory_in_a_subprocess():
    answer = memory.in_subprocess("mlp-2x128x4", "edfast", 2, "cpu", 4, timeout=120)
    assert answer.get("peak_bytes", -1) >= 0, answer
    assert "VmHWM" in answer["method"]


def test_runner_lists_and_rejects():
    assert run.main(["--list"]) == 0
    assert run.main(["--cases", "no-such-case"]) == 2


def test_interleaved_timing_gives_every_step_its_runs():
    calls = {"a": 0, "b": 0}

    def counter(name):
        def step():
            calls[name] += 1
        return step

    timings = time_interleaved({"a": counter("a"), "b": counter("b")}, "cpu", 0.0, min_runs=4, warmup=0)
    assert set(timings) == {"a", "b"} and all(t.runs >= 4 and t.median >= 0 for t in timings.values())
    assert calls["a"] == timings["a"].runs + 1  # + the untimed estimate
    assert summarise([3.0, 1.0, 2.0]).median == 2.0 and summarise([5.0]).iqr == 0.0
