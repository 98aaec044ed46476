"""PEtab problems: the official suite's cases, Benchmark Collection problems, the gradient against
finite differences, and one-line errors for bad problems."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("petab")
pytest.importorskip("libsbml")

from stiffml.petab import PEtabError, Problem  # noqa: E402
from stiffml.petab.suite import find_cases, run_case  # noqa: E402

CASES = Path(__file__).parents[1] / "petab_cases"
BENCHMARK = Path(__file__).resolve().parents[3] / "shared" / "petab-benchmark"
# the log-likelihood another PEtab tool computes at the nominal parameters (BENCHMARK/README.md)
LLH = {
    "Boehm_JProteomeRes2014": -138.22199693517703,
    "Crauste_CellSystems2017": -190.96521897435176,
    "Fujita_SciSignal2010": 53.08377736998929,
    "Zheng_PNAS2012": 278.33353271001477,
}


def stiffml(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stiffml", *args], capture_output=True, text=True, timeout=600)


def central_difference(problem: Problem, theta: np.ndarray, h: float = 1e-5) -> np.ndarray:
    out = np.zeros_like(theta)
    for k in range(theta.size):
        up, down = theta.copy(), theta.copy()
        up[k] += h
        down[k] -= h
        out[k] = (problem.nllh(up) - problem.nllh(down)) / (2 * h)
    return out


# ------------------------------------------------------------------------------- conformance
@pytest.mark.parametrize("case", find_cases(CASES), ids=lambda p: p.name)
def test_official_case_passes(case: Path) -> None:
    outcome = run_case(case)
    assert outcome.status == "passed", outcome.reason


def test_a_wrong_expectation_fails_the_case(tmp_path: Path) -> None:
    case = tmp_path / "0001"
    shutil.copytree(CASES / "0001", case)
    solution = case / "_0001_solution.yaml"
    solution.write_text(solution.read_text().replace("llh: -0.84750169713188", "llh: -0.85"))
    outcome = run_case(case)
    assert outcome.status == "failed" and "llh" in outcome.reason


@pytest.mark.slow
def test_suite_command_prints_the_summary() -> None:
    done = stiffml("petab-suite", str(CASES))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith(f"{len(find_cases(CASES))} passed, 0 failed, 0 unsupported")
    missing = stiffml("petab-suite", str(CASES / "nope"))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [f"stiffml: error: suite folder '{CASES / 'nope'}' not found"]


# ------------------------------------------------------------------------------- real problems
@pytest.mark.skipif(not BENCHMARK.is_dir(), reason="../shared/petab-benchmark is not here")
# the two largest run in the full suite only (the quick loop keeps under 3 minutes)
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in ("Fujita_SciSignal2010", "Zheng_PNAS2012")
                                  else n for n in sorted(LLH)])
def test_benchmark_problem_matches_the_published_likelihood(name: str) -> None:
    problem = Problem(BENCHMARK / name / f"{name}.yaml")
    assert abs(-problem.nllh() - LLH[name]) < 1e-3
    sim = problem.simulate()
    assert len(sim) == len(problem.measurements) and np.all(np.isfinite(sim["simulation"]))
    assert list(sim["observableId"]) == list(problem.measurements["observableId"])


@pytest.mark.slow
@pytest.mark.skipif(not BENCHMARK.is_dir(), reason="../shared/petab-benchmark is not here")
def test_gradient_through_the_stiff_solver_matches_finite_differences_on_boehm() -> None:
    name = "Boehm_JProteomeRes2014"
    problem = Problem(BENCHMARK / name / f"{name}.yaml", rtol=1e-11, atol=1e-16)
    theta = problem.nominal + np.linspace(-0.2, 0.2, problem.nominal.size)  # away from the optimum
    value, grad = problem.value_and_gradient(theta)
    assert value == pytest.approx(problem.nllh(theta), rel=1e-9)
    fd = central_difference(problem, theta)
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-4 * np.abs(fd).max())
    assert set(problem.gradient(theta)) == set(problem.parameter_ids)


def test_gradient_with_preequilibration_and_reinitialised_species_matches_finite_differences() -> None:
    # case 0010: pre-equilibration, one species reinitialised, an initial assignment overridden
    problem = Problem(next((CASES / "0010").glob("_0010.yaml")), rtol=1e-11, atol=1e-14)
    theta = problem.nominal + 0.05
    _, grad = problem.value_and_gradient(theta)
    fd = central_difference(problem, theta)
    assert np.abs(fd).max() > 1e-3
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-6)


def test_parameters_by_name_and_defaults() -> None:
    problem = Problem(CASES / "0001" / "_0001.yaml")
    assert problem.nllh() == problem.nllh(problem.nominal)
    first = problem.parameter_ids[0]
    shifted = problem.nllh({first: problem.nominal[0] + 0.1})
    assert shifted != problem.nllh()
    with pytest.raises(PEtabError, match="unknown parameter"):
        problem.nllh({"nope": 1.0})
    with pytest.raises(PEtabError, match="expected"):
        problem.nllh([1.0])


# ------------------------------------------------------------------------------- bad problems
def edited(tmp_path: Path, table: str, old: str, new: str) -> Path:
    case = tmp_path / "case"
    shutil.copytree(CASES / "0001", case)
    path = case / table
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return case / "_0001.yaml"


def test_bad_problems_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(PEtabError, match="not found"):
        Problem(tmp_path / "missing.yaml")
    bad = {
        ("_measurements.tsv", "obs_a\tc0", "obs_zzz\tc0"): "obs_zzz",
        ("_measurements.tsv", "obs_a\tc0\t0", "obs_a\tc9\t0"): "c9",
        ("_measurements.tsv", "\t0\t0.7", "\t-1\t0.7"): "-1",
        ("_parameters.tsv", "\t10\t1.0\t", "\t10\t1e6\t"): "nominal",
        ("_conditions.tsv", "conditionId\nc0", "conditionId\tzzz_entity\nc0\t1"): "zzz_entity",
    }
    for i, ((table, old, new), needle) in enumerate(bad.items()):
        folder = tmp_path / str(i)
        with pytest.raises(PEtabError) as info:
            Problem(edited(folder, table, old, new))
        message = str(info.value)
        assert "\n" not in message and needle in message, message


def test_zero_noise_is_refused(tmp_path: Path) -> None:
    path = edited(tmp_path, "_observables.tsv", "\t0.5", "\t0")
    with pytest.raises(PEtabError, match="noise"):
        Problem(path)


# ------------------------------------------------------------------------------- optimisation
@pytest.mark.parametrize("method", ["fides", "fides-fim", "L-BFGS-B"])
def test_multistart_finds_a_minimum_inside_the_bounds(method: str) -> None:
    pytest.importorskip("fides")
    from stiffml.petab.optimize import latin_hypercube, multistart

    problem = Problem(CASES / "0001" / "_0001.yaml")
    starts = latin_hypercube(problem, 3, seed=1)
    assert starts.shape == (3, len(problem.parameter_ids))
    assert np.all((starts >= problem.lower) & (starts <= problem.upper))
    assert np.array_equal(starts, latin_hypercube(problem, 3, seed=1))
    results = multistart(problem, starts=3, seed=1, method=method)
    best = results[0]
    assert [r.nllh for r in results] == sorted(r.nllh for r in results)
    assert best.nllh <= problem.nllh() + 1e-8 and best.nllh == pytest.approx(problem.nllh(best.theta))
    assert np.all((best.theta >= problem.lower - 1e-12) & (best.theta <= problem.upper + 1e-12))
    _, grad = problem.value_and_gradient(best.theta)
    inside = (best.theta > problem.lower + 1e-6) & (best.theta < problem.upper - 1e-6)
    assert np.abs(grad[inside]).max(initial=0) < 1e-3


def test_bad_optimiser_settings_are_one_line_errors() -> None:
    from stiffml.petab.optimize import latin_hypercube, local_fit

    problem = Problem(CASES / "0001" / "_0001.yaml")
    with pytest.raises(PEtabError, match="starts must be a positive number, got 0"):
        latin_hypercube(problem, 0)
    with pytest.raises(PEtabError, match="unknown optimiser 'newton'"):
        local_fit(problem, problem.nominal, method="newton")


# ------------------------------------------------------------------------------- the command
@pytest.mark.slow
def test_petab_fit_command_writes_the_report(tmp_path: Path) -> None:
    pytest.importorskip("fides")
    import json

    out = tmp_path / "report"
    done = stiffml("petab-fit", str(CASES / "0001" / "_0001.yaml"), "--starts", "2", "--out", str(out),
                   "--nominal-is-truth")
    assert done.returncode == 0, done.stderr
    assert "best nllh" in done.stdout
    for name in ("best_parameters.tsv", "starts.tsv", "waterfall.png", "fit.png", "summary.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    problem = Problem(CASES / "0001" / "_0001.yaml")
    assert summary["best_nllh"] == pytest.approx(problem.nllh(list(summary["estimates"].values())), rel=1e-9)
    assert summary["starts"] == 2 and set(summary["standard_errors"]) == set(problem.parameter_ids)
    table = (out / "best_parameters.tsv").read_text().splitlines()
    assert table[0].split("\t")[-3:] == ["estimatedValue", "standardError", "onBound"]
    assert not list(out.glob(".*tmp*")), "a temporary file was left behind"


@pytest.mark.slow
def test_petab_fit_bad_input_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "report"
    for args, needle in ((["--starts", "0"], "--starts must be a positive number, got 0"),
                         ([], "not found")):
        target = str(CASES / "0001" / "_0001.yaml") if args else str(tmp_path / "nope.yaml")
        done = stiffml("petab-fit", target, *args, "--out", str(out))
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], done.stderr
        assert not out.exists()


def test_shipped_example_loads_by_name() -> None:
    problem = Problem("tyson1991")
    assert problem.parameter_ids == ["k4", "k6", "k7"]
    assert len(problem.experiments) == 3 and len(problem.measurements) == 246
    with pytest.raises(PEtabError, match="shipped examples"):
        Problem("tyson1992")


@pytest.mark.parametrize("kind, params, scale", [
    ("normal", (1.0, 0.3), "lin"), ("laplace", (1.5, 0.4), "lin"), ("logNormal", (0.5, 0.3), "lin"),
    ("logLaplace", (0.5, 0.3), "lin"), ("parameterScaleNormal", (0.1, 0.3), "log10"),
    ("parameterScaleLaplace", (0.1, 0.3), "log10"), ("uniform", (0.0, 5.0), "lin"),
])
def test_priors_are_the_densities_scipy_gives(kind: str, params: tuple, scale: str) -> None:
    import math

    import torch
    from scipy import stats

    from stiffml.petab.likelihood import neg_log_prior

    a, b = params
    x = 2.0
    lin = torch.tensor(x, dtype=torch.float64)
    scaled = torch.log10(lin) if scale == "log10" else lin
    expected = {
        "normal": stats.norm(a, b).logpdf(x), "laplace": stats.laplace(a, b).logpdf(x),
        "logNormal": stats.lognorm(s=b, scale=math.exp(a)).logpdf(x),
        "logLaplace": stats.laplace(a, b).logpdf(math.log(x)) - math.log(x),
        "parameterScaleNormal": stats.norm(a, b).logpdf(math.log10(x)),
        "parameterScaleLaplace": stats.laplace(a, b).logpdf(math.log10(x)),
        "uniform": stats.uniform(a, b - a).logpdf(x),
    }[kind]
    assert float(neg_log_prior(kind, params, lin, scaled)) == pytest.approx(-expected, rel=1e-12)


def test_fisher_information_is_the_hessian_where_the_data_are_the_simulation(tmp_path: Path) -> None:
    from stiffml.petab.report import hessian

    case = tmp_path / "exact"
    shutil.copytree(CASES / "0001", case)
    problem = Problem(case / "_0001.yaml")
    sim = problem.simulate()
    lines = (case / "_measurements.tsv").read_text().splitlines()
    rows = [line.split("\t") for line in lines]
    column = rows[0].index("measurement")
    for row, value in zip(rows[1:], sim["simulation"]):
        row[column] = repr(float(value))
    (case / "_measurements.tsv").write_text("\n".join("\t".join(r) for r in rows) + "\n")
    exact = Problem(case / "_0001.yaml", rtol=1e-11, atol=1e-14)
    value, grad, fim = exact.value_gradient_fisher()
    assert np.abs(grad).max() < 1e-6  # zero residuals: a minimum
    np.testing.assert_allclose(fim, hessian(exact, exact.nominal), rtol=1e-4, atol=1e-6)


DOSING = """
model dosing
  compartment c = 1
  species A in c, B in c
  R1: A -> B; k1*A
  R2: B -> ; k2*B
  k1 = 0.5; k2 = 0.3; dose = 2; t_dose = 3; k1_late = 0.1
  A = 1; B = 0
  E1: at (time >= t_dose): A = A + dose
  E2: at (time > 6): k1 = k1_late
{extra}
end
"""


def dosing_problem(folder: Path, extra: str = "") -> Path:
    """A PEtab problem over a model with two timed events: a dose whose time is estimated, and a
    rate constant switched at t = 6."""
    import antimony

    antimony.clearPreviousLoads()
    antimony.loadAntimonyString(DOSING.format(extra=extra))
    (folder / "model.xml").write_text(antimony.getSBMLString("dosing"))
    (folder / "conditions.tsv").write_text("conditionId\tconditionName\nc0\t\n")
    (folder / "observables.tsv").write_text("observableId\tobservableFormula\tnoiseFormula\nobs_a\tA\t0.1\nobs_b\tB\t0.1\n")
    rng = np.random.default_rng(0)
    rows = [f"{o}\tc0\t{t}\t{abs(rng.normal(1, 0.5)):.4f}" for o in ("obs_a", "obs_b")
            for t in (0.5, 1, 2, 3, 4, 5, 6, 7, 8, 10)]
    (folder / "measurements.tsv").write_text("observableId\tsimulationConditionId\ttime\tmeasurement\n" + "\n".join(rows) + "\n")
    (folder / "parameters.tsv").write_text(
        "parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate\n"
        "k1\tlog10\t0.001\t10\t0.5\t1\nk2\tlog10\t0.001\t10\t0.3\t1\ndose\tlin\t0\t10\t2\t1\n"
        "t_dose\tlin\t0.5\t9\t3.3\t1\nk1_late\tlog10\t0.001\t10\t0.1\t1\n")
    (folder / "problem.yaml").write_text(
        "format_version: 1\nparameter_file: parameters.tsv\nproblems:\n- sbml_files: [model.xml]\n"
        "  condition_files: [conditions.tsv]\n  measurement_files: [measurements.tsv]\n"
        "  observable_files: [observables.tsv]\n")
    return folder / "problem.yaml"


def test_timed_events_fire_in_the_calibration_engine_with_exact_gradients(tmp_path: Path) -> None:
    p = Problem(dosing_problem(tmp_path), rtol=1e-10, atol=1e-14)
    sim = p.simulate()
    a = sim[sim["observableId"] == "obs_a"].set_index("time")["simulation"]
    # closed form: A decays at k1 = 0.5, gets the dose at t = 3.3, decays at k1 = 0.1 from t = 6
    before = np.exp(-0.5 * 3.3)
    np.testing.assert_allclose(a[3.0], np.exp(-1.5), rtol=1e-7)  # before the dose
    np.testing.assert_allclose(a[4.0], (before + 2) * np.exp(-0.5 * 0.7), rtol=1e-7)
    np.testing.assert_allclose(a[6.0], (before + 2) * np.exp(-0.5 * 2.7), rtol=1e-7)  # the switch's time: before it
    np.testing.assert_allclose(a[8.0], (before + 2) * np.exp(-0.5 * 2.7) * np.exp(-0.1 * 2), rtol=1e-7)
    # the gradient, the dose's time and the switched constant included, is the central difference
    _, grad = p.value_and_gradient()
    np.testing.assert_allclose(grad, central_difference(p, p.nominal), rtol=1e-5)
    assert grad[p.parameter_ids.index("t_dose")] != 0
    # several starts in one call: each start's own firing times
    thetas = np.stack([p.nominal, p.nominal + 0.1, p.nominal - 0.1])
    values, grads = p.values_and_gradients(thetas)
    for theta, value, g in zip(thetas, values, grads):
        one, g_one = p.value_and_gradient(theta)
        assert value == pytest.approx(one, rel=1e-6)
        np.testing.assert_allclose(g, g_one, rtol=1e-4)


def test_events_the_calibration_engine_cannot_fire_are_refused_by_name(tmp_path: Path) -> None:
    from stiffml.petab import PEtabUnsupported

    with pytest.raises(PEtabUnsupported, match="event 'E3': its trigger .* reads the state"):
        Problem(dosing_problem(tmp_path, "  E3: at (B > 0.5): k2 = 0.2"))


@pytest.mark.slow
def test_calibration_objective_adds_the_priors(tmp_path: Path) -> None:
    # the dosing problem with priors on two parameters: what the optimisers minimise is the
    # negative log-posterior, and its gradient is the central difference of that
    folder = tmp_path / "p"
    folder.mkdir()
    path = dosing_problem(folder)
    table = (folder / "parameters.tsv").read_text().splitlines()
    table[0] += "\tobjectivePriorType\tobjectivePriorParameters"
    table = [table[0]] + [row + ("\tnormal\t2.5;0.5" if row.startswith("dose") else
                                 "\tparameterScaleNormal\t-0.3;0.2" if row.startswith("k1\t") else "\t\t")
                          for row in table[1:]]
    (folder / "parameters.tsv").write_text("\n".join(table) + "\n")
    p = Problem(path, rtol=1e-10, atol=1e-14)
    theta = p.nominal
    value, grad = p.value_and_gradient(theta, prior=True)
    assert p.neg_log_prior(theta) > 0
    assert value == pytest.approx(p.nllh(theta) + p.neg_log_prior(theta), rel=1e-6)
    h = 1e-5
    fd = [(p.nllh(theta + h * e) + p.neg_log_prior(theta + h * e) - p.nllh(theta - h * e)
           - p.neg_log_prior(theta - h * e)) / (2 * h) for e in np.eye(theta.size)]
    np.testing.assert_allclose(grad, fd, rtol=1e-5)
    values, grads = p.values_and_gradients(theta[None], prior=True)
    assert values[0] == pytest.approx(value, rel=1e-6)
    assert p.values_and_gradients(theta[None])[0][0] == pytest.approx(p.nllh(theta), rel=1e-6)
