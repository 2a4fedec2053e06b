"""Correctness of the benchmark harness (edfast/benchmarks): every registered case builds and
every competitor runs a tiny step; competitors that can share noise give the same loss; the
CSV, Markdown and floor arithmetic. No test asserts a time (DESIGN §6)."""
import copy
import csv
import dataclasses
import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from stats import assert_frequency, assert_mean, assert_variance

import edfast
import edfast.reference as reference
from edfast.benchmarks import MeasurementError, competitors, figures, machine, memory, report, run
from edfast.benchmarks.cases import CASES, Case, Check, Setup
from edfast.benchmarks.timing import summarise, time_interleaved
from edfast.benchmarks.floor import Floor, energy_flops, fraction_of_floor, measure_floor

TINY_B, TINY_M = 3, 4


def _tiny(case: Case) -> Setup:
    return case.build("cpu", TINY_B, TINY_M)


def test_registry_has_the_issue_cases():
    assert {"ising-10x10", "ising-10x10-bitflip", "ising-25x25", "rbm-784x500", "potts-100x5", "mlp-2x128x4",
            "conv-28x28"} <= set(CASES)
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
    loss for that seed, chunked or not (fused where edfast has a kernel). DESIGN §6's rule:
    against the float64 reference, at most twice the float32 reference's error plus a small
    floor (a fused kernel's delta energies can be far more accurate than the float32
    reference's difference of two large energies, so the two float32 values may differ by
    more than either's error)."""
    setup = _tiny(CASES[case_name])
    x, q, m = setup.x, setup.perturbation, setup.m
    _, negatives = edfast.perturb(x, q, m, seed=11)

    def wide(t):
        return t.double() if t.is_floating_point() else t

    exact = reference.energy_discrepancy_from_samples(
        copy.deepcopy(setup.energy).double(), wide(x), wide(negatives), setup.w).item()
    ours = reference.energy_discrepancy_from_samples(setup.energy, x, negatives, setup.w).item()
    allowed = 2 * abs(ours - exact) + 1e-6 * max(1.0, abs(exact))
    for chunk in (None, 3):
        got = edfast.energy_discrepancy(setup.energy, x, q, m, setup.w, seed=11, chunk_size=chunk)
        assert got.dtype == torch.float32 and abs(got.item() - exact) <= allowed, (chunk, got.item(), exact, ours)


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


PERTURBATIONS = [
    (edfast.Gaussian(0.7), lambda g: torch.randn(64, 50, generator=g)),
    (edfast.Bernoulli(0.1), lambda g: (torch.rand(64, 50, generator=g) < 0.3).float()),
    (edfast.Bernoulli(0.1), lambda g: (torch.rand(64, 50, generator=g) < 0.3).to(torch.uint8)),
    (edfast.BitFlip(), lambda g: (torch.rand(64, 50, generator=g) < 0.3).float()),
    (edfast.Categorical(5, 0.3), lambda g: torch.randint(0, 5, (64, 50), generator=g)),
]


@pytest.mark.parametrize("q, data", PERTURBATIONS,
                         ids=["gaussian", "bernoulli-float32", "bernoulli-uint8", "bitflip", "categorical"])
def test_eager_perturb_has_edfasts_shapes_and_semantics(q, data):
    """The plain-PyTorch competitor draws what edfast.perturb draws: y from x, then every
    negative from that one y (DESIGN §1), with edfast's shapes and dtypes."""
    x = data(torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    y, negatives = competitors.eager_perturb(x, q, 8)
    ours_y, ours_negatives = edfast.perturb(x, q, 8, seed=0)
    assert (y.shape, y.dtype) == (ours_y.shape, ours_y.dtype)
    assert (negatives.shape, negatives.dtype) == (ours_negatives.shape, ours_negatives.dtype)
    steps = [(x, y), (y.unsqueeze(1).expand_as(negatives), negatives)]
    for before, after in steps:
        if isinstance(q, edfast.Gaussian):
            assert_mean(after - before, 0.0, q.scale)
            assert_variance(after - before, q.scale**2)
        elif isinstance(q, edfast.Bernoulli):
            assert set(after.unique().tolist()) <= {0, 1}
            assert_frequency(int((after != before).sum()), after.numel(), q.epsilon)
        elif isinstance(q, edfast.BitFlip):
            assert ((after != before).sum(-1) == 1).all() and set(after.unique().tolist()) <= {0, 1}
        else:
            assert after.min() >= 0 and after.max() < q.num_classes
            changed = q.epsilon * (q.num_classes - 1) / q.num_classes  # a redraw may give the same class
            assert_frequency(int((after != before).sum()), after.numel(), changed)


@pytest.mark.parametrize("w", [0.0, 1.0])
def test_eager_contrastive_logsumexp_matches_edfast(w):
    e_pos = (torch.randn(7, dtype=torch.float64) * 3).requires_grad_()
    e_neg = (torch.randn(7, 5, dtype=torch.float64) * 3).requires_grad_()
    got = competitors.eager_contrastive_logsumexp(e_pos, e_neg, w)
    expected = edfast.contrastive_logsumexp(e_pos, e_neg, w)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(torch.autograd.grad(got.sum(), (e_pos, e_neg)),
                               torch.autograd.grad(expected.sum(), (e_pos, e_neg)))


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
    base = {"case": "conv-28x28", "m": 32, "status": "ok", "note": "", "flops": 1e9, "floor_s": 0.01,
            "floor_fraction": 0.05, "iqr_s": 0.01}
    return [
        dict(base, competitor="edfast chunk=4", median_s=0.3, peak_bytes=50 * 2**20),
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


def test_memory_targets_read_a_peak_below_the_resolution_as_the_resolution():
    """A CPU peak is good to ``memory_resolution`` (RSS counters lag by up to 64 pages per
    thread): a fused step's few hundred KB read anywhere from 0 to that. The memory targets
    read such a peak as the resolution (flat; a ratio's numerator no smaller than what could
    be measured) and say so; growth above the resolution still shows; without a resolution
    (CUDA's exact figures) a zero peak still cannot be divided by."""
    case = CASES["conv-28x28"]
    flat_label, ratio_label = "peak memory chunk=4 over M=8,32,128: max/min - 1", "peak memory chunk=4 / reference"
    resolution = 512 * 2**10

    def rows_with(peaks):
        rows = _rows()
        for row in rows:
            row["memory_resolution"] = resolution
            if row["competitor"] == "edfast chunk=4":
                row["peak_bytes"] = peaks[row["m"]]
        return rows

    checks = {c["label"]: c for c in figures.evaluate_all([case], rows_with({8: 0, 32: 200 * 2**10, 128: 460 * 2**10}))}
    assert checks[flat_label]["value"] == 0.0 and checks[flat_label]["ok"]
    assert "M=8: 0.0 MB (< resolution 0.50 MB)" in checks[flat_label]["detail"]
    assert checks[ratio_label]["value"] == pytest.approx(0.5 / 400)
    grown = {c["label"]: c for c in figures.evaluate_all([case], rows_with({8: 0, 32: 2**20, 128: 2 * 2**20}))}
    assert grown[flat_label]["value"] == pytest.approx(3.0) and not grown[flat_label]["ok"]
    exact = rows_with({8: 0, 32: 2**20, 128: 2**20})
    for row in exact:
        row["memory_resolution"] = 0
    with pytest.raises(MeasurementError, match="edfast chunk=4 at M=8 has peak_bytes = 0, too small to divide by"):
        figures.evaluate_all([case], exact)
    rows = rows_with({8: 2**20, 32: 2**20, 128: 2**20})
    rows[1]["peak_bytes"] = 0  # the reference's peak is a denominator: taken as measured
    with pytest.raises(MeasurementError, match="reference eager at M=32 has peak_bytes = 0"):
        figures.evaluate_all([case], rows)


def test_a_target_without_its_figures_fails_with_its_name():
    """DESIGN §6: a target whose figures were not measured raises, naming the target and the
    cause; it never reads "n/a"."""
    case = CASES["conv-28x28"]
    rows = _rows()
    with pytest.raises(MeasurementError, match="'x' of conv-28x28: no row for bare network"):
        figures.evaluate(Check("x", "time_ratio", 1.0, "bare network"), case, rows)
    with pytest.raises(MeasurementError, match="ebmkit at M=32 is unavailable: not installed"):
        figures.evaluate(Check("x", "time_ratio", 1.0, "ebmkit"), case, rows)
    del rows[1]["peak_bytes"]  # the memory child of "reference eager" failed
    with pytest.raises(MeasurementError, match="peak memory chunk=4 / reference.*has no peak_bytes"):
        figures.evaluate_all([case], rows)
    figures.add_ratios(rows, {case.name: case})
    with pytest.raises(MeasurementError, match="reference eager at M=32: no peak_bytes"):
        report.table(rows)


def test_memory_skipped_on_purpose_reads_skipped():
    case = CASES["conv-28x28"]
    rows = _rows()
    for row in rows:
        row.pop("peak_bytes", None)
        row["memory_skipped"] = "--no-memory"
    figures.add_ratios(rows, {case.name: case})
    checks = {c["label"]: c for c in figures.evaluate_all([case], rows)}
    assert checks["peak memory chunk=4 / reference"]["detail"] == "skipped: peak memory not measured (--no-memory)"
    assert checks["step time chunk=4 / reference"]["ok"]
    text = report.markdown(rows, list(checks.values()), {"title": "t"})
    assert "| 50.0 | 1.0 | 5.0 |" not in text and "| skipped | skipped |" in text and "n/a" not in text


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
    assert "unavailable: not installed" in text and "## Targets" in text and "n/a" not in text
    assert report.plot(rows, "median_s", "ms", 1e3, tmp_path / "t.png").exists()


def test_memory_in_a_subprocess():
    answer = memory.in_subprocess("mlp-2x128x4", "edfast", 2, "cpu", 4, timeout=120)
    assert answer.get("peak_bytes", -1) >= 0, answer
    assert "VmHWM" in answer["method"]
    assert answer["resolution_bytes"] == 64 * os.sysconf("SC_PAGE_SIZE") * torch.get_num_threads()


@pytest.fixture
def decoy_checkout(tmp_path, monkeypatch):
    """The current directory is a source checkout whose edfast/ is not built (here: a package
    that fails on import), as when edfast is installed with `pip install .` and the harness
    is run from the checkout."""
    (tmp_path / "edfast").mkdir()
    (tmp_path / "edfast" / "__init__.py").write_text("raise ImportError('the decoy edfast of the current directory')\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_memory_child_imports_the_parents_edfast_not_the_current_directorys(decoy_checkout):
    request = '{"case": "mlp-2x128x4", "competitor": "edfast", "m": 2, "device": "cpu", "batch": 4}'
    # The decoy is real: the old command line (`python -m`, current directory first) imports it.
    old = subprocess.run([sys.executable, "-m", "edfast.benchmarks.memory", request], capture_output=True, text=True)
    assert old.returncode != 0 and "the decoy edfast" in old.stderr
    answer = memory.in_subprocess("mlp-2x128x4", "edfast", 2, "cpu", 4, timeout=120)
    assert Path(answer["edfast"]).resolve() == Path(edfast.__file__).resolve()
    assert answer["peak_bytes"] >= 0


@pytest.fixture
def tiny_suite(monkeypatch):
    """The runner on one tiny case (the MLP case at B=4, M=2, three competitors, two timed
    steps each), so that a whole run takes seconds. The memory children build the registered
    case at the B and M they are given."""
    case = CASES["mlp-2x128x4"]
    bare = tuple(c for c in case.checks if c.against == "bare network")  # the targets its competitors can evaluate
    tiny = dataclasses.replace(case, batch={"cpu": 4, "cuda": 4}, ms={"quick": (2,), "full": (2,)}, m=2,
                               checks=bare, memory_sweep=False)
    monkeypatch.setitem(CASES, tiny.name, tiny)
    monkeypatch.setattr(run, "SUITES", {"quick": (0.0, 2), "full": (0.0, 2)})
    monkeypatch.setattr(run, "_competitors_at", lambda case, m, suite: ["edfast", "reference eager", "bare network"])
    monkeypatch.setattr(machine, "gemm_rate", lambda device, seconds: 1e10)
    monkeypatch.setattr(machine, "copy_bandwidth", lambda device, seconds: 1e10)
    return ["--cases", tiny.name, "--no-plots"]


def test_the_runner_writes_under_the_current_directory_and_measures_from_a_checkout(decoy_checkout, tiny_suite, capsys):
    assert run.parse([]).out.resolve() == decoy_checkout / "bench" / "results"
    assert run.parse(["--out-dir", "x"]).out == run.parse(["--out", "x"]).out == Path("x")
    assert run.main(tiny_suite) == 0
    written = sorted(p.name for p in (decoy_checkout / "bench" / "results").iterdir())
    assert len(written) == 2 and written[0].endswith(".csv") and written[1].endswith(".md")
    out = capsys.readouterr().out
    assert str(decoy_checkout / "bench" / "results") in out  # the paths written are printed
    text = (decoy_checkout / "bench" / "results" / written[1]).read_text()
    assert "n/a" not in text and "skipped" not in text and ("| yes |" in text or "| **no** |" in text)
    with open(decoy_checkout / "bench" / "results" / written[0]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(float(r["peak_mb"]) >= 0 and float(r["median_ms"]) > 0 for r in rows)


def test_a_failing_memory_child_fails_the_run(tmp_path, tiny_suite, monkeypatch, capsys):
    monkeypatch.setattr(memory, "child_command",
                        lambda request: [sys.executable, "-c", "import sys; sys.exit('simulated crash of the child')"])
    assert run.main(tiny_suite + ["--out", str(tmp_path / "results")]) == 1
    err = capsys.readouterr().err
    assert "peak memory of mlp-2x128x4 / edfast at M=2" in err and "simulated crash of the child" in err
    assert not (tmp_path / "results").exists()  # no report with holes in it


def test_a_crashing_competitor_fails_the_run(tmp_path, tiny_suite, monkeypatch, capsys):
    def broken(name, setup):
        if name == "reference eager":
            raise RuntimeError("simulated crash of a competitor")
        return make_step(name, setup)

    make_step = competitors.make_step
    monkeypatch.setattr(competitors, "make_step", broken)
    assert run.main(tiny_suite + ["--out", str(tmp_path / "results"), "--no-memory"]) == 1
    err = capsys.readouterr().err
    assert "mlp-2x128x4 / reference eager at M=2: RuntimeError: simulated crash of a competitor" in err
    assert not (tmp_path / "results").exists()


def test_quick_suite_sweep_ms_run_edfast_and_the_eager_reference():
    """Without ``memory_sweep`` (the conv case) the quick suite's other Ms time and measure
    edfast's primary configuration and the eager reference, the headline M everything."""
    case = CASES["conv-28x28"]
    assert run._competitors_at(case, 8, "quick") == ["edfast chunk=4", "reference eager"]
    assert run._competitors_at(case, 32, "quick") == competitors.names(case)
    assert run._competitors_at(case, 8, "full") == competitors.names(case)
    assert not any(run._memory_only(case, m, s) for m in (8, 32) for s in ("quick", "full"))


def test_the_fused_cases_carry_the_issue_targets():
    for name, eager, compiled in (("ising-10x10", 10, 5), ("ising-10x10-bitflip", 10, 5),
                                  ("ising-25x25", 5, 3), ("rbm-784x500", 20, 10), ("potts-100x5", 10, 5)):
        case = CASES[name]
        assert case.memory_sweep and case.m == 32 and case.ms["quick"] == (8, 32, 128)
        assert case.batch == {"cpu": case.batch["cpu"], "cuda": 4096}
        targets = {(c.kind, c.against): c for c in case.checks}
        assert targets["time_ratio", "reference eager"].target == pytest.approx(1 / eager)
        assert targets["time_ratio", "reference compiled"].target == pytest.approx(1 / compiled)
        assert targets["memory_ratio", "reference eager"].target == 0.1
        assert targets["memory_flatness", ""].target == 0.10 and targets["memory_flatness", ""].ms == (8, 32, 128)
        assert run._competitors_at(case, 8, "quick") == ["edfast"] and run._memory_only(case, 128, "quick")
        assert not run._memory_only(case, 32, "quick") and not run._memory_only(case, 8, "full")
    assert isinstance(CASES["ising-10x10-bitflip"].build("cpu", 2, 1).perturbation, edfast.BitFlip)
    assert _tiny(CASES["ising-10x10"]).x.shape == (TINY_B, 100)


def test_memory_sweep_measures_edfast_untimed_at_the_other_ms(tmp_path, monkeypatch, capsys):
    """A case with ``memory_sweep``: the headline M times every competitor; the other Ms of
    the quick suite only measure edfast's peak (no timing, no eager reference), the table
    reads "skipped" for their times, and the flatness target is evaluated on them."""
    tiny = dataclasses.replace(
        CASES["mlp-2x128x4"], batch={"cpu": 4, "cuda": 4}, ms={"quick": (2, 3, 5), "full": (3,)}, m=3,
        memory_sweep=True, extra=(),
        checks=(Check("flat", "memory_flatness", 0.10, ms=(2, 3, 5)),
                Check("mem", "memory_ratio", 0.5, "reference eager"),
                Check("time", "time_ratio", 100.0, "reference eager")))
    monkeypatch.setitem(CASES, tiny.name, tiny)
    monkeypatch.setattr(run, "SUITES", {"quick": (0.0, 2), "full": (0.0, 2)})
    monkeypatch.setattr(competitors, "names", lambda case: ["edfast", "reference eager"])
    monkeypatch.setattr(machine, "gemm_rate", lambda device, seconds: 1e10)
    monkeypatch.setattr(machine, "copy_bandwidth", lambda device, seconds: 1e10)
    timed = []
    make_step = competitors.make_step

    def recording(name, setup):
        step = make_step(name, setup)
        timed.append((name, setup.m))
        return step

    monkeypatch.setattr(competitors, "make_step", recording)
    measured = []

    def fake_memory(case_name, competitor, m, device, batch):
        measured.append((competitor, m))
        return {"peak_bytes": (100 if competitor == "edfast" else 1000) * 2**20 + m * 2**20, "method": "fake"}

    monkeypatch.setattr(memory, "in_subprocess", fake_memory)
    out = tmp_path / "results"
    assert run.main(["--cases", tiny.name, "--no-plots", "--out", str(out)]) == 0
    assert sorted(timed) == [("edfast", 3), ("reference eager", 3)]
    assert sorted(measured) == [("edfast", 2), ("edfast", 3), ("edfast", 5), ("reference eager", 3)]
    [csv_path] = out.glob("*.csv")
    with open(csv_path) as f:
        rows = {(r["competitor"], int(r["m"])): r for r in csv.DictReader(f)}
    assert sorted(rows) == sorted(measured)
    for m in (2, 5):
        assert rows["edfast", m]["median_ms"] == "" and float(rows["edfast", m]["peak_mb"]) == 100 + m
        assert "memory sweep: not timed" in rows["edfast", m]["note"]
    assert float(rows["edfast", 3]["median_ms"]) > 0 and float(rows["reference eager", 3]["median_ms"]) > 0
    text = csv_path.with_suffix(".md").read_text()
    assert f"| {tiny.name} | 5 | edfast | skipped | skipped | skipped | 105.0 | 1.00 |" in text
    assert "n/a" not in text
    assert f"| {tiny.name} | flat | {105 / 102 - 1:.3f} | 0.1 | yes | M=2: 102.0 MB, M=3: 103.0 MB, M=5: 105.0 MB |" in text
    assert f"| {tiny.name} | mem | {103 / 1003:.3f} | 0.5 | yes |" in text
    assert "memory only (not timed)" in capsys.readouterr().out
    # --no-memory: the sweep rows stay (so the flatness target reads "skipped", not missing).
    measured.clear()
    assert run.main(["--cases", tiny.name, "--no-plots", "--no-memory", "--out", str(tmp_path / "nomem")]) == 0
    assert measured == []
    assert f"| {tiny.name} | flat | skipped | 0.1 | skipped |" in next((tmp_path / "nomem").glob("*.md")).read_text()


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


# ---------------------------------------------------------------- bench/bench_core_ops.py


@pytest.fixture(scope="module")
def core_ops():
    path = Path(__file__).resolve().parents[1] / "bench" / "bench_core_ops.py"
    spec = importlib.util.spec_from_file_location("bench_core_ops", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_core_op_competitors_give_edfasts_outputs(core_ops):
    cases = [core_ops.contrastive_case("cpu", dtype, 8, 4) for dtype in (torch.float32, torch.bfloat16)]
    cases += [core_ops.perturb_case(data(torch.Generator().manual_seed(0)), q, 3) for q, data in PERTURBATIONS]
    for case in cases:
        mine, theirs = case.edfast(), case.torch()
        assert core_ops._signature(mine) == core_ops._signature(theirs), case.name
        if case.name.startswith("contrastive"):  # same inputs, same maths: same numbers
            tolerance = {"rtol": 2e-2, "atol": 2e-2} if mine[0].dtype == torch.bfloat16 else {}
            torch.testing.assert_close(theirs, mine, **tolerance)
    assert cases[-1].work == 64 * (3 + 1) * 50


def test_core_ops_benchmark_runs_end_to_end(core_ops, tmp_path, capsys):
    assert core_ops.main(["--threads", "1", "--min-run-time", "0", "--min-runs", "2", "--out", str(tmp_path)]) == 0
    [csv_path] = tmp_path.glob("core-ops-cpu-1t-*.csv")
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9 and list(rows[0]) == core_ops.FIELDS
    assert all(float(r["speedup"]) > 0 and r["cpu"] and r["threads"] == "1" for r in rows)
    assert "n/a" not in csv_path.with_suffix(".md").read_text()
    assert str(csv_path) in capsys.readouterr().out


def test_a_failed_core_op_measurement_fails_the_run(core_ops, tmp_path, monkeypatch, capsys):
    def broken():
        raise RuntimeError("simulated failure")

    case = core_ops.contrastive_case("cpu", torch.float32, 8, 4)
    monkeypatch.setattr(core_ops, "build_cases", lambda device: [dataclasses.replace(case, torch=broken)])
    assert core_ops.main(["--min-run-time", "0", "--min-runs", "2", "--out", str(tmp_path / "out")]) == 1
    assert f"{case.name}: RuntimeError: simulated failure" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
