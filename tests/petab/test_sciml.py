"""PEtab SciML problems (issue #27): networks before the simulation, in the right-hand side and in
observables, checked against cases whose expected values come from an equivalent closed-form model
(tests/sciml_cases/make_cases.py); and the one-line errors of bad problems."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytest.importorskip("petab")
pytest.importorskip("h5py")

from stiffml.petab import Problem  # noqa: E402
from stiffml.petab.errors import PEtabUnsupported  # noqa: E402
from stiffml.petab.sciml import SciMLProblem  # noqa: E402

from ..conftest import CONF, assert_one_line_error  # noqa: E402

CASES = Path(__file__).parents[1] / "sciml_cases"
TINY = CONF / "petab_sciml_tiny.yaml"


@pytest.mark.parametrize("case", [pytest.param("rhs", marks=pytest.mark.slow), "observable", pytest.param("pre_init", marks=pytest.mark.slow),
                                  pytest.param("two_networks", marks=pytest.mark.slow),
                                  pytest.param("periods", marks=pytest.mark.slow), "priors",
                                  "net_import", "initialization", pytest.param("arguments", marks=pytest.mark.slow),
                                  pytest.param("events", marks=pytest.mark.slow)])
def test_each_placement_matches_the_closed_form_model(case: str) -> None:
    from stiffml.petab.suite import run_case

    outcome = run_case(CASES / case)
    assert outcome.status == "passed", outcome.reason


@pytest.mark.slow
def test_problem_returns_the_sciml_engine_with_gradients_per_weight() -> None:
    p = Problem(CASES / "two_networks" / "petab" / "problem.yaml")
    assert isinstance(p, SciMLProblem) and p.parameter_ids == []
    grad = p.gradient()
    # net1's first layer is frozen by the parameter table, net2 entirely: only layer2 of net1 is estimated
    assert sorted(grad["net1"]) == ["layer2.bias", "layer2.weight"] and grad["net2"] == {}
    assert grad["net1"]["layer2.weight"].shape == (2, 3)
    sim = p.simulate()
    assert list(sim["simulation"].index) == list(range(len(sim))) and np.all(np.isfinite(sim["simulation"]))
    assert p.chi2() > 0


@pytest.mark.slow
def test_the_suite_command_scores_sciml_cases(cli, capsys, tmp_path: Path) -> None:
    # the command on one case (the per-case test above runs them all)
    shutil.copytree(CASES / "observable", tmp_path / "observable")
    assert cli("petab-suite", tmp_path, "--quiet") == 0
    assert "1 passed, 0 failed, 0 unsupported" in capsys.readouterr().out


def test_the_suite_command_reads_the_official_suites_folders(cli, capsys, tmp_path: Path) -> None:
    # test_cases/<kind>/<number>/ as in the PEtab SciML test suite, each kind by its solutions file
    for kind, case in (("ml_model_import", "net_import"), ("initialization", "initialization"),
                       ("sciml_problem_import", "observable")):
        shutil.copytree(CASES / case, tmp_path / "test_cases" / kind / "001")
    assert cli("petab-suite", tmp_path / "test_cases") == 0
    assert "3 passed, 0 failed, 0 unsupported" in capsys.readouterr().out
    from stiffml.petab.suite import run_case

    assert run_case(tmp_path / "test_cases" / "initialization" / "001").case == "initialization/001"


def test_a_network_that_differs_from_its_reference_output_fails_its_case(tmp_path: Path) -> None:
    from stiffml.petab.suite import run_case

    shutil.copytree(CASES / "net_import", tmp_path / "net_import")
    yaml_file = tmp_path / "net_import" / "net.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("target: gelu", "target: relu"))
    outcome = run_case(tmp_path / "net_import")
    assert outcome.status == "failed" and "off by" in outcome.reason


def _copy(tmp_path: Path, case: str = "rhs") -> Path:
    shutil.copytree(CASES / case / "petab", tmp_path / "p")
    return tmp_path / "p"


def _edit_tsv(path: Path, column: str, old: str, new: str) -> None:
    table = pd.read_csv(path, sep="\t", dtype=str)
    table[column] = table[column].replace(old, new)
    table.to_csv(path, sep="\t", index=False)


def _bad_layer(p: Path) -> None:
    (p / "net1.yaml").write_text((p / "net1.yaml").read_text().replace("layer_type: Linear", "layer_type: Linearr", 1))


def _bad_op(p: Path) -> None:
    (p / "net1.yaml").write_text((p / "net1.yaml").read_text().replace("target: tanh", "target: tanhh"))


def _bad_shape(p: Path) -> None:
    import h5py

    with h5py.File(p / "net1_ps.hdf5", "a") as f:
        del f["parameters/net1/layer1/weight"]
        f["parameters/net1/layer1/weight"] = np.zeros((3, 5))


def _bad_target(p: Path) -> None:
    _edit_tsv(p / "hybridization.tsv", "targetId", "k4", "k9")


def _bad_input(p: Path) -> None:
    _edit_tsv(p / "hybridization.tsv", "targetValue", "prey", "S1")


def _bad_outputs(p: Path) -> None:
    hyb = pd.read_csv(p / "hybridization.tsv", sep="\t", dtype=str)
    hyb.loc[len(hyb)] = ["k3", "net1_output2"]
    hyb.to_csv(p / "hybridization.tsv", sep="\t", index=False)
    mapping = pd.read_csv(p / "mapping.tsv", sep="\t", dtype=str)
    mapping.loc[len(mapping)] = ["net1_output2", "net1.outputs[0][1]"]
    mapping.to_csv(p / "mapping.tsv", sep="\t", index=False)
    params = pd.read_csv(p / "parameters.tsv", sep="\t", dtype=str)
    params = params[params["parameterId"] != "k3"]
    params.to_csv(p / "parameters.tsv", sep="\t", index=False)


def _bad_prior_kind(p: Path) -> None:
    table = pd.read_csv(p / "parameters.tsv", sep="\t", dtype=str)
    table.loc[table["parameterId"] == "net1_ps", "priorDistribution"] = "weibull"
    table.to_csv(p / "parameters.tsv", sep="\t", index=False)


def _bad_prior_arity(p: Path) -> None:
    _edit_tsv(p / "parameters.tsv", "priorParameters", "0.0;2.0", "2.0")


def _bad_mech_prior(p: Path) -> None:
    _edit_tsv(p / "parameters.tsv", "priorDistribution", "log-normal", "lognormal")


@pytest.mark.parametrize("edit, message", [
    (_bad_prior_kind, "parameter 'net1_ps': prior distribution 'weibull' is not supported; valid: ['cauchy',"),
    (_bad_prior_arity, "parameter 'net1_layer1_weight': prior 'normal' takes 2 parameters, got [2.0]"),
    (_bad_mech_prior, "parameter 'k3': prior distribution 'lognormal' is not supported"),
    (_bad_layer, "layer 'layer1' has unknown layer_type 'Linearr'"),
    (_bad_op, "unknown function 'tanhh'"),
    (_bad_shape, "net1.layer1.weight has shape (3, 5) in the file but (3, 2) in the layer"),
    (_bad_target, "hybridization target 'k9' (set from net1_output1) is not an entity of the model"),
    (_bad_input, "network input 'net1_input1' reads 'S1', which is not a species"),
    (_bad_outputs, "network 'net1' in the right-hand side gives 1 outputs, but the hybridization table replaces 2"),
])
def test_bad_sciml_problems_are_one_line_with_exit_2(edit, message: str, tmp_path: Path, cli, capsys) -> None:
    folder = _copy(tmp_path, "priors" if "prior" in edit.__name__ else "rhs")
    edit(folder)
    code = cli("fit", "--config", TINY, "--data.problem", folder / "problem.yaml",
               "--trainer.default_root_dir", tmp_path / "runs")
    assert_one_line_error(code, capsys, message)
    assert code == 2 and not (tmp_path / "runs" / "lightning_logs").exists()


def test_each_kind_of_problem_goes_to_its_own_model(tmp_path: Path, cli, capsys) -> None:
    code = cli("fit", "--config", CONF / "petab_tiny.yaml", "--data.problem", CASES / "rhs" / "petab" / "problem.yaml",
               "--trainer.default_root_dir", tmp_path)
    assert_one_line_error(code, capsys, "is PEtab v2 (the SciML engine): it is fitted by model: SciMLModel")
    code = cli("fit", "--config", TINY, "--data.problem", "tyson1991", "--trainer.default_root_dir", tmp_path)
    assert_one_line_error(code, capsys, "is PEtab v1: it is fitted by model: MechanisticModel")
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.slow
def test_sciml_model_trains_the_networks_and_writes_the_simulation_table(tmp_path: Path, cli) -> None:
    import torch

    from ..conftest import logged_events

    p = Problem(CASES / "rhs" / "petab" / "problem.yaml")
    before = p.nllh()
    assert cli("fit", "--config", TINY, "--trainer.max_epochs", "4", "--model.lr", "3e-3",
               "--trainer.default_root_dir", tmp_path) == 0
    version = tmp_path / "lightning_logs" / "version_0"
    losses = [e.value for e in logged_events(version).Scalars("train_loss")]
    assert len(losses) == 4 and losses[0] == pytest.approx(before, abs=1e-3) and losses[-1] < losses[0]
    state = torch.load(version / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert {"theta", "networks.net1.layer1.weight", "networks.net1.layer2.bias"} <= set(state)
    sim = pd.read_csv(version / "simulation.tsv", sep="\t")
    assert len(sim) == len(p.measurements) and np.all(np.isfinite(sim["simulation"]))
    estimates = pd.read_csv(version / "parameters.tsv", sep="\t")
    assert list(estimates["parameterId"]) == p.parameter_ids
    lower, upper = p.bounds()
    assert np.all((estimates["estimate"] >= lower) & (estimates["estimate"] <= upper))
    assert cli("validate", "--config", TINY, "--ckpt_path", version / "checkpoints" / "last.ckpt",
               "--trainer.default_root_dir", tmp_path) == 0


def test_case_solutions_carry_the_suite_fields() -> None:
    for case in ("rhs", "pre_init", "observable", "two_networks", "periods"):
        sol = yaml.safe_load((CASES / case / "solutions.yaml").read_text())
        assert {"llh", "tol_llh", "tol_simulations", "tol_grad_llh", "grad"} <= set(sol)


@pytest.mark.parametrize("bounds", [(-np.inf, np.inf), (0.3, 5.0)])
def test_every_prior_density_is_the_petab_librarys(bounds) -> None:
    # -log p of each PEtab v2 distribution, truncated at the bounds, equals the library's density,
    # and autograd's derivative equals a central difference
    import torch
    from petab.v2.core import Parameter

    from stiffml.petab.priors import DENSITIES, Prior

    params = {"normal": [1.0, 2.0], "laplace": [1.0, 0.5], "log-normal": [0.2, 0.7], "log-laplace": [0.1, 0.4],
              "uniform": [0.5, 4.0], "log-uniform": [0.1, 10.0], "cauchy": [1.0, 0.3], "exponential": [2.0],
              "gamma": [2.0, 1.5], "chisquare": [3.0], "rayleigh": [1.2]}
    assert sorted(params) == sorted(DENSITIES)
    xs = np.array([0.7, 1.3, 2.9])
    for name, par in params.items():
        lb, ub = bounds
        if name.startswith("log") or name in ("exponential", "gamma", "chisquare", "rayleigh"):
            lb = max(lb, 0.0)
        library = Parameter(id="k", lb=lb, ub=ub, estimate=True, prior_distribution=name, prior_parameters=par,
                            nominal_value=1.0).prior_dist
        prior = Prior(name, par, lb, ub, "k")
        x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
        ours = torch.stack([prior(x[i:i + 1]) for i in range(3)])
        np.testing.assert_allclose(ours.detach().numpy(), -np.log(library.pdf(xs)), rtol=1e-12, err_msg=name)
        (grad,) = torch.autograd.grad(ours.sum(), x)
        h = 1e-6
        fd = (-np.log(library.pdf(xs + h)) + np.log(library.pdf(xs - h))) / (2 * h)
        np.testing.assert_allclose(grad.numpy(), fd, rtol=1e-5, atol=1e-7, err_msg=name)
    outside = Prior("normal", [0.0, 1.0], 0.3, 5.0, "k")(torch.tensor([0.1], dtype=torch.float64))
    assert float(outside) == np.inf


@pytest.mark.slow
def test_draft_layouts_of_the_problem_file_read_the_same(tmp_path: Path) -> None:
    # the layout of the format's documentation examples and earlier test-suite drafts: one entry
    # under `problems`, `parameter_file`, `extensions.sciml`, `neural_nets` with `static`,
    # `hybridization_file` and `array_files` as a mapping
    folder = _copy(tmp_path)
    spec = yaml.safe_load((folder / "problem.yaml").read_text())
    ext = spec.pop("extensions")["petab_sciml"]
    draft = {
        "format_version": 2,
        "parameter_file": spec.pop("parameter_files")[0],
        "problems": [spec],
        "extensions": {"sciml": {
            "neural_nets": {k: {"location": v["location"], "format": "YAML", "static": v["pre_initialization"]}
                            for k, v in ext["neural_networks"].items()},
            "hybridization_file": ext["hybridization_files"][0],
            "array_files": {f"file{i}": {"location": f, "format": "HDF5"} for i, f in enumerate(ext["array_files"])},
        }},
    }
    (folder / "draft.yaml").write_text(yaml.safe_dump(draft))
    ours, theirs = Problem(folder / "problem.yaml"), Problem(folder / "draft.yaml")
    assert isinstance(theirs, SciMLProblem)
    assert theirs.nllh() == ours.nllh()
    # the suite's earlier parameter tables: a parameterScale column (lin), estimate 1/0, a network
    # row whose nominal value is an array file's id
    table = (folder / "parameters.tsv").read_text().splitlines()
    rows = [line.split("\t") for line in table]
    head = rows[0]
    old = ["\t".join([r[0], "parameterScale" if i == 0 else "lin", *[
        {"true": "1", "false": "0", "array": "file0"}.get(v, v) for v in r[1:]]]) for i, r in enumerate(rows)]
    assert "estimate" in head and "net1_ps\tlin" in "\n".join(old) and "file0" in "\n".join(old)
    (folder / "v1_parameters.tsv").write_text("\n".join(old) + "\n")
    (folder / "v1.yaml").write_text(yaml.safe_dump({**draft, "parameter_file": "v1_parameters.tsv"}))
    earlier = Problem(folder / "v1.yaml")
    assert earlier.nllh() == ours.nllh() and earlier.parameter_ids == ours.parameter_ids
    (folder / "log.tsv").write_text("\n".join(old).replace("\tlin\t", "\tlog10\t", 1) + "\n")
    (folder / "log.yaml").write_text(yaml.safe_dump({**draft, "parameter_file": "log.tsv"}))
    with pytest.raises(PEtabUnsupported, match="parameterScale 'log10' \\(PEtab v1\\) is not read"):
        Problem(folder / "log.yaml")
    draft["problems"] = [spec, spec]
    (folder / "two.yaml").write_text(yaml.safe_dump(draft))
    with pytest.raises(PEtabUnsupported, match="2 problems in one file; stiffml reads one"):
        Problem(folder / "two.yaml")


@pytest.mark.slow
def test_experiments_solved_as_one_batch_give_the_values_of_solves_one_by_one() -> None:
    path = CASES / "pre_init" / "petab" / "problem.yaml"  # two experiments, each one period from t = 0
    together, alone = Problem(path), Problem(path, batch_experiments=False)
    assert together.batch_experiments and not alone.batch_experiments
    assert together.nllh() == pytest.approx(alone.nllh(), rel=1e-9)
    a, b = together.gradient(), alone.gradient()
    for key, value in b.items():
        if isinstance(value, dict):
            for name, arr in value.items():
                np.testing.assert_allclose(a[key][name], arr, rtol=1e-6, atol=1e-8)
        else:
            assert a[key] == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize("case", ["0001", pytest.param("0010", marks=pytest.mark.slow)])
def test_a_plain_petab_v2_problem_reads_with_the_v2_engine(case: str, tmp_path: Path) -> None:
    # a v1 test-suite case converted by the petab library's own converter (no networks, no
    # extension) gives the v1 engine's likelihood and the case's expected one
    from petab.v2.petab1to2 import petab1to2

    source = Path(__file__).parents[1] / "petab_cases" / case
    petab1to2(source / f"_{case}.yaml", tmp_path)
    v2 = Problem(tmp_path / f"_{case}.yaml")
    assert isinstance(v2, SciMLProblem) and v2.networks == {}
    expected = yaml.safe_load((source / f"_{case}_solution.yaml").read_text())["llh"]
    assert -v2.nllh() == pytest.approx(expected, abs=1e-6)
    assert -v2.nllh() == pytest.approx(-Problem(source / f"_{case}.yaml").nllh(), abs=1e-6)
    assert set(v2.gradient()) == set(v2.parameter_ids)


def test_an_event_may_not_assign_what_a_network_replaces(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "events")
    model = folder / "model.xml"
    model.write_text(model.read_text().replace('<ci> k1 </ci>', '<ci> k4 </ci>', 1).replace(
        'variable="k1"', 'variable="k4"').replace('id="k4" value="1.8" constant="true"', 'id="k4" value="1.8" constant="false"'))
    with pytest.raises(PEtabUnsupported, match="event 'E1' assigns 'k4', which a network replaces in the right-hand side"):
        Problem(folder / "problem.yaml")
