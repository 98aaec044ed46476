"""SBML models as stiff systems: generated math, references, the suite runner, the CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("libsbml")
pytest.importorskip("roadrunner")

from stiffml.sbml import EXAMPLES, SBMLError, SBMLSystem, SBMLUnsupported  # noqa: E402
from stiffml.sbml.suite import find_cases, run_case  # noqa: E402
from stiffml.systems import get_system  # noqa: E402

ROOT = Path(__file__).parents[2]
CASES = Path(__file__).parents[1] / "sbml_cases"
TINY = Path(__file__).parents[1] / "conf" / "sbml_tyson_fcnn_tiny.yaml"
DECAY = CASES / "00001" / "00001-sbml-l3v2.xml"
EVENT = CASES / "00009" / "00009-sbml-l3v2.xml"


def stiffml(*args: str, cwd: Path | None = None, env_cache: Path | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ)
    if env_cache is not None:
        env["STIFFML_CACHE_DIR"] = str(env_cache)
    return subprocess.run([sys.executable, "-m", "stiffml", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def range_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a − b| over the range of b, per state, worst state."""
    span = np.ptp(b, axis=0)
    return float(np.max(np.abs(a - b).max(axis=0) / np.where(span > 0, span, 1.0)))


# ---------------------------------------------------------------------------------- the runner
@pytest.mark.parametrize("case", find_cases(CASES), ids=lambda p: p.name)
def test_suite_case_passes_with_roadrunner(case: Path) -> None:
    outcome = run_case(case, "roadrunner")  # delay() (00030): the method of steps, which roadrunner lacks
    assert outcome.status == "passed", outcome.reason


@pytest.mark.parametrize("case", find_cases(CASES), ids=lambda p: p.name)
def test_suite_case_passes_with_the_generated_math(case: Path) -> None:
    outcome = run_case(case, "generated")
    assert outcome.status == "passed", outcome.reason


@pytest.mark.slow
def test_runner_command_prints_the_summary_and_fails_on_a_wrong_result(tmp_path: Path) -> None:
    res = stiffml("sbml-suite", str(CASES), "--cases", "1-3,15")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1].startswith("4 passed, 0 failed, 0 unsupported")
    bad = tmp_path / "suite"
    shutil.copytree(CASES / "00001", bad / "00001")
    shutil.copytree(CASES / "00026", bad / "00026")
    model = bad / "00026" / "00026-sbml-l3v2.xml"  # an equality trigger: refused by the generated engine
    model.write_text(model.read_text().replace("<gt/>", "<eq/>"))
    csv = bad / "00001" / "00001-results.csv"
    lines = csv.read_text().splitlines()
    cells = lines[11].split(",")
    cells[1] = repr(float(cells[1]) * 1.001)  # S1 at t = 1 off by 0.1 %: above 1e-7 + 1e-4·|S1|
    lines[11] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    res = stiffml("sbml-suite", str(bad), "--engine", "generated")
    assert res.returncode == 1
    out = res.stdout.splitlines()
    assert out[-1].startswith("0 passed, 1 failed, 1 unsupported")
    assert any(line.startswith("00001 failed: 1 value(s) out of tolerance, first S1 at t=1") for line in out)
    assert any(line.startswith("00026 unsupported:") for line in out)


def test_runner_skips_other_test_types_and_reports_bad_folders(tmp_path: Path) -> None:
    shutil.copytree(CASES / "00001", tmp_path / "00001")
    (tmp_path / "00001" / "00001-model.m").write_text("testType: SteadyState\n")
    assert run_case(tmp_path / "00001").status == "unsupported"
    res = stiffml("sbml-suite", str(tmp_path / "nowhere"))
    assert res.returncode == 2 and res.stderr.count("stiffml: error:") == 1 and "not found" in res.stderr


# ---------------------------------------------------------------------------- generated math
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_jacobian_matches_finite_differences(name: str) -> None:
    s = SBMLSystem(name)
    traj = s.solve(s.default_grid()[::50])
    rng = np.random.default_rng(0)
    for y in traj.y[rng.choice(len(traj.y), 5, replace=False)]:
        y = np.abs(y) + 1e-3  # away from 0 so a relative step is meaningful for every state
        jac = s.jac(0.0, y)
        fd = np.empty_like(jac)
        for j in range(s.n):
            h = 1e-6 * max(abs(y[j]), 1e-3)
            up, down = y.copy(), y.copy()
            up[j] += h
            down[j] -= h
            fd[:, j] = (s.rhs(0.0, up) - s.rhs(0.0, down)) / (2 * h)
        scale = np.abs(jac).max()
        assert np.abs(fd - jac).max() <= 1e-6 * scale, name


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in ("goldbeter1991", "tyson1991", "bz") else n
                                  for n in sorted(EXAMPLES)])
def test_generated_rhs_integrated_by_scipy_agrees_with_cvode(name: str) -> None:
    s = SBMLSystem(name)
    grid = s.default_grid()[::10]
    cvode = s.solve(grid)
    radau = s.solve(grid, method="Radau")
    assert range_error(radau.y, cvode.y) < 1e-5, name


@pytest.mark.slow
def test_bz_example_equals_the_built_in_system() -> None:
    built_in, sbml = get_system("bz"), SBMLSystem("bz")
    assert sbml.state_names == built_in.state_names
    grid = sbml.default_grid()
    ref = built_in.solve(grid, rtol=1e-12, atol=1e-14)
    assert range_error(sbml.solve(grid, rtol=1e-12, atol=1e-14).y, ref.y) < 1e-8  # CVODE
    assert range_error(sbml.solve(grid, rtol=1e-12, atol=1e-14, method="Radau").y, ref.y) < 1e-8
    y = ref.y.T
    # the file stores a = 1/77.27 and b = 1/0.161 to 15 digits (libsbml's output): 1e-15 apart
    assert range_error(sbml.rhs(0.0, y).T, built_in.rhs(0.0, y).T) < 1e-12
    assert sbml.stiffness_ratio(sbml.y0) == pytest.approx(built_in.stiffness_ratio(built_in.y0), rel=1e-10)


def test_robertson_example_rhs_equals_the_built_in_system() -> None:
    built_in, sbml = get_system("robertson"), SBMLSystem("robertson")
    y = built_in.solve(built_in.default_grid()[::20]).y
    np.testing.assert_allclose(sbml.rhs(0.0, y.T), built_in.rhs(0.0, y.T), rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(sbml.jac(0.0, y[30]), built_in.jac(0.0, y[30]), rtol=1e-12)


def test_torch_rhs_equals_numpy_rhs_and_is_differentiable() -> None:
    import torch

    s = SBMLSystem("tyson1991")
    y = s.solve(s.default_grid()[::500]).y + 0.01
    out = s.rhs_torch(0.0, torch.as_tensor(y))
    np.testing.assert_allclose(out.numpy(), s.rhs(0.0, y.T).T, rtol=1e-12, atol=1e-12)
    x = torch.as_tensor(y[3], dtype=torch.float64).requires_grad_(True)
    jac = torch.autograd.functional.jacobian(lambda v: s.rhs_torch(0.0, v), x)
    np.testing.assert_allclose(jac.numpy(), s.jac(0.0, y[3]), rtol=1e-10, atol=1e-8)


def test_stiff_examples_are_stiff() -> None:
    assert SBMLSystem("tyson1991").stiffness_ratio(SBMLSystem("tyson1991").y0) > 1e6
    s = SBMLSystem("goldbeter1991")
    traj = s.solve(s.default_grid()[::100])
    assert max(s.stiffness_ratio(y) for y in traj.y) > 1e3


# ------------------------------------------------------------------------- parameters, states
def test_initial_state_matches_roadrunner_for_every_case() -> None:
    import roadrunner

    for case in find_cases(CASES):
        if case.name in ("00024", "00030"):  # an event fires at t = 0 (roadrunner reports the state
            continue  # after it); delay() (roadrunner cannot load it)
        path = next(case.glob("*-sbml-*.xml"))
        s = SBMLSystem(path)
        rr = roadrunner.RoadRunner(s._text)  # the document as read (comp flattened, algebraic rules solved)
        expected = [rr.getValue(s._selector(sid)) for sid in s.state_names]
        np.testing.assert_allclose(s.y0, expected, rtol=1e-12, err_msg=case.name)


def test_parameter_overrides_reach_both_engines_and_initial_assignments() -> None:
    s = SBMLSystem(CASES / "00006" / "00006-sbml-l3v2.xml", k0=0.5)  # k1 = 2 k0, S1(0) = 3 k0
    assert s.y0 == pytest.approx([1.5])
    t = np.linspace(0, 2, 5)
    expected = 1.5 * np.exp(-1.0 * t)
    np.testing.assert_allclose(s.solve(t).y[:, 0], expected, rtol=1e-7)
    np.testing.assert_allclose(s.solve(t, method="Radau").y[:, 0], expected, rtol=1e-7)
    np.testing.assert_allclose(s.simulate(t, ["S1", "k1"])[:, 1], 1.0)
    assert sorted(s.defaults) == ["k0"]  # k1 has an initial assignment: not a free parameter


def test_y0_override_is_honoured_by_cvode() -> None:
    s = SBMLSystem(DECAY, y0=[2.0, 0.5])
    t = np.linspace(0, 1, 3)
    np.testing.assert_allclose(s.solve(t).y[:, 0], 2 * np.exp(-0.7 * t), rtol=1e-7)
    np.testing.assert_allclose(s.solve(t).y[:, 1], 2.5 - 2 * np.exp(-0.7 * t), rtol=1e-7)


@pytest.mark.parametrize("bad, message", [
    ({"model": "/no/such/model.xml"}, "neither a file nor a shipped example"),
    ({"model": DECAY, "kk": 1.0}, "unknown parameter(s) ['kk']"),
])
def test_bad_arguments_are_one_clear_error(bad: dict, message: str) -> None:
    with pytest.raises(SBMLError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        SBMLSystem(**bad)


def test_delay_is_named_by_the_field_and_solved_by_steps(tmp_path: Path) -> None:
    text = DECAY.read_text().replace("<ci> S1 </ci>\n            </apply>",
                                     "<apply><csymbol encoding=\"text\" definitionURL=\"http://www.sbml.org/sbml/"
                                     "symbols/delay\"> delay </csymbol><ci> S1 </ci><cn> 0.5 </cn></apply>\n"
                                     "            </apply>", 1)
    assert "delay" in text
    path = tmp_path / "delay.xml"
    path.write_text(text)
    s = SBMLSystem(path, t_span=(0, 2))
    assert not s.smooth_rhs and "delay() in the kinetic law of reaction 'J1'" in s.why_not_smooth()
    with pytest.raises(SBMLUnsupported, match="delay"):
        s.rhs(0.0, s.y0)
    # libroadrunner 2.10 has no delay equations: the reference solve takes the method of steps;
    # on [0, 0.5] the history is S1(0) = 1, so S1 = 1 - k t there (k1 = 0.7)
    traj = s.solve(np.array([0.25, 0.5]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(traj.y[:, 0], 1 - 0.7 * np.array([0.25, 0.5]), rtol=1e-9)


# -------------------------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_fit_on_a_shipped_example_and_on_a_file(tmp_path: Path) -> None:
    res = stiffml("fit", "--config", str(TINY), f"--trainer.default_root_dir={tmp_path / 'a'}",
                  env_cache=tmp_path / "cache")
    assert res.returncode == 0, res.stderr[-2000:]
    assert list((tmp_path / "a").rglob("last.ckpt"))
    model = tmp_path / "decay.xml"
    shutil.copy(DECAY, model)
    res = stiffml("fit", "--config", str(TINY), f"--data.model={model}", "--data.t_span=[0, 5]", "--data.dt=0.01",
                  f"--trainer.default_root_dir={tmp_path / 'b'}", env_cache=tmp_path / "cache")
    assert res.returncode == 0, res.stderr[-2000:]
    first = sorted((tmp_path / "cache").glob("sbml-c1-*.npz"))
    assert len(first) == 1
    # an edited file is a new cache entry (the key holds the content hash), not a stale hit
    model.write_text(model.read_text().replace('value="0.7"', 'value="0.8"'))
    res = stiffml("fit", "--config", str(TINY), f"--data.model={model}", "--data.t_span=[0, 5]", "--data.dt=0.01",
                  f"--trainer.default_root_dir={tmp_path / 'c'}", env_cache=tmp_path / "cache")
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(sorted((tmp_path / "cache").glob("sbml-c1-*.npz"))) == 2


QUAL = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" xmlns:qual="http://www.sbml.org/sbml/level3/version1/qual/version1" level="3" version="1" qual:required="true">
  <model id="m">
    <listOfCompartments><compartment id="C" spatialDimensions="3" size="1" constant="true"/></listOfCompartments>
    <listOfSpecies><species id="S" compartment="C" initialConcentration="1" hasOnlySubstanceUnits="false" boundaryCondition="false" constant="false"/></listOfSpecies>
  </model>
</sbml>
"""


@pytest.mark.parametrize("name, setup, args, message", [
    *[pytest.param(*p, marks=pytest.mark.slow) for p in [
    ("missing", None, ["--data.model=/no/such.xml"], "'/no/such.xml' is neither a file nor a shipped example"),
    ("not_xml", "hello, not xml\n", [], "line 2: XML content is not well-formed"),
    ("not_sbml", '<?xml version="1.0"?>\n<html>\n<body/></html>\n', [], "An SBML XML document must conform"),
    ("sbml_error", "UNDECLARED", [], "line 20: All species referenced in the <kineticLaw>"),
    ("qual", QUAL, [], "requires the SBML 'qual' package"),
    ("params", None, ["--data.params={kk: 1.0}"], "unknown parameter(s) ['kk'] for SBML model 'tyson1991'"),
    ("no_time", DECAY, [], "carries no simulation time: give t_span"),
    ("derivative_with_events", EVENT, ["--model=NODE", "--data.t_span=[0, 5]"],
     "cannot serve the 'derivative' representation"),
    ]],
])
def test_cli_bad_input_is_one_line(name, setup, args, message, tmp_path: Path) -> None:
    extra = []
    if setup is not None:
        path = tmp_path / f"{name}.xml"
        if isinstance(setup, Path):
            shutil.copy(setup, path)
        elif setup == "UNDECLARED":
            path.write_text(DECAY.read_text().replace('species="S1" stoichiometry', 'species="S9" stoichiometry'))
        else:
            path.write_text(setup)
        extra = [f"--data.model={path}", "--data.t_span=[0, 1]"] if name != "no_time" else [f"--data.model={path}"]
    res = stiffml("fit", "--config", str(TINY), *extra, *args, f"--trainer.default_root_dir={tmp_path / 'runs'}",
                  env_cache=tmp_path / "cache")
    assert res.returncode == 2
    errors = [line for line in res.stderr.splitlines() if line.startswith("stiffml: error:")]
    assert len(errors) == 1 and message in errors[0], res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "runs").exists() and not list((tmp_path / "cache").glob("*.npz"))


@pytest.mark.slow
def test_list_shows_the_sbml_datamodule() -> None:
    res = stiffml("list", "SBML*")
    assert res.returncode == 0 and "SBMLDataModule" in res.stdout and "any SBML file" in res.stdout


def test_shipped_examples_are_built_from_their_antimony_sources() -> None:
    pytest.importorskip("antimony")
    from stiffml.sbml.examples.build import main

    assert main(["--check"]) == 0


# ------------------------------------------------------------------------------- datamodule
@pytest.mark.parametrize("rep", ["derivative", "trajectory",
                                 *[pytest.param(r, marks=pytest.mark.slow) for r in ("pointwise", "window", "pair", "segment")]])
def test_datamodule_serves_every_representation(rep: str, tmp_path: Path) -> None:
    from stiffml.data.sbml import SBMLDataModule

    dm = SBMLDataModule(model="tyson1991", dt=0.25, representation=rep, window=4, cache_dir=str(tmp_path))
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert len(dm.samples) > 300 and y.shape[-1] == 6 and torch_finite(y) and y.dtype.is_floating_point


def torch_finite(t) -> bool:
    import torch

    return bool(torch.isfinite(t).all())


def test_benchmark_figures_rebuild_the_sbml_system() -> None:
    import json

    from stiffml.evaluation.plots import _system_of

    s = SBMLSystem(DECAY, t_span=(0, 5), k1=0.5)
    record = {"system": s.name, "system_class": "stiffml.sbml.system.SBMLSystem",
              "system_params": json.dumps(s.init_kwargs())}
    again = _system_of(record)
    assert again.params == s.params and again.t_span == (0.0, 5.0)
    np.testing.assert_array_equal(again.default_grid(), s.default_grid())


@pytest.mark.slow
@pytest.mark.parametrize("model, extra", [
    ("LSTM", ["--model.hidden=8", "--data.window=4"]),
    ("ODENet", ["--model.hidden=8", "--model.rtol=1e-4", "--model.atol=1e-6"]),
    ("NODE", ["--model.hidden=8"]),
])
def test_families_fit_on_an_sbml_example(model: str, extra: list[str], tmp_path: Path) -> None:
    res = stiffml("fit", "--config", str(TINY), f"--model={model}", *extra, "--data.dt=0.5",
                  "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
                  f"--trainer.default_root_dir={tmp_path}", env_cache=tmp_path / "cache")
    assert res.returncode == 0, res.stderr[-2000:]
    assert list(tmp_path.rglob("last.ckpt"))


def test_an_algebraic_rule_without_a_unique_solution_is_refused_by_name(tmp_path: Path) -> None:
    import libsbml

    doc = libsbml.readSBMLFromFile(str(CASES / "00021" / "00021-sbml-l3v2.xml"))
    model = doc.getModel()
    (rule,) = [r for r in model.getListOfRules() if r.isAlgebraic()]
    rule.setMath(libsbml.parseL3Formula("S2^2 - total"))  # two roots: which one is meant is not said
    path = tmp_path / "two_roots.xml"
    libsbml.writeSBMLToFile(doc, str(path))
    s = SBMLSystem(path, t_span=(0, 1))
    assert not s.smooth_rhs and "an algebraic rule" in s.why_not_smooth()
    solved = SBMLSystem(CASES / "00021" / "00021-sbml-l3v2.xml", t_span=(0, 1))
    assert solved.smooth_rhs and solved.state_names == ("S1",)


def test_events_in_the_generated_engine_refuse_what_they_cannot_locate(tmp_path: Path) -> None:
    import libsbml

    doc = libsbml.readSBMLFromFile(str(CASES / "00023" / "00023-sbml-l3v2.xml"))
    trigger = doc.getModel().getEvent(0).getTrigger()
    trigger.setMath(libsbml.parseL3Formula("time == 2"))  # an equality has no sign change to locate
    path = tmp_path / "equality.xml"
    libsbml.writeSBMLToFile(doc, str(path))
    with pytest.raises(SBMLUnsupported, match="the trigger .* is not a comparison"):
        SBMLSystem(path).simulate(np.linspace(0, 5, 6), ["S1"], engine="generated")
    assert np.all(np.isfinite(SBMLSystem(path).simulate(np.linspace(0, 5, 6), ["S1"])))  # roadrunner runs it


def test_delays_integrate_only_in_the_generated_simulate_and_refuse_what_they_cannot(tmp_path: Path) -> None:
    import libsbml

    case = CASES / "00030" / "00030-sbml-l3v2.xml"
    s = SBMLSystem(case, t_span=(0, 5))
    # the generated field refuses delays by name (derivative samples, scipy solves, PEtab)
    assert not s.smooth_rhs and "delay() in the kinetic law of reaction 'J1'" in s.why_not_smooth()
    with pytest.raises(SBMLUnsupported, match="delay\\(\\) in the kinetic law of reaction 'J1'"):
        s.rhs(0.0, s.y0)
    with pytest.raises(SBMLUnsupported, match="delay\\(\\) in the kinetic law"):
        s.solve([0.0, 1.0], method="Radau")
    # the reference solve (a datamodule's trajectories) takes the method of steps
    traj = s.solve(np.linspace(0.5, 5, 10), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(traj.y[:, 0], s.simulate(np.linspace(0.5, 5, 10), ["S1"], engine="generated")[:, 0],
                               rtol=1e-9)
    with pytest.raises(SBMLUnsupported, match="its history starts at t = 0"):
        s.solve([2.0, 3.0], t0=1.0)
    # a delay that changes with the state, and delays with events: refused by name
    doc = libsbml.readSBMLFromFile(str(case))
    doc.getModel().getReaction(0).getKineticLaw().setMath(libsbml.parseL3Formula("k1 * delay(S1, S1)"))
    libsbml.writeSBMLToFile(doc, str(tmp_path / "varying.xml"))
    with pytest.raises(SBMLUnsupported, match="the delay S1 in the derivative of 'S1' is not constant"):
        SBMLSystem(tmp_path / "varying.xml")
    doc = libsbml.readSBMLFromFile(str(case))
    doc.getModel().getParameter("k1").setConstant(False)
    event = doc.getModel().createEvent()
    event.setId("E1")
    event.setUseValuesFromTriggerTime(True)
    trigger = event.createTrigger()
    trigger.setMath(libsbml.parseL3Formula("time > 1"))
    trigger.setInitialValue(False)
    trigger.setPersistent(True)
    assignment = event.createEventAssignment()
    assignment.setVariable("k1")
    assignment.setMath(libsbml.parseL3Formula("1"))
    libsbml.writeSBMLToFile(doc, str(tmp_path / "events.xml"))
    with pytest.raises(SBMLUnsupported, match="has delay\\(\\) and events \\['E1'\\]"):
        SBMLSystem(tmp_path / "events.xml").simulate(np.linspace(0, 2, 3), ["S1"], engine="generated")
    doc = libsbml.readSBMLFromFile(str(case))
    doc.getModel().getParameter("tau").setValue(0.0)
    libsbml.writeSBMLToFile(doc, str(tmp_path / "zero.xml"))
    with pytest.raises(SBMLUnsupported, match="has the delay 0; the method of steps needs a positive"):
        SBMLSystem(tmp_path / "zero.xml").simulate(np.linspace(0, 2, 3), ["S1"], engine="generated")


@pytest.mark.parametrize("method", ["Radau", "BDF", "LSODA"])
def test_scipy_solves_of_models_with_events_agree_with_cvode(method: str) -> None:
    # events (a reset at 2.55; delayed events) in `solve` as in `simulate`, with every scipy method
    for case in ("00009", "00028"):
        s = SBMLSystem(CASES / case / f"{case}-sbml-l3v2.xml", t_span=(0, 5))
        grid = np.linspace(0.5, 5.0, 10)
        ours = s.solve(grid, method=method, rtol=1e-10, atol=1e-12)
        cvode = s.solve(grid, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ours.y, cvode.y, rtol=1e-6, atol=1e-9, err_msg=f"{case} {method}")
    with pytest.raises(SBMLUnsupported, match="solves start there, not at t0=1"):
        s.solve([2.0, 3.0], method=method, t0=1.0)
