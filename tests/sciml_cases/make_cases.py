"""Write the PEtab SciML test cases of this folder, one per placement of a network, with expected
values computed independently of stiffml's SciML engine.

Each case is a PEtab v2 problem with the ``petab_sciml`` extension over a Lotka–Volterra SBML
model: network files (the format's YAML), array files (HDF5), mapping and hybridization tables.
The networks are small tanh MLPs, so each is also a closed-form expression: the expected
simulations and log-likelihood come from an equivalent SBML model in which every network is
written out as that expression (assignment rules, or parameter values computed here), simulated by
libroadrunner's CVODE at tight tolerances; the expected gradients are central differences of that
equivalent model in every estimated parameter and network weight. ``solutions.yaml`` holds them
with the tolerances (as the official PEtab SciML test suite does).

Run ``python tests/sciml_cases/make_cases.py`` to regenerate; the files are committed.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml

HERE = Path(__file__).parent
TIMES = [0.5, 1.0, 2.0, 3.5, 5.0, 7.0]

LV = """
model lv
  compartment c = 1
  species prey in c, predator in c
  R1: -> prey; k1*prey
  R2: prey -> ; k2*prey*predator
  R3: -> predator; k3*prey*predator
  R4: predator -> ; k4*predator
  k1 = 1.3; k2 = 0.9; k3 = 0.8; k4 = 1.8
  prey = 0.44249296; predator = 4.6280594
{extra}
end
"""


class MLP:
    """A tanh MLP with fixed seeded weights: ``W2 tanh(W1 x + b1) + b2``."""

    def __init__(self, net_id: str, n_in: int, hidden: int, n_out: int, seed: int, scale: float = 0.3,
                 bias: list[float] | None = None, arguments: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.net_id, self.n_in, self.hidden, self.n_out = net_id, n_in, hidden, n_out
        self.arguments = arguments  # 2: each input a separate argument, concatenated as the suite's net5
        self.w1 = scale * rng.standard_normal((hidden, n_in))
        self.b1 = scale * rng.standard_normal(hidden)
        self.w2 = scale * rng.standard_normal((n_out, hidden))
        self.b2 = np.asarray(bias if bias is not None else np.zeros(n_out), dtype=np.float64)

    def weights(self) -> dict[str, np.ndarray]:
        return {"layer1.weight": self.w1, "layer1.bias": self.b1, "layer2.weight": self.w2, "layer2.bias": self.b2}

    def set(self, name: str, value: np.ndarray) -> None:
        layer, array = name.split(".")
        attr = {"layer1": {"weight": "w1", "bias": "b1"}, "layer2": {"weight": "w2", "bias": "b2"}}[layer][array]
        setattr(self, attr, value)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.w2 @ np.tanh(self.w1 @ x + self.b1) + self.b2

    def expression(self, inputs: list[str], out: int) -> str:
        """The output as an SBML formula of ``inputs`` (weights written out)."""
        terms = []
        for j in range(self.hidden):
            lin = " + ".join(f"({float(self.w1[j, i])!r})*({inputs[i]})" for i in range(self.n_in))
            terms.append(f"({float(self.w2[out, j])!r})*tanh({lin} + ({float(self.b1[j])!r}))")
        return " + ".join(terms) + f" + ({float(self.b2[out])!r})"

    def write(self, folder: Path) -> None:
        """The network YAML file and its parameters as an HDF5 array file (PyTorch layout)."""
        import torch
        from torch import nn

        from stiffml.hybrid.network_file import write_arrays, write_network

        class Net(nn.Module):
            def __init__(s) -> None:
                super().__init__()
                s.layer1 = nn.Linear(self.n_in, self.hidden)
                s.layer2 = nn.Linear(self.hidden, self.n_out)

            def forward(s, net_input):
                return s.layer2(torch.tanh(s.layer1(net_input)))

        class TwoArguments(Net):
            def forward(s, net_input1, net_input2):  # one sample: (1,) and (1,) concatenated to (2,)
                return s.layer2(torch.tanh(s.layer1(torch.cat([net_input1, net_input2]))))

        module = (Net() if self.arguments == 1 else TwoArguments()).double()
        with torch.no_grad():
            for name, value in self.weights().items():
                module.get_parameter(name).copy_(torch.as_tensor(value))
        write_network(module, self.net_id, folder / f"{self.net_id}.yaml")
        write_arrays(folder / f"{self.net_id}_ps.hdf5", {self.net_id: module})


def simulate(extra: str, parameters: dict[str, float], initial: dict[str, float], times: list[float],
             outputs: list[str], template: str = "") -> np.ndarray:
    """The equivalent SBML model (networks written out) by libroadrunner's CVODE."""
    import antimony
    import roadrunner

    antimony.clearPreviousLoads()
    if antimony.loadAntimonyString((template or LV).format(extra=extra)) < 0:
        raise ValueError(antimony.getLastError())
    rr = roadrunner.RoadRunner(antimony.getSBMLString(antimony.getMainModuleName()))
    rr.integrator.relative_tolerance = 1e-12
    rr.integrator.absolute_tolerance = 1e-14
    for k, v in initial.items():  # before the parameters: setting an initial value resets the model
        rr[f"init([{k}])"] = v
    for k, v in parameters.items():
        rr[k] = v
    rr.timeCourseSelections = ["time", *outputs]
    res = rr.simulate(times=[0.0, *times])
    return np.asarray(res)[1:, 1:]


def nllh_of(measured: np.ndarray, sims: np.ndarray, sigma: np.ndarray, dist: list[str]) -> float:
    total = 0.0
    for m, s, sd, d in zip(measured, sims, sigma, dist):
        if d.startswith("log-"):
            r = (math.log(s) - math.log(m)) / sd
            jac = math.log(m)
        else:
            r, jac = (s - m) / sd, 0.0
        if d.endswith("normal"):
            total += 0.5 * math.log(2 * math.pi) + math.log(sd) + jac + 0.5 * r * r
        else:
            total += math.log(2) + math.log(sd) + jac + abs(r)
    return total


def write_tsv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["\t".join(keys)] + ["\t".join(str(r.get(k, "")) for k in keys) for r in rows]
    path.write_text("\n".join(lines) + "\n")


class Case:
    """One case: tables, networks and the equivalent model's expected values."""

    def __init__(self, name: str, title: str) -> None:
        self.name, self.title = name, title
        self.folder = HERE / name
        shutil.rmtree(self.folder, ignore_errors=True)
        (self.folder / "petab").mkdir(parents=True)
        self.nets: dict[str, tuple[MLP, bool]] = {}
        self.mapping: list[dict] = []
        self.hybrid: list[dict] = []
        self.conditions: list[dict] = []
        self.experiments: list[dict] = []
        self.parameters: list[dict] = []
        self.observables: list[dict] = []
        self.array_files: list[str] = []

    def write(self, measurements: list[dict], expected: np.ndarray, nllh: float,
              gradient: dict[str, Any], model: str = LV) -> None:
        import antimony

        p = self.folder / "petab"
        antimony.clearPreviousLoads()
        antimony.loadAntimonyString(model.format(extra=""))
        (p / "model.xml").write_text(antimony.getSBMLString(antimony.getMainModuleName()))
        for mlp, _ in self.nets.values():
            mlp.write(p)
        write_tsv(p / "mapping.tsv", self.mapping)
        write_tsv(p / "hybridization.tsv", self.hybrid)
        write_tsv(p / "conditions.tsv", self.conditions)
        write_tsv(p / "experiments.tsv", self.experiments)
        write_tsv(p / "parameters.tsv", self.parameters)
        write_tsv(p / "observables.tsv", self.observables)
        write_tsv(p / "measurements.tsv", measurements)
        problem = {
            "format_version": "2.0.0",
            "parameter_files": ["parameters.tsv"],
            "model_files": {"model": {"location": "model.xml", "language": "sbml"}},
            "measurement_files": ["measurements.tsv"],
            "observable_files": ["observables.tsv"],
            "condition_files": ["conditions.tsv"],
            "experiment_files": ["experiments.tsv"],
            "mapping_files": ["mapping.tsv"],
            "extensions": {"petab_sciml": {
                "version": "2.0.0", "required": True,
                "neural_networks": {nid: {"location": f"{nid}.yaml", "format": "YAML", "pre_initialization": pre}
                                    for nid, (_, pre) in self.nets.items()},
                "hybridization_files": ["hybridization.tsv"],
                "array_files": [f"{nid}_ps.hdf5" for nid in self.nets] + self.array_files,
            }},
        }
        (p / "problem.yaml").write_text(yaml.safe_dump(problem, sort_keys=False))
        sims = [dict(m, simulation=repr(float(s))) for m, s in zip(measurements, expected)]
        for row in sims:
            row.pop("measurement")
        write_tsv(self.folder / "simulations.tsv", sims)
        (self.folder / "solutions.yaml").write_text(yaml.safe_dump({
            "title": self.title, "llh": float(-nllh), "tol_llh": 1e-3, "tol_simulations": 1e-3, "tol_grad_llh": 1e-3,
            "grad": gradient,
        }, sort_keys=False))


def measure(expected: np.ndarray, dist: list[str], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = expected * (1 + 0.05 * rng.standard_normal(len(expected)))
    return np.where(noisy > 0, noisy, expected)


def _grad(f: Any, values: dict[str, float], mlps: dict[str, MLP], frozen: set[str]) -> dict[str, Any]:
    """Central differences of the equivalent model's nllh ``f()`` in every estimated value and weight."""
    out: dict[str, Any] = {}
    for pid in list(values):
        v = values[pid]
        h = 1e-5 * max(abs(v), 1.0)
        values[pid] = v + h
        up = f()
        values[pid] = v - h
        down = f()
        values[pid] = v
        out[pid] = float((up - down) / (2 * h))
    for nid, mlp in mlps.items():
        out[nid] = {}
        for name, w in mlp.weights().items():
            if f"{nid}.{name}" in frozen or nid in frozen:
                continue
            g = np.zeros_like(w)
            for idx in np.ndindex(w.shape):
                orig = w[idx]
                w[idx] = orig + 1e-5
                mlp.set(name, w)
                up = f()
                w[idx] = orig - 1e-5
                mlp.set(name, w)
                down = f()
                w[idx] = orig
                mlp.set(name, w)
                g[idx] = (up - down) / 2e-5
            out[nid][name] = g.tolist()
    return out


def net_mapping(net_id: str, n_in: int, n_out: int) -> list[dict[str, str]]:
    """Mapping rows of a network with one input and one output argument: ``<net>_input<i>``,
    ``<net>_output<j>`` and ``<net>_ps`` (all its parameters)."""
    rows = [{"petabEntityId": f"{net_id}_input{i + 1}", "modelEntityId": f"{net_id}.inputs[0][{i}]"} for i in range(n_in)]
    rows += [{"petabEntityId": f"{net_id}_output{j + 1}", "modelEntityId": f"{net_id}.outputs[0][{j}]"}
             for j in range(n_out)]
    return rows + [{"petabEntityId": f"{net_id}_ps", "modelEntityId": f"{net_id}.parameters"}]


def _rhs_case(c: Case, priors: dict[str, tuple[str, str]] | None = None,
              net_priors: list[dict[str, str]] | None = None, neg_log_prior: Any = None,
              values: dict[str, float] | None = None, template: str = "", seed: int = 1) -> None:
    """A network replacing k4 in the rhs (inputs prey and predator), written into ``c``; with
    priors, the parameter table gets the prior columns and the expected objective the prior.
    ``values``: the estimated parameters (``k2_c`` is k2 under the condition); ``template``: the
    model (default ``LV``); ``seed``: of the network's weights and of the noise."""
    net = MLP("net1", 2, 3, 1, seed=seed, bias=[1.8])
    c.nets["net1"] = (net, False)
    c.mapping = net_mapping("net1", 2, 1) + [{"petabEntityId": row["parameterId"], "modelEntityId": row.pop("entity")}
                                             for row in (net_priors or [])]
    c.hybrid = [{"targetId": "net1_input1", "targetValue": "prey"}, {"targetId": "net1_input2", "targetValue": "predator"},
                {"targetId": "k4", "targetValue": "net1_output1"}]
    c.conditions = [{"conditionId": "cond1", "targetId": "k2", "targetValue": "k2_c"}]
    c.experiments = [{"experimentId": "e1", "time": 0, "conditionId": "cond1"}]
    values = values or {"k1": 1.3, "k3": 0.8, "k2_c": 0.9}
    extra = (lambda k: {"priorDistribution": priors.get(k, ("", ""))[0], "priorParameters": priors.get(k, ("", ""))[1]}) \
        if priors is not None else (lambda k: {})
    c.parameters = [{"parameterId": k, "lowerBound": 0, "upperBound": 10, "nominalValue": v, "estimate": "true", **extra(k)}
                    for k, v in values.items()]
    c.parameters.append({"parameterId": "net1_ps", "lowerBound": "-inf", "upperBound": "inf", "nominalValue": "array",
                         "estimate": "true", **extra("net1_ps")})
    c.parameters += [{"lowerBound": "-inf", "upperBound": "inf", "nominalValue": "array", "estimate": "true", **row}
                     for row in (net_priors or [])]
    c.observables = [{"observableId": "prey_o", "observableFormula": "prey", "noiseFormula": 0.05,
                      "noiseDistribution": "normal"},
                     {"observableId": "predator_o", "observableFormula": "predator", "noiseFormula": 0.1,
                      "noiseDistribution": "laplace"}]
    rows = [("prey_o", t) for t in TIMES] + [("predator_o", t) for t in TIMES]
    dist = ["normal"] * len(TIMES) + ["laplace"] * len(TIMES)
    sigma = np.array([0.05] * len(TIMES) + [0.1] * len(TIMES))

    def run() -> np.ndarray:
        model = {**{k: v for k, v in values.items() if k != "k2_c"}, "k2": values["k2_c"]}
        out = simulate(f"  k4 := {net.expression(['prey', 'predator'], 0)}", model, {}, TIMES, ["prey", "predator"],
                       template=template)
        return np.concatenate([out[:, 0], out[:, 1]])

    prior = (lambda: neg_log_prior(values, net)) if neg_log_prior is not None else (lambda: 0.0)
    expected = run()
    measured = measure(expected, dist, seed)
    objective = lambda: nllh_of(measured, run(), sigma, dist) + prior()  # noqa: E731
    grad = _grad(objective, values, {"net1": net}, set())
    value = nllh_of(measured, expected, sigma, dist) + prior() if neg_log_prior is not None \
        else nllh_of(measured, expected, sigma, dist)
    c.write([{"observableId": o, "experimentId": "e1", "time": t, "measurement": repr(float(m))}
             for (o, t), m in zip(rows, measured)], expected, value, grad, model=template or LV)


def case_rhs() -> None:
    _rhs_case(Case("rhs", "a network replaces the parameter k4 inside the right-hand side (inputs prey, predator)"))


def case_pre_init() -> None:
    c = Case("pre_init", "a pre-initialization network sets the parameter k1 and the initial prey from a "
                         "PEtab parameter and a condition-specific input")
    net = MLP("net2", 2, 4, 2, seed=2, bias=[1.3, 0.45])
    c.nets["net2"] = (net, True)
    c.mapping = net_mapping("net2", 2, 2)
    c.hybrid = [{"targetId": "net2_input1", "targetValue": "p_in"},
                {"targetId": "k1", "targetValue": "net2_output1"},
                {"targetId": "prey", "targetValue": "net2_output2"}]
    conds = {"cond1": 0.5, "cond2": 2.0}
    c.conditions = [{"conditionId": k, "targetId": "net2_input2", "targetValue": v} for k, v in conds.items()]
    c.experiments = [{"experimentId": f"e{k[-1]}", "time": 0, "conditionId": k} for k in conds]
    values = {"p_in": 0.7, "k3": 0.8}
    c.parameters = [{"parameterId": k, "lowerBound": 0, "upperBound": 10, "nominalValue": v, "estimate": "true"}
                    for k, v in values.items()]
    c.parameters.append({"parameterId": "net2_ps", "lowerBound": "-inf", "upperBound": "inf",
                         "nominalValue": "array", "estimate": "true"})
    c.observables = [{"observableId": "prey_o", "observableFormula": "prey", "noiseFormula": "sd_prey",
                      "noiseDistribution": "log-normal", "noisePlaceholders": "sd_prey"}]
    c.parameters.append({"parameterId": "sd_prey", "lowerBound": 0.001, "upperBound": 1, "nominalValue": 0.1,
                         "estimate": "false"})
    dist = ["log-normal"] * (2 * len(TIMES))
    sigma = np.full(2 * len(TIMES), 0.1)

    def run() -> np.ndarray:
        sims = []
        for v in conds.values():
            k1, prey0 = net(np.array([values["p_in"], v]))
            sims.append(simulate("", {"k1": k1, "k3": values["k3"]}, {"prey": prey0}, TIMES, ["prey"])[:, 0])
        return np.concatenate(sims)

    expected = run()
    measured = measure(expected, dist, 2)
    grad = _grad(lambda: nllh_of(measured, run(), sigma, dist), values, {"net2": net}, set())
    rows = [{"observableId": "prey_o", "experimentId": f"e{k[-1]}", "time": t, "noiseParameters": "sd_prey"}
            for k in conds for t in TIMES]
    c.write([dict(r, measurement=repr(float(m))) for r, m in zip(rows, measured)], expected,
            nllh_of(measured, expected, sigma, dist), grad)


def case_observable() -> None:
    c = Case("observable", "a network of prey and predator is the observable (laplace noise)")
    net = MLP("net3", 2, 3, 1, seed=3, bias=[1.0])
    c.nets["net3"] = (net, False)
    c.mapping = net_mapping("net3", 2, 1)
    c.hybrid = [{"targetId": "net3_input1", "targetValue": "prey"},
                {"targetId": "net3_input2", "targetValue": "predator"}]
    c.conditions = [{"conditionId": "cond1", "targetId": "predator", "targetValue": 3.0}]
    c.experiments = [{"experimentId": "e1", "time": 0, "conditionId": "cond1"}]
    values = {"k1": 1.3, "k4": 1.8}
    c.parameters = [{"parameterId": k, "lowerBound": 0, "upperBound": 10, "nominalValue": v, "estimate": "true"}
                    for k, v in values.items()]
    c.parameters.append({"parameterId": "net3_ps", "lowerBound": "-inf", "upperBound": "inf",
                         "nominalValue": "array", "estimate": "true"})
    c.observables = [{"observableId": "mix", "observableFormula": "net3_output1 + 0.1*prey", "noiseFormula": 0.05,
                      "noiseDistribution": "laplace"}]
    dist = ["laplace"] * len(TIMES)
    sigma = np.full(len(TIMES), 0.05)

    def run() -> np.ndarray:
        out = simulate("", {"k1": values["k1"], "k4": values["k4"]}, {"predator": 3.0}, TIMES,
                       ["prey", "predator"])
        return np.array([net(x)[0] + 0.1 * x[0] for x in out])

    expected = run()
    measured = measure(expected, dist, 3)
    grad = _grad(lambda: nllh_of(measured, run(), sigma, dist), values, {"net3": net}, set())
    c.write([{"observableId": "mix", "experimentId": "e1", "time": t, "measurement": repr(float(m))}
             for t, m in zip(TIMES, measured)], expected, nllh_of(measured, expected, sigma, dist), grad)


def case_two_networks() -> None:
    c = Case("two_networks", "two networks: one with two outputs in the right-hand side (k4 and k3), its "
                             "first layer frozen; a pre-initialization one with fixed weights from an array input")
    rhs = MLP("net1", 2, 3, 2, seed=4, bias=[1.8, 0.8])
    pre = MLP("net2", 3, 2, 1, seed=5, bias=[1.3])
    c.nets["net1"] = (rhs, False)
    c.nets["net2"] = (pre, True)
    c.mapping = [{"petabEntityId": "net1_input1", "modelEntityId": "net1.inputs[0][0]"},
                 {"petabEntityId": "net1_input2", "modelEntityId": "net1.inputs[0][1]"},
                 {"petabEntityId": "net1_output1", "modelEntityId": "net1.outputs[0][0]"},
                 {"petabEntityId": "net1_output2", "modelEntityId": "net1.outputs[0][1]"},
                 {"petabEntityId": "net1_ps", "modelEntityId": "net1.parameters"},
                 {"petabEntityId": "net1_layer1", "modelEntityId": "net1.parameters[layer1]"},
                 {"petabEntityId": "net2_in", "modelEntityId": "net2.inputs[0]"},
                 {"petabEntityId": "net2_output1", "modelEntityId": "net2.outputs[0][0]"},
                 {"petabEntityId": "net2_ps", "modelEntityId": "net2.parameters"}]
    c.hybrid = [{"targetId": "net1_input1", "targetValue": "prey"}, {"targetId": "net1_input2", "targetValue": "predator"},
                {"targetId": "k4", "targetValue": "net1_output1"}, {"targetId": "k3", "targetValue": "net1_output2"},
                {"targetId": "net2_in", "targetValue": "array"}, {"targetId": "k1", "targetValue": "net2_output1"}]
    inputs = {"cond1": np.array([0.2, -0.4, 1.0]), "cond2": np.array([1.5, 0.3, -0.7])}
    c.conditions = [{"conditionId": k, "targetId": "k2", "targetValue": 0.9} for k in inputs]
    c.experiments = [{"experimentId": f"e{k[-1]}", "time": 0, "conditionId": k} for k in inputs]
    c.parameters = [
        {"parameterId": "net1_ps", "lowerBound": "-inf", "upperBound": "inf", "nominalValue": "array", "estimate": "true"},
        {"parameterId": "net1_layer1", "lowerBound": "-inf", "upperBound": "inf", "nominalValue": "array",
         "estimate": "false"},
        {"parameterId": "net2_ps", "lowerBound": "-inf", "upperBound": "inf", "nominalValue": "array", "estimate": "false"},
    ]
    c.observables = [{"observableId": "predator_o", "observableFormula": "predator", "noiseFormula": 0.1,
                      "noiseDistribution": "normal"}]
    import h5py

    with h5py.File(c.folder / "petab" / "net2_inputs.hdf5", "w") as f:
        f["metadata/pytorch_format"] = True
        for k, v in inputs.items():
            f[f"inputs/net2_in/{k}"] = v
    c.array_files = ["net2_inputs.hdf5"]
    dist = ["normal"] * (2 * len(TIMES))
    sigma = np.full(2 * len(TIMES), 0.1)
    values: dict[str, float] = {}

    def run() -> np.ndarray:
        sims = []
        for x in inputs.values():
            (k1,) = pre(x)
            extra = (f"  k4 := {rhs.expression(['prey', 'predator'], 0)}\n"
                     f"  k3 := {rhs.expression(['prey', 'predator'], 1)}")
            sims.append(simulate(extra, {"k1": k1, "k2": 0.9}, {}, TIMES, ["predator"])[:, 0])
        return np.concatenate(sims)

    expected = run()
    measured = measure(expected, dist, 4)
    frozen = {"net1.layer1.weight", "net1.layer1.bias", "net2"}
    grad = _grad(lambda: nllh_of(measured, run(), sigma, dist), values, {"net1": rhs, "net2": pre}, frozen)
    grad["net2"] = {}
    points = [(k, t) for k in inputs for t in TIMES]
    c.write([{"observableId": "predator_o", "experimentId": f"e{k[-1]}", "time": t, "measurement": repr(float(m))}
             for (k, t), m in zip(points, measured)], expected, nllh_of(measured, expected, sigma, dist), grad)


def case_arguments() -> None:
    """Networks whose inputs are separate arguments (the official suite's net5: two one-element
    arguments concatenated inside the network), in all three placements: before the simulation
    (k1 and the initial prey from a parameter and a condition value), in the right-hand side (k4
    from prey and predator) and in an observable (of prey and predator)."""
    c = Case("arguments", "networks of two input arguments before the simulation, in the right-hand side and in "
                          "an observable")
    pre = MLP("net2", 2, 3, 2, seed=7, bias=[1.3, 0.45], arguments=2)
    rhs = MLP("net1", 2, 3, 1, seed=8, bias=[1.8], arguments=2)
    obs = MLP("net3", 2, 3, 1, seed=9, bias=[1.0], arguments=2)
    c.nets = {"net2": (pre, True), "net1": (rhs, False), "net3": (obs, False)}
    c.mapping = []
    for nid, n_out in (("net2", 2), ("net1", 1), ("net3", 1)):
        c.mapping += [{"petabEntityId": f"{nid}_arg{a}", "modelEntityId": f"{nid}.inputs[{a}][0]"} for a in range(2)]
        c.mapping += [{"petabEntityId": f"{nid}_output{j + 1}", "modelEntityId": f"{nid}.outputs[0][{j}]"}
                      for j in range(n_out)]
        c.mapping.append({"petabEntityId": f"{nid}_ps", "modelEntityId": f"{nid}.parameters"})
    c.hybrid = [{"targetId": "net2_arg0", "targetValue": "p_in"},
                {"targetId": "k1", "targetValue": "net2_output1"}, {"targetId": "prey", "targetValue": "net2_output2"},
                {"targetId": "net1_arg0", "targetValue": "prey"}, {"targetId": "net1_arg1", "targetValue": "predator"},
                {"targetId": "k4", "targetValue": "net1_output1"},
                {"targetId": "net3_arg0", "targetValue": "prey"}, {"targetId": "net3_arg1", "targetValue": "predator"}]
    conds = {"cond1": 0.5, "cond2": 2.0}
    c.conditions = [{"conditionId": k, "targetId": "net2_arg1", "targetValue": v} for k, v in conds.items()]
    c.experiments = [{"experimentId": f"e{k[-1]}", "time": 0, "conditionId": k} for k in conds]
    values = {"p_in": 0.7, "k3": 0.8}
    c.parameters = [{"parameterId": k, "lowerBound": 0, "upperBound": 10, "nominalValue": v, "estimate": "true"}
                    for k, v in values.items()]
    c.parameters += [{"parameterId": f"{nid}_ps", "lowerBound": "-inf", "upperBound": "inf", "nominalValue": "array",
                      "estimate": "true"} for nid in ("net2", "net1", "net3")]
    c.observables = [{"observableId": "prey_o", "observableFormula": "prey", "noiseFormula": 0.05,
                      "noiseDistribution": "normal"},
                     {"observableId": "mix", "observableFormula": "net3_output1 + 0.1*prey", "noiseFormula": 0.05,
                      "noiseDistribution": "laplace"}]
    dist = (["normal"] * len(TIMES) + ["laplace"] * len(TIMES)) * len(conds)
    sigma = np.full(len(dist), 0.05)

    def run() -> np.ndarray:
        sims = []
        for v in conds.values():
            k1, prey0 = pre(np.array([values["p_in"], v]))
            out = simulate(f"  k4 := {rhs.expression(['prey', 'predator'], 0)}", {"k1": k1, "k3": values["k3"]},
                           {"prey": prey0}, TIMES, ["prey", "predator"])
            sims += [out[:, 0], np.array([obs(x)[0] + 0.1 * x[0] for x in out])]
        return np.concatenate(sims)

    expected = run()
    measured = measure(expected, dist, 7)
    grad = _grad(lambda: nllh_of(measured, run(), sigma, dist), values, {"net2": pre, "net1": rhs, "net3": obs}, set())
    rows = [{"observableId": o, "experimentId": f"e{k[-1]}", "time": t} for k in conds for o in ("prey_o", "mix")
            for t in TIMES]
    c.write([dict(r, measurement=repr(float(m))) for r, m in zip(rows, measured)], expected,
            nllh_of(measured, expected, sigma, dist), grad)


# LV with a dose: at t_dose the prey jumps by `dose` and the prey's growth halves
LV_EVENT = LV.replace("{extra}", """  t_dose = 2.2; dose = 0.6
  E1: at time >= t_dose: prey = prey + dose, k1 = 0.5*k1
{extra}""")


def case_events() -> None:
    """A timed event (its time and size estimated) in a model whose k4 is a network in the rhs."""
    _rhs_case(Case("events", "an SBML event at an estimated time adds an estimated dose and halves k1, with a "
                             "network replacing k4 in the right-hand side"),
              values={"k1": 1.3, "k2_c": 0.9, "t_dose": 2.2, "dose": 0.6}, template=LV_EVENT, seed=11)


PS = """
model ps
  compartment c = 1
  species X in c, Y in c
  S: -> X; kin*u
  D: X -> Y; kx*X
  E: Y -> ; ky*Y
  kin = 1; u = 0.5; kx = 0.7; ky = 0.3
  X = 0; Y = 0
{extra}
end
"""


def case_periods() -> None:
    """Pre-equilibration and a change of condition during the experiment, with a network in the rhs."""
    import antimony
    import roadrunner

    c = Case("periods", "pre-equilibration at u = 0.5, then u = 2 with X set to 0.1 at t = 0, then u = 0 from "
                        "t = 5; a network of X and Y replaces ky in the right-hand side")
    net = MLP("net1", 2, 3, 1, seed=6, scale=0.1, bias=[0.3])
    c.nets["net1"] = (net, False)
    c.mapping = net_mapping("net1", 2, 1)
    c.hybrid = [{"targetId": "net1_input1", "targetValue": "X"}, {"targetId": "net1_input2", "targetValue": "Y"},
                {"targetId": "ky", "targetValue": "net1_output1"}]
    c.conditions = [{"conditionId": "pre", "targetId": "u", "targetValue": 0.5},
                    {"conditionId": "main", "targetId": "u", "targetValue": "u_main"},
                    {"conditionId": "main", "targetId": "X", "targetValue": 0.1},
                    {"conditionId": "late", "targetId": "u", "targetValue": 0.0}]
    c.experiments = [{"experimentId": "e1", "time": "-inf", "conditionId": "pre"},
                     {"experimentId": "e1", "time": 0, "conditionId": "main"},
                     {"experimentId": "e1", "time": 5, "conditionId": "late"}]
    values = {"kx": 0.7, "u_main": 2.0}
    c.parameters = [{"parameterId": k, "lowerBound": 0, "upperBound": 10, "nominalValue": v, "estimate": "true"}
                    for k, v in values.items()]
    c.parameters.append({"parameterId": "net1_ps", "lowerBound": "-inf", "upperBound": "inf", "nominalValue": "array",
                         "estimate": "true"})
    c.observables = [{"observableId": "x_o", "observableFormula": "X", "noiseFormula": 0.02, "noiseDistribution": "normal"},
                     {"observableId": "y_o", "observableFormula": "Y", "noiseFormula": 0.02, "noiseDistribution": "normal"}]
    times = [0.0, 0.5, 1.0, 2.0, 4.0, 5.0, 6.0, 8.0, 10.0]

    def run() -> np.ndarray:
        antimony.clearPreviousLoads()
        antimony.loadAntimonyString(PS.format(extra=f"  ky := {net.expression(['X', 'Y'], 0)}"))
        rr = roadrunner.RoadRunner(antimony.getSBMLString(antimony.getMainModuleName()))
        rr.integrator.relative_tolerance, rr.integrator.absolute_tolerance = 1e-12, 1e-14
        rr["kx"], rr["u"] = values["kx"], 0.5
        rr.timeCourseSelections = ["time", "X", "Y"]
        rr.simulate(0.0, 1e4, 2)  # the pre-equilibration: far past every time scale (rates 0.3 .. 0.7)
        rr["u"], rr["X"] = values["u_main"], 0.1
        first = np.asarray(rr.simulate(times=[0.0, *times[1:6]]))[:, 1:]
        rr["u"] = 0.0
        second = np.asarray(rr.simulate(times=times[5:]))[1:, 1:]
        out = np.vstack([first, second])
        return np.concatenate([out[:, 0], out[:, 1]])

    expected = run()
    dist = ["normal"] * (2 * len(times))
    sigma = np.full(2 * len(times), 0.02)
    measured = measure(expected, dist, 6)
    grad = _grad(lambda: nllh_of(measured, run(), sigma, dist), values, {"net1": net}, set())
    rows = [("x_o", t) for t in times] + [("y_o", t) for t in times]
    c.write([{"observableId": o, "experimentId": "e1", "time": t, "measurement": repr(float(m))}
             for (o, t), m in zip(rows, measured)], expected, nllh_of(measured, expected, sigma, dist), grad,
            model=PS)


def case_priors() -> None:
    """The rhs case with priors: a truncated normal and a log-normal on mechanistic parameters, a
    normal on every weight of the network and a wider one on its first layer's weight matrix
    (the more specific row wins). The expected objective is the negative log-posterior."""
    from scipy import stats

    def neg_log_prior(values: dict[str, float], net: MLP) -> float:
        # scipy's densities, truncated at the bounds [0, 10] by their own cdf
        k1 = stats.norm(1.0, 0.5)
        k3 = stats.lognorm(s=1.0, scale=1.0)
        out = -k1.logpdf(values["k1"]) + np.log(k1.cdf(10) - k1.cdf(0))
        out += -k3.logpdf(values["k3"]) + np.log(k3.cdf(10))
        for name, w in net.weights().items():
            out += -stats.norm(0.0, 2.0 if name == "layer1.weight" else 1.0).logpdf(w).sum()
        return float(out)

    _rhs_case(Case("priors", "the rhs case with priors on mechanistic parameters, the network and one of its arrays"),
              priors={"k1": ("normal", "1.0;0.5"), "k3": ("log-normal", "0.0;1.0"), "net1_ps": ("normal", "0.0;1.0")},
              net_priors=[{"parameterId": "net1_layer1_weight", "entity": "net1.parameters[layer1].weight",
                           "priorDistribution": "normal", "priorParameters": "0.0;2.0"}],
              neg_log_prior=neg_log_prior)


def _suite_h5(path: Path, group: str, entry: str, data: np.ndarray) -> None:
    """A file in the PEtab SciML suite's layout: ``/<group>/<entry>/data``, ``metadata/perm = row``."""
    import h5py

    with h5py.File(path, "w") as f:
        f[f"{group}/{entry}/data"] = data
        f["metadata/perm"] = "row"


def case_net_import() -> None:
    """A network-import case in the suite's layout (``ml_model_import``): a 1-d convolution, batch
    normalisation in training mode (batch statistics, as the suite's reference runs it), a flatten
    and a linear layer, written as a network YAML file; three random inputs and parameter sets,
    the outputs of the same torch module defined here."""
    import torch
    from torch import nn

    from stiffml.hybrid.network_file import write_network

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer1 = nn.Conv1d(2, 3, 3)
            self.layer2 = nn.BatchNorm1d(3)
            self.layer3 = nn.Flatten()
            self.layer4 = nn.Linear(12, 2)

        def forward(self, net_input: torch.Tensor) -> torch.Tensor:
            x = torch.nn.functional.gelu(self.layer2(self.layer1(net_input)))
            return torch.sigmoid(self.layer4(self.layer3(x)))

    folder = HERE / "net_import"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    torch.manual_seed(3)
    net = Net().double().train()
    write_network(net, "net0", folder / "net.yaml")
    solution: dict[str, Any] = {"net_file": "net.yaml", "net_input": [], "net_ps": [], "net_output": []}
    for i in range(1, 4):
        with torch.no_grad():
            for prm in net.parameters():
                prm.copy_(torch.randn_like(prm))
        x = torch.randn(4, 2, 6, dtype=torch.float64)
        with torch.no_grad():
            y = net(x)
        import h5py

        with h5py.File(folder / f"net_ps_{i}.hdf5", "w") as f:
            for name, prm in net.named_parameters():
                layer, array = name.split(".")
                f[f"parameters/net0/{layer}/{array}"] = prm.detach().numpy()
            f["metadata/perm"] = "row"
        _suite_h5(folder / f"net_input_{i}.hdf5", "inputs", "input0", x.numpy())
        _suite_h5(folder / f"net_output_{i}.hdf5", "outputs", "output0", y.numpy())
        for key, stem in (("net_input", "net_input"), ("net_ps", "net_ps"), ("net_output", "net_output")):
            solution[key].append(f"{stem}_{i}.hdf5")
    (folder / "solutions.yaml").write_text(yaml.safe_dump(solution, sort_keys=False))


def case_initialization() -> None:
    """An initialization case in the suite's layout: the rhs problem where the network's row has
    no nominal value (its values come from the array file) and a row for its first layer sets
    every weight of that layer to 0; the reference file holds what the network must start from."""
    import h5py

    src = HERE / "rhs" / "petab"
    folder = HERE / "initialization"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(src, folder / "petab")
    p = folder / "petab"
    params = (p / "parameters.tsv").read_text().replace("net1_ps\t-inf\tinf\tarray\ttrue", "net1_ps\t-inf\tinf\t\ttrue")
    (p / "parameters.tsv").write_text(params + "net1_layer1\t-inf\tinf\t0.0\ttrue\n")
    (p / "mapping.tsv").write_text((p / "mapping.tsv").read_text() + "net1_layer1\tnet1.parameters[layer1]\n")
    with h5py.File(p / "net1_ps.hdf5", "r") as f, h5py.File(folder / "net1_ref.hdf5", "w") as ref:
        for layer in ("layer1", "layer2"):
            for array in ("weight", "bias"):
                value = np.asarray(f[f"parameters/net1/{layer}/{array}"])
                ref[f"parameters/net1/{layer}/{array}"] = np.zeros_like(value) if layer == "layer1" else value
        ref["metadata/perm"] = "row"
    (folder / "solutions.yaml").write_text(yaml.safe_dump({"parameter_files": {"net1": "net1_ref.hdf5"}, "tol": 1e-3}))


if __name__ == "__main__":
    case_rhs()
    case_pre_init()
    case_observable()
    case_two_networks()
    case_periods()
    case_priors()
    case_net_import()
    case_initialization()
    case_arguments()
    case_events()
    print("wrote", sorted(p.name for p in HERE.iterdir() if p.is_dir()))
