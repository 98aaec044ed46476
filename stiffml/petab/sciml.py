"""PEtab SciML problems: PEtab v2 tables, an SBML model and neural networks placed inside it.

A network is placed in one of three ways (the extension's hybridization types):

* **pre-initialization** (``pre_initialization: true``): its inputs are PEtab parameters, numbers,
  condition values or array data; its outputs set model parameters or species' initial values,
  evaluated once per experiment before the simulation;
* **in the right-hand side**: its inputs are expressions of species, parameters and time; its
  outputs replace model parameters inside the ODE, evaluated at every right-hand-side call through
  the differentiable stiff solver (Rosenbrock23 on the generated torch math);
* **in an observable**: its outputs' PEtab ids appear in observable formulas, evaluated at the
  measurement times.

The PEtab v2 tables are read by the ``petab`` library (``petab.v2``); the network files and array
files by :mod:`stiffml.hybrid.network_file`; the hybridization table (two columns) with pandas.
The likelihood is ordinary torch code, so autograd gives the gradient with respect to the
mechanistic parameters and every estimated network weight.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp
import torch
from torch import Tensor

from stiffml.hybrid.network_file import NetworkFile, load_parameters, read_arrays, read_network
from stiffml.petab.likelihood import neg_log_likelihood, residual
from stiffml.petab.errors import PEtabError, PEtabUnsupported
from stiffml.petab.priors import DENSITIES, Prior, read_prior
from stiffml.sbml.document import SBMLError
from stiffml.sbml.math import T

_ENTITY = re.compile(r"^(?P<net>[A-Za-z_]\w*)\.(?P<kind>inputs|outputs|parameters)(?P<rest>.*)$")
_INDEX = re.compile(r"\[([^\]]*)\]")
DISTRIBUTIONS = {"normal": ("lin", "normal"), "laplace": ("lin", "laplace"),
                 "log-normal": ("log", "normal"), "log-laplace": ("log", "laplace")}


class SciMLError(PEtabError):
    """A PEtab SciML problem that cannot be read (one line)."""


@dataclasses.dataclass
class _Net:
    file: NetworkFile
    pre_init: bool
    inputs: dict[tuple[int, int], str] = dataclasses.field(default_factory=dict)   # (arg, index) -> petab id
    outputs: dict[tuple[int, int], str] = dataclasses.field(default_factory=dict)  # (arg, index) -> petab id
    input_arrays: dict[int, str] = dataclasses.field(default_factory=dict)          # arg -> input id (array)

    @property
    def module(self) -> torch.nn.Module:
        return self.file.module


def _bound(value: Any, default: float) -> float:
    """A bound from the parameter table (blank: ``default``)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return default if np.isnan(out) else out


def _extension(spec: dict) -> dict | None:
    """The SciML extension's block: ``extensions.petab_sciml`` (the format), or ``extensions.sciml``
    or the extension's keys straight under ``extensions`` (earlier drafts, still in the format's
    documentation and test suite history)."""
    ext = spec.get("extensions") or {}
    if not isinstance(ext, dict):
        return None
    for key in ("petab_sciml", "sciml"):
        if isinstance(ext.get(key), dict):
            return ext[key]
    return ext if ("neural_networks" in ext or "neural_nets" in ext) else None


def normalise_spec(spec: dict) -> tuple[dict, dict]:
    """``(core, extension)`` of a SciML problem YAML in the layout this reader uses: one problem at
    the top level with ``parameter_files``; the extension with ``neural_networks`` (each with
    ``pre_initialization``), ``hybridization_files`` and ``array_files`` as lists.

    Drafts of the format wrote ``problems: [...]`` with ``parameter_file``, ``neural_nets``,
    ``static`` (a network evaluated once before the simulation: pre-initialization),
    ``hybridization_file`` and ``array_files`` as a mapping of ids to files; they are read too.
    """
    ext = dict(_extension(spec) or {})
    core = {k: v for k, v in spec.items() if k not in ("extensions", "problems", "parameter_file")}
    problems = spec.get("problems")
    if problems:
        if len(problems) != 1:
            raise PEtabUnsupported(f"{len(problems)} problems in one file; stiffml reads one")
        core.update(problems[0])
    if "parameter_file" in spec and "parameter_files" not in core:
        files = spec["parameter_file"]
        core["parameter_files"] = [files] if isinstance(files, str) else list(files)
    nets = ext.get("neural_networks", ext.get("neural_nets")) or {}
    ext["neural_networks"] = {
        net_id: {**info, "pre_initialization": bool(info.get("pre_initialization", info.get("static", False)))}
        for net_id, info in nets.items()}
    if "hybridization_file" in ext and "hybridization_files" not in ext:
        ext["hybridization_files"] = [ext["hybridization_file"]]
    arrays = ext.get("array_files") or []
    # a mapping's ids may stand as a network row's nominal value: "take it from that file"
    ext["array_file_ids"] = [str(k) for k in arrays] if isinstance(arrays, dict) else []
    ext["array_files"] = list(arrays.values()) if isinstance(arrays, dict) else list(arrays)
    return core, ext


def is_sciml(spec: Any) -> bool:
    """Whether a problem YAML's content is for this engine: PEtab v2, with the SciML extension or
    without it (a v2 problem without networks is a SciML problem with none)."""
    return isinstance(spec, dict) and str(spec.get("format_version", "")).startswith("2")


def _indices(text: str) -> list[str]:
    return [m.group(1).strip() for m in _INDEX.finditer(text)]


class SciMLProblem:
    """A PEtab SciML problem (PEtab v2 + the ``petab_sciml`` extension), or any PEtab v2 problem
    (one without the extension has no networks).

    Use :class:`stiffml.petab.Problem`, which returns this class for such files.

    Args:
        path: The problem's YAML file.
        rtol: Relative tolerance of the solves.
        atol: Absolute tolerance.
        solver: A differentiable torch solver of the registry (``rosenbrock23``, stiff;
            ``dopri5``, …), or ``auto`` (default): dopri5, and Rosenbrock23 from the first solve
            that exceeds dopri5's step budget (a stiff problem). Measured on the Lotka–Volterra
            cases at rtol 1e-10: dopri5 0.34 s and 7e-9 from the expected llh, Rosenbrock23 at
            rtol 1e-9 5.8 s and 4e-4 (its order is low, so tight tolerances cost it many steps).
        batch_experiments: Solve experiments of one period that start at the same time together
            (one solve over the union of their times, the networks evaluated on the whole batch);
            ``False``: one solve per experiment (the same values, to solver tolerance).

    Attributes:
        parameter_ids: The estimated mechanistic parameters (PEtab v2: linear scale).
        nominal: Their nominal values.
        networks: ``{net id: torch module}``; estimated weights have ``requires_grad``.
    """

    def __init__(self, path: str | Path, rtol: float = 1e-10, atol: float = 1e-12, solver: str = "auto",
                 batch_experiments: bool = True) -> None:
        import pandas as pd
        import yaml

        from stiffml.solvers import check_solver

        self.path = Path(path)
        self.rtol, self.atol = float(rtol), float(atol)
        if solver != "auto":
            check_solver(solver, self.rtol, self.atol, None, False)
        self.solver = solver
        self.batch_experiments = bool(batch_experiments)
        self._method = "dopri5" if solver == "auto" else solver
        label = str(self.path)
        try:
            spec, ext = normalise_spec(yaml.safe_load(self.path.read_text()))
        except PEtabUnsupported as err:
            raise PEtabUnsupported(f"{label}: {err}") from None
        base = self.path.parent

        # networks and arrays
        self._nets: dict[str, _Net] = {}
        for net_id, info in (ext.get("neural_networks") or {}).items():
            fmt = str(info.get("format", "yaml")).lower()
            if fmt != "yaml":
                raise PEtabUnsupported(f"{label}: network {net_id!r} is in format {fmt!r}; stiffml reads the 'yaml' format")
            file = read_network(base / info["location"])
            file.module.double()
            self._nets[net_id] = _Net(file, bool(info.get("pre_initialization", False)))
        self._arrays = {"parameters": {}, "inputs": {}}
        for loc in ext.get("array_files") or []:
            arrays = read_arrays(base / (loc["location"] if isinstance(loc, dict) else loc))
            for key in ("parameters", "inputs"):
                self._arrays[key].update(arrays[key])

        # the mapping table names the networks' inputs, outputs and parameters
        mapping_files = spec.get("mapping_files") or []
        mapping = pd.concat([pd.read_csv(base / f, sep="\t", dtype=str) for f in mapping_files]) if mapping_files \
            else pd.DataFrame(columns=["petabEntityId", "modelEntityId"])
        self._net_params: dict[str, tuple[str, str | None, str | None]] = {}
        for petab_id, model_id in zip(mapping["petabEntityId"], mapping["modelEntityId"]):
            m = _ENTITY.match(str(model_id))
            if not m:
                continue
            net_id, kind, rest = m.group("net"), m.group("kind"), m.group("rest")
            if net_id not in self._nets:
                raise SciMLError(f"{label}: the mapping table names network {net_id!r} ({model_id}); the problem's "
                                 f"networks are {sorted(self._nets)}")
            net = self._nets[net_id]
            if kind == "parameters":
                layer = _indices(rest)[0] if rest.startswith("[") else None
                array = rest.split("].", 1)[1].split("[")[0] if "]." in rest else None
                self._net_params[str(petab_id)] = (net_id, layer, array)
                continue
            idx = [int(i) for i in _indices(rest)]
            if kind == "inputs":
                if len(idx) == 1:
                    net.input_arrays[idx[0]] = str(petab_id)
                else:
                    net.inputs[(idx[0], idx[1])] = str(petab_id)
            else:
                net.outputs[(idx[0], idx[1] if len(idx) > 1 else 0)] = str(petab_id)

        # the core tables through the library (net parameter rows, which it cannot type, set aside)
        params = pd.concat([pd.read_csv(base / f, sep="\t", dtype=str) for f in spec.get("parameter_files") or []])
        params = self._v1_columns(params, label)
        self._array_file_ids = set(ext.get("array_file_ids") or [])
        for pid, dist in zip(params["parameterId"], params.get("priorDistribution", pd.Series(dtype=str))):
            if isinstance(dist, str) and dist.strip() and dist.strip() not in DENSITIES:  # before the library's long message
                raise PEtabUnsupported(f"{label}: parameter {pid!r}: prior distribution {dist.strip()!r} is not "
                                       f"supported; valid: {sorted(DENSITIES)}")
        is_net = params["parameterId"].isin(list(self._net_params)) | params["parameterId"].isin(list(self._nets))
        self._net_rows = params[is_net]
        core = dict(spec)
        with tempfile.TemporaryDirectory() as tmp:
            table = Path(tmp) / "parameters.tsv"
            params[~is_net].to_csv(table, sep="\t", index=False)
            core["parameter_files"] = [str(table)]
            core["mapping_files"] = [str((base / f).resolve()) for f in mapping_files]
            import petab.v2 as v2

            try:
                self.petab = v2.Problem.from_yaml(core, base_path=str(base))
            except Exception as err:
                raise SciMLError(f"{label}: the petab library cannot read it: {' '.join(str(err).split())[:300]}") \
                    from None
        hyb = [pd.read_csv(base / f, sep="\t", dtype=str) for f in ext.get("hybridization_files") or []]
        self._hybrid = pd.concat(hyb) if hyb else pd.DataFrame(columns=["targetId", "targetValue"])

        self._read_model(label)
        self._read_parameters(label)
        self._wire_networks(label)
        self._read_events(label)
        self._build_observables(label)

    # ------------------------------------------------------------------------------ reading
    def _read_model(self, label: str) -> None:
        from stiffml.sbml.system import _compile

        models = self.petab.models
        if len(models) != 1:
            raise PEtabUnsupported(f"{label}: {len(models)} models; stiffml reads exactly one SBML model")
        model = models[0]
        location = getattr(model, "_sbml_path", None) or getattr(model, "path", None)
        text = model.to_sbml_str() if hasattr(model, "to_sbml_str") else None
        with tempfile.TemporaryDirectory() as tmp:
            sbml = Path(location) if location and Path(str(location)).is_file() else Path(tmp) / "model.xml"
            if text is not None and not sbml.is_file():
                sbml.write_text(text)
            try:
                self.math, _, _, _ = _compile(sbml)
            except SBMLError as err:
                raise SciMLError(str(err)) from None
        if self.math.rhs is None:
            why = "; ".join(self.math.unsupported)
            raise PEtabUnsupported(f"{label}: the SBML model uses what the torch engine cannot simulate: {why}")
        self._model_ids = {*self.math.species, *self.math.compartments, *self.math.parameters, *self.math.reactions}

    @staticmethod
    def _v1_columns(params: Any, label: str) -> Any:
        """The test suite's earlier parameter tables in PEtab v2 form: ``estimate`` 1/0 as
        true/false and a ``parameterScale`` column of ``lin`` only (v2 has no scales) dropped."""
        if "estimate" in params:
            params["estimate"] = params["estimate"].replace({"1": "true", "0": "false"})
        if "parameterScale" in params:
            scales = sorted(set(params["parameterScale"].dropna().str.strip()) - {"lin", ""})
            if scales:
                raise PEtabUnsupported(f"{label}: parameterScale {scales[0]!r} (PEtab v1) is not read in a PEtab v2 "
                                       "problem, whose parameters are on their linear scale; valid: ['lin']")
            params = params.drop(columns="parameterScale")
        return params

    def _read_parameters(self, label: str) -> None:
        self._values: dict[str, float] = {}
        self.parameter_ids: list[str] = []
        self._mech_priors: list[tuple[int, Prior]] = []
        for p in self.petab.parameters:
            value = float(p.nominal_value) if p.nominal_value is not None else float("nan")
            self._values[p.id] = value
            if p.estimate:
                prior = read_prior(p, _bound(p.lb, -np.inf), _bound(p.ub, np.inf), f"{label}: parameter {p.id!r}")
                if prior is not None:
                    self._mech_priors.append((len(self.parameter_ids), prior))
                self.parameter_ids.append(p.id)
        self.nominal = np.array([self._values[i] for i in self.parameter_ids])
        self._net_priors: dict[tuple[str, str], Prior] = {}  # (net id, state-dict name) -> prior
        # network parameters: whole net, then layer, then array (the more specific wins)
        rows = sorted(self._net_rows.itertuples(index=False), key=lambda r: self._specificity(r.parameterId))
        self._frozen: set[str] = set()
        for row in rows:
            pid = str(row.parameterId)
            net_id, layer, array = self._net_params.get(pid, (pid, None, None))
            net = self._nets[net_id]
            targets = self._net_tensors(net, layer, array, label)
            nominal = str(getattr(row, "nominalValue", "") or "").strip()
            if nominal.lower() == "nan":
                nominal = ""
            if nominal in self._array_file_ids:  # an array file's id (the suite's earlier layout): its values
                nominal = "array"
            if nominal == "array" or (not nominal and self._arrays["parameters"].get(net_id) is not None):
                # "array", or no value at all: the values of the array files
                stored = self._arrays["parameters"].get(net_id)
                if stored is None:
                    raise SciMLError(f"{label}: parameter {pid!r} takes its values from an array file, which has none "
                                     f"for network {net_id!r}")
                selected = {lay: arrs for lay, arrs in stored.items() if layer is None or lay == layer}
                if array is not None:
                    selected = {lay: {a: v for a, v in arrs.items() if a == array} for lay, arrs in selected.items()}
                load_parameters(net.file, selected, label)
            elif nominal:
                with torch.no_grad():
                    for tensor in targets.values():
                        tensor.fill_(float(nominal))
            estimate = str(getattr(row, "estimate", "true")).strip().lower() in ("true", "1")
            prior = read_prior(row, _bound(getattr(row, "lowerBound", None), -np.inf),
                               _bound(getattr(row, "upperBound", None), np.inf), f"{label}: parameter {pid!r}") \
                if estimate else None
            for name, tensor in targets.items():
                tensor.requires_grad_(estimate)
                (self._frozen.discard if estimate else self._frozen.add)(f"{net_id}.{name}")
                if prior is not None:  # the more specific row (sorted last) wins
                    self._net_priors[(net_id, name)] = prior
                else:
                    self._net_priors.pop((net_id, name), None)
        for net_id, stored in self._arrays["parameters"].items():  # arrays without a table row: loaded as given
            if net_id in self._nets and not any(self._net_params.get(str(r), (r,))[0] == net_id
                                                for r in self._net_rows["parameterId"]):
                load_parameters(self._nets[net_id].file, stored, label)
        self.networks = {net_id: net.module for net_id, net in self._nets.items()}

    def _specificity(self, pid: str) -> int:
        _, layer, array = self._net_params.get(pid, (pid, None, None))
        return (layer is not None) + (array is not None)

    @staticmethod
    def _net_tensors(net: _Net, layer: str | None, array: str | None, label: str) -> dict[str, Tensor]:
        out = {}
        for name, tensor in net.module.named_parameters():
            lay, _, arr = name.rpartition(".")
            if (layer is None or lay == layer) and (array is None or arr == array):
                out[name] = tensor
        if not out:
            raise SciMLError(f"{label}: network {net.file.net_id!r} has no parameters under layer {layer!r} "
                             f"array {array!r}")
        return out

    def _wire_networks(self, label: str) -> None:
        """Where each network's inputs come from and where its outputs go."""
        table = dict(zip(self._hybrid["targetId"].astype(str), self._hybrid["targetValue"].astype(str)))
        self._rhs_targets: list[str] = []          # model parameters replaced in the rhs
        self._rhs_sources: list[tuple[str, tuple[int, int]]] = []
        self._pre_targets: dict[str, tuple[str, tuple[int, int]]] = {}  # model id -> (net, output)
        self._obs_outputs: dict[str, tuple[str, tuple[int, int]]] = {}  # petab id -> (net, output)
        for net_id, net in self._nets.items():
            for key, pid in net.outputs.items():
                targets = [t for t, v in table.items() if v == pid]
                for target in targets:
                    if target not in self._model_ids:
                        raise SciMLError(f"{label}: hybridization target {target!r} (set from {pid}) is not an entity of "
                                         f"the model")
                    if net.pre_init:
                        if target not in self.math.parameters and target not in self.math.species:
                            raise SciMLError(f"{label}: pre-initialization output {pid!r} sets {target!r}, which is "
                                             "neither a model parameter nor a species")
                        self._pre_targets[target] = (net_id, key)
                    else:
                        if target not in self.math.hybrid_targets()["parameters"]:
                            raise SciMLError(f"{label}: network output {pid!r} replaces {target!r} in the right-hand "
                                             "side, which must be a constant model parameter")
                        self._rhs_targets.append(target)
                        self._rhs_sources.append((net_id, key))
                if not targets:
                    self._obs_outputs[pid] = (net_id, key)
            for (arg, _), pid in net.inputs.items():
                if pid not in table and not any(pid == str(c.target_id) for cond in self.petab.conditions
                                                for c in cond.changes):
                    raise SciMLError(f"{label}: network input {pid!r} of {net_id!r} has no value (hybridization or "
                                     "condition table)")
                if not net.pre_init and pid in table:
                    symbols = {s.name for s in sp.sympify(table[pid]).free_symbols} - {"time"}
                    unknown = sorted(symbols - self._model_ids - set(self._values))
                    if unknown:
                        raise SciMLError(f"{label}: network input {pid!r} reads {unknown[0]!r}, which is not a species, "
                                         "parameter or compartment of the model")
        self._table = table
        ys, cs, rename = self.math._arguments()
        self._ys, self._cs, self._rename = ys, cs, rename
        if self._rhs_targets:
            self._check_rhs_outputs(label)
        hs = [sp.Symbol(f"_h{j}") for j in range(len(self._rhs_targets))]
        exprs = [e.xreplace(rename) for e in self.math.hybrid_rhs(self._rhs_targets)]
        self._rhs = sp.lambdify([T, ys, cs, hs], exprs, modules="torch", cse=True)
        self._rhs_inputs: dict[str, Any] = {}
        for net_id, net in self._nets.items():
            if net.pre_init or not net.inputs:
                continue
            exprs = [self._model_expression(self._table[pid]) for _, pid in sorted(net.inputs.items())]
            self._rhs_inputs[net_id] = sp.lambdify([T, ys, cs], exprs, modules="torch", cse=True)

    def _read_events(self, label: str) -> None:
        """The model's events, fired at times of the parameters (:class:`stiffml.petab.events.TimedEvents`:
        what it refuses, this engine refuses, named); none may assign a parameter a network replaces."""
        self._events: Any = None
        if not self.math.events:
            return
        import types

        from stiffml.petab.events import TimedEvents

        view = types.SimpleNamespace(math=self.math, state_symbols=self._ys, constant_symbols=self._cs,
                                     _rename=self._rename, state_ids=list(self.math.state_ids),
                                     constant_ids=list(self.math.constant_ids))
        events = TimedEvents(view, label)
        for spec in self.math.event_definitions():
            hit = sorted(set(dict(spec["assignments"])) & set(self._rhs_targets))
            if hit:
                raise PEtabUnsupported(f"{label}: event '{spec['id']}' assigns {hit[0]!r}, which a network replaces "
                                       "in the right-hand side")
        self._events = events

    def _check_rhs_outputs(self, label: str) -> None:
        for net_id in dict.fromkeys(n for n, _ in self._rhs_sources):
            net = self._nets[net_id]
            probe = self._forward_batch(net_id, [0.0] * len(net.inputs), torch.Size([1]), torch.float64)
            size = probe.numel()
            used = sum(1 for n, _ in self._rhs_sources if n == net_id)
            if size != used:
                raise SciMLError(f"{label}: network {net_id!r} in the right-hand side gives {size} outputs, but the "
                                 f"hybridization table replaces {used} quantities with them")

    def _model_expression(self, text: str) -> sp.Expr:
        """A formula of model ids and time in states, constants and ``T`` (argument symbols)."""
        expr = sp.sympify(text, locals={"time": T})
        table = {s: self.math.observable(s.name) for s in expr.free_symbols if s.name in self._model_ids}
        return expr.xreplace(table).xreplace(self._rename)

    def _build_observables(self, label: str) -> None:
        import pandas as pd

        self._observables = {o.id: o for o in self.petab.observables}
        self.measurements = pd.DataFrame([{
            "observableId": m.observable_id, "experimentId": m.experiment_id, "time": float(m.time),
            "measurement": float(m.measurement),
            "observableParameters": ";".join(map(str, m.observable_parameters)),
            "noiseParameters": ";".join(map(str, m.noise_parameters))} for m in self.petab.measurements])
        if (self.measurements["time"] < 0).any():
            raise SciMLError(f"{label}: a measurement has a negative time")
        self._experiments = {e.id: e for e in self.petab.experiments}


    # -------------------------------------------------------------------------- evaluation
    def _theta(self, theta: Any) -> Tensor:
        if theta is None:
            return torch.tensor(self.nominal, dtype=torch.float64)
        if isinstance(theta, dict):
            return torch.tensor([float(theta.get(i, v)) for i, v in zip(self.parameter_ids, self.nominal)],
                                dtype=torch.float64)
        return torch.as_tensor(np.asarray(theta, dtype=np.float64))

    def _value(self, text: Any, params: dict[str, Tensor]) -> Tensor:
        """A table entry (number, parameter id or formula of parameters) as a tensor."""
        if isinstance(text, (int, float)):
            return torch.tensor(float(text), dtype=torch.float64)
        expr = sp.sympify(str(text))
        subs = {s: params[s.name] for s in expr.free_symbols if s.name in params}
        missing = [s.name for s in expr.free_symbols if s.name not in params]
        if missing:
            raise SciMLError(f"{self.path}: {text!r} reads {missing[0]!r}, which is not a PEtab parameter")
        f = self._compiled(tuple(subs), expr)
        return torch.as_tensor(f(*subs.values()), dtype=torch.float64)

    def _compiled(self, args: tuple, expr: Any) -> Any:
        """``sp.lambdify(args, expr)`` once per (arguments, expression): every likelihood call
        evaluates the same formulas, and lambdify costs milliseconds each."""
        cache = self.__dict__.setdefault("_lambdas", {})
        key = (args, expr)
        if key not in cache:
            cache[key] = sp.lambdify(list(args), expr, modules="torch")
        return cache[key]

    def _model_function(self, exprs: tuple) -> Any:
        """``f(t, y, c)`` of expressions in the generated-code argument symbols (cached)."""
        cache = self.__dict__.setdefault("_model_lambdas", {})
        if exprs not in cache:
            cache[exprs] = sp.lambdify([T, self._ys, self._cs], list(exprs), modules="torch")
        return cache[exprs]

    def _parameters(self, theta: Tensor) -> dict[str, Tensor]:
        params = {i: torch.tensor(v, dtype=torch.float64) for i, v in self._values.items()}
        params.update({i: theta[k] for k, i in enumerate(self.parameter_ids)})
        return params

    def _forward_batch(self, net_id: str, values: list[Any], shape: torch.Size, dtype: torch.dtype) -> Tensor:
        """A network on a batch of ``shape`` samples: ``values`` are its mapped inputs in
        ``(argument, index)`` order, each of ``shape`` (or a number); returns ``(*shape, n_out)``.

        The format writes networks for one sample (the test suite's concatenate their input
        arguments along dimension 0), so a network of several input arguments runs sample by
        sample under ``torch.func.vmap``; one of a single argument, whose layers broadcast over a
        leading batch dimension, takes the batch as it is (no per-call vmap cost)."""
        net = self._nets[net_id]
        groups: dict[int, list[Tensor]] = {}
        for (arg, _), v in zip(sorted(net.inputs), values):
            groups.setdefault(arg, []).append(torch.as_tensor(v, dtype=dtype).expand(shape))
        args = [torch.stack(groups[a], -1).reshape(-1, len(groups[a])) for a in sorted(groups)]
        if len(args) == 1:
            out = net.module(args[0])
        else:
            out = torch.func.vmap(net.module)(*args)
        if isinstance(out, (tuple, list)):  # several output arguments: side by side, the first one first
            return torch.cat([o.reshape(*shape, -1) for o in out], -1)
        return out.reshape(*shape, -1)

    def _pre_init(self, experiment: Any, params: dict[str, Tensor]) -> dict[str, Tensor]:
        """Pre-initialization networks' outputs for one experiment: ``{model id: value}``."""
        changes = self._changes(experiment)
        values: dict[str, Tensor] = {}
        for net_id, net in self._nets.items():
            if not net.pre_init:
                continue
            args = []
            for arg in sorted({a for a, _ in net.inputs} | set(net.input_arrays)):
                if arg in net.input_arrays:
                    args.append(self._input_array(net.input_arrays[arg], experiment)[None])
                    continue
                elems = [changes.get(pid, self._table.get(pid)) for (a, _), pid in sorted(net.inputs.items()) if a == arg]
                args.append(torch.stack([self._value(v, params) for v in elems])[None])
            # several input arguments: one sample, as the format writes networks (see _forward_batch)
            out = self._nets[net_id].module(*args) if len(args) == 1 else torch.func.vmap(self._nets[net_id].module)(*args)
            outs = out if isinstance(out, (tuple, list)) else [out]
            for (arg, index), pid in net.outputs.items():
                for target, (n, key) in self._pre_targets.items():
                    if n == net_id and key == (arg, index):
                        values[target] = outs[arg].reshape(-1)[index]
        return values

    def _input_array(self, input_id: str, experiment: Any) -> Tensor:
        stored = self._arrays["inputs"].get(input_id)
        if stored is None:
            raise SciMLError(f"{self.path}: network input {input_id!r} takes its values from an array file, which has none")
        conds = set(self._first_period(experiment).condition_ids) if experiment is not None else set()
        for key, value in stored.items():
            if key == "0" or conds & set(key.split(";")):
                return torch.as_tensor(value, dtype=torch.float64)
        raise SciMLError(f"{self.path}: array input {input_id!r} has no data for conditions {sorted(conds)}")

    @staticmethod
    def _first_period(experiment: Any) -> Any:
        """The experiment's initial period (its conditions set the initial values)."""
        return min(experiment.periods, key=lambda q: float(q.time))

    def _changes(self, experiment: Any) -> dict[str, Any]:
        if experiment is None:
            return {}
        out = {}
        conds = {c.id: c for c in self.petab.conditions}
        for cid in self._first_period(experiment).condition_ids:
            for change in conds[cid].changes:
                out[str(change.target_id)] = change.target_value
        return out

    def _initial(self, experiment: Any, params: dict[str, Tensor]) -> tuple[Tensor, list[Tensor]]:
        """The experiment's initial state and constants (torch, differentiable)."""
        changes = {k: self._value(v, params) for k, v in self._changes(experiment).items() if k in self._model_ids}
        pre = self._pre_init(experiment, params)
        overrides = {**{k: params[k] for k in params if k in self.math.parameters}, **changes, **pre}
        species_set = {k for k in [*changes, *pre] if k in self.math.species}
        initial = self.__dict__.setdefault("_initial_exprs", {})
        key = frozenset(species_set)
        if key not in initial:
            initial[key] = self.math.initial_expressions(key)
        exprs = initial[key]
        literals = self.math.literal_values()
        values: dict[str, Tensor] = {}
        for name in [*self.math.state_ids, *self.math.constant_ids]:
            if name in overrides and name not in self.math.species:
                values[name] = overrides[name]
                continue
            expr = exprs[name]
            subs = {}
            for s in expr.free_symbols:
                key = s.name[3:]
                if s.name.startswith("_o_"):
                    subs[s] = overrides[key]
                elif key in overrides and key in self.math.parameters:
                    subs[s] = overrides[key]
                else:
                    subs[s] = torch.tensor(literals[key], dtype=torch.float64)
            f = self._compiled(tuple(subs), expr)
            values[name] = torch.as_tensor(f(*subs.values()), dtype=torch.float64)
        y0 = torch.stack([values[s] for s in self.math.state_ids])
        return y0, [values[c] for c in self.math.constant_ids]

    def _field(self, constants: list[Tensor]) -> Any:
        rhs_nets = list(dict.fromkeys(n for n, _ in self._rhs_sources))

        def field(t: Tensor, y: Tensor) -> Tensor:
            ys = list(y.unbind(-1))
            shape = y.shape[:-1]
            hs = []
            outs = {}
            for net_id in rhs_nets:
                vals = self._rhs_inputs[net_id](t, ys, constants)
                outs[net_id] = self._forward_batch(net_id, vals, shape, y.dtype)
            for net_id, (_, index) in self._rhs_sources:
                hs.append(outs[net_id][..., index])
            values = self._rhs(t, ys, constants, hs)
            return torch.stack([torch.as_tensor(v, dtype=y.dtype).expand(shape) for v in values], -1)

        return field

    def _simulate(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """Simulations and noise values of every measurement row, in table order.

        An experiment's periods run in turn: each period's conditions change parameters,
        compartments or species at its start (the first period's through the initial values);
        a period at ``-inf`` is a pre-equilibration, run to steady state. Experiments of one
        period that start at the same time are solved together, as one batch (``batch_experiments``).
        """
        params = self._parameters(theta)
        sims = torch.zeros(len(self.measurements), dtype=torch.float64)
        sigmas = torch.zeros(len(self.measurements), dtype=torch.float64)
        groups = self.measurements.groupby(self.measurements["experimentId"].fillna(""), sort=False)
        batches: dict[float, list] = {}
        for exp_id, rows in groups:
            experiment = self._experiments.get(exp_id) if exp_id else None
            periods = sorted(experiment.periods, key=lambda q: float(q.time)) if experiment is not None else [None]
            start = float(periods[0].time) if periods[0] is not None else 0.0
            if self.batch_experiments and len(periods) == 1 and np.isfinite(start) and not self._events:
                batches.setdefault(start, []).append((exp_id, rows, experiment))
                continue
            y, constants = self._initial(experiment, params)
            t_rows = rows["time"].to_numpy(dtype=np.float64)
            fired: set[int] = set()
            for k, period in enumerate(periods):
                if k > 0:
                    y, constants = self._apply(period, y, constants, params)
                start = float(period.time) if period is not None else 0.0
                if not np.isfinite(start):
                    if self._events:
                        raise PEtabUnsupported(f"{self.path}: experiment {exp_id!r} pre-equilibrates a model with events; "
                                               "stiffml fires events in time-course periods only")
                    y = self._steady_state(constants, y, exp_id)
                    continue
                end = float(periods[k + 1].time) if k + 1 < len(periods) else np.inf
                inside = (t_rows >= start) & (t_rows < end)
                times = np.unique(np.concatenate([[start], t_rows[inside], [end] if np.isfinite(end) else []]))
                if self._events:
                    y, constants, sims, sigmas = self._period_with_events(
                        rows[inside], times, y, constants, params, fired, end, sims, sigmas)
                    continue
                tt = torch.as_tensor(times, dtype=torch.float64)
                ys = self._integrate(self._field(constants), y[None], tt)[:, 0] if len(times) > 1 else y[None]
                if inside.any():
                    sims, sigmas = self._record(rows[inside], times, ys, constants, params, sims, sigmas)
                y = ys[-1]
        for start, members in batches.items():
            starts = [self._initial(experiment, params) for _, _, experiment in members]
            y0 = torch.stack([y for y, _ in starts])
            constants = [torch.stack([c[j] for _, c in starts]) for j in range(len(self.math.constant_ids))]
            times = np.unique(np.concatenate([[start], *[rows["time"].to_numpy(dtype=np.float64)
                                                          for _, rows, _ in members]]))
            tt = torch.as_tensor(times, dtype=torch.float64)
            ys = self._integrate(self._field(constants), y0, tt) if len(times) > 1 else y0[None]
            for b, (_, rows, _) in enumerate(members):
                sims, sigmas = self._record(rows, times, ys[:, b], starts[b][1], params, sims, sigmas)
        return sims, sigmas

    def _period_with_events(self, rows: Any, times: np.ndarray, y: Tensor, constants: list[Tensor],
                            params: dict[str, Tensor], fired: set[int], end: float, sims: Tensor,
                            sigmas: Tensor) -> tuple[Tensor, list[Tensor], Tensor, Tensor]:
        """One period (``times[0]`` its start) with the model's timed events fired in it.

        The solve stops at each firing time τ(c); an output at τ shows the values before the event
        (as the v1 engine and the SBML test suite have it), rows after it read the constants the
        event left. Gradients come from autograd, τ's too: the solve runs to the number τ and the
        state there is moved by f·(τ − τ̄) with τ̄ = τ detached (zero in value, f·dτ in gradient),
        before the assignments and after them (−f⁺·dτ), which is the classical jump
        ``G_y (s⁻ + f⁻ τ_θ) + G_c c_θ + G_t τ_θ − f⁺ τ_θ``."""
        events = self._events
        due = []
        for i, ev in enumerate(events.events):
            if i in fired:
                continue
            tau = torch.as_tensor(events.torch_forms(i)[0](constants), dtype=torch.float64)
            value = float(tau.detach())
            if not np.isfinite(value):
                continue
            if value <= 0.0:
                if not ev.fires_at_start:
                    fired.add(i)  # already true at the start (initialValue true): no transition
                    continue
                tau, value = torch.zeros((), dtype=torch.float64), 0.0
            if times[0] <= value < end and value <= times[-1]:  # later firings change nothing measured here
                due.append((value, i, tau))
        due.sort(key=lambda e: (e[0], e[1]))
        t_rows = rows["time"].to_numpy(dtype=np.float64)
        s0, first = float(times[0]), True
        for value, i, tau in [*due, (float(times[-1]), -1, None)]:
            grid = np.unique(np.concatenate([[s0], times[(times > s0) & (times <= value)], [value]]))
            if len(grid) > 1:
                ys = self._integrate(self._field(constants), y[None], torch.as_tensor(grid, dtype=torch.float64))[:, 0]
            else:
                ys = y[None]
            # rows at a firing time were recorded before the event, in the segment that ends there
            sel = ((t_rows >= s0) if first else (t_rows > s0)) & (t_rows <= value)
            if sel.any():
                sims, sigmas = self._record(rows[sel], grid, ys, constants, params, sims, sigmas)
            y = ys[-1]
            if i < 0:
                break
            y, constants = self._fire(i, tau, value, y, constants)
            fired.add(i)
            s0, first = value, False
        return y, constants, sims, sigmas

    def _fire(self, i: int, tau: Tensor, value: float, y: Tensor, constants: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """State and constants just after event ``i`` fires at ``tau`` (differentiable)."""
        _, state, const = self._events.torch_forms(i)
        shift = tau - tau.detach()
        t = torch.as_tensor(value, dtype=torch.float64) + shift
        field = self._field(constants)
        y = y + field(t, y[None])[0] * shift
        ys, cs = list(y.unbind(-1)), list(constants)
        y_new = torch.stack([torch.as_tensor(v, dtype=torch.float64) for v in state(t, ys, cs)])
        c_new = [torch.as_tensor(v, dtype=torch.float64) for v in const(t, ys, cs)]
        y_new = y_new - self._field(c_new)(t, y_new[None])[0] * shift
        return y_new, c_new

    def _record(self, rows: Any, times: np.ndarray, ys: Tensor, constants: list[Tensor], params: dict[str, Tensor],
                sims: Tensor, sigmas: Tensor) -> tuple[Tensor, Tensor]:
        """Observe ``rows`` (measurement rows) on a solve's output ``ys`` at ``times``."""
        where = torch.as_tensor(np.searchsorted(times, rows["time"].to_numpy(dtype=np.float64)))
        idx = torch.as_tensor(rows.index.to_numpy().copy())
        sim, sigma = self._observe(rows, ys[where], torch.as_tensor(times)[where], constants, params)
        return sims.index_put((idx,), sim), sigmas.index_put((idx,), sigma)

    def _apply(self, period: Any, y: Tensor, constants: list[Tensor],
               params: dict[str, Tensor]) -> tuple[Tensor, list[Tensor]]:
        """A later period's condition changes, applied to the state and constants at its start."""
        conds = {c.id: c for c in self.petab.conditions}
        states, consts = list(y.unbind(0)), list(constants)
        for cid in period.condition_ids:
            for change in conds[cid].changes:
                target, value = str(change.target_id), self._value(change.target_value, params)
                if target in self.math.state_ids:
                    states[self.math.state_ids.index(target)] = value
                elif target in self.math.constant_ids:
                    consts[self.math.constant_ids.index(target)] = value
                elif target in self._model_ids:
                    raise SciMLError(f"{self.path}: condition {cid!r} changes {target!r}, which a rule sets; a PEtab v2 "
                                     "condition may change only constant entities and those with a differential "
                                     "equation (species, parameters, compartments)")
        return torch.stack(states), consts

    def _steady_state(self, constants: list[Tensor], y: Tensor, exp_id: str) -> Tensor:
        """Integrate over growing horizons until the right-hand side vanishes (pre-equilibration)."""
        field = self._field(constants)
        horizon = 10.0
        while horizon <= 1e9:
            y = self._integrate(field, y[None], torch.tensor([0.0, horizon], dtype=torch.float64))[-1, 0]
            rate = field(torch.tensor(0.0, dtype=torch.float64), y[None])[0]
            if bool(torch.all(rate.abs() <= 1e-10 * (1.0 + y.abs()))):
                return y
            horizon *= 10.0
        raise SciMLError(f"{self.path}: experiment {exp_id!r}: no steady state for its pre-equilibration within t = 1e9")

    def _integrate(self, field: Any, y0: Tensor, tt: Tensor) -> Tensor:
        from stiffml.solvers import StepBudgetExceeded, integrate

        try:
            return integrate(field, y0, tt, method=self._method, rtol=self.rtol, atol=self.atol,
                             params=self._trainable(), max_steps=20_000 if self.solver == "auto" else 100_000)
        except StepBudgetExceeded:
            if self.solver != "auto" or self._method == "rosenbrock23":
                raise
            self._method = "rosenbrock23"  # stiff: the implicit method from now on
            return integrate(field, y0, tt, method="rosenbrock23", rtol=self.rtol, atol=self.atol,
                             params=self._trainable())

    def _trainable(self) -> tuple[Tensor, ...]:
        return tuple(p for net in self._nets.values() for p in net.module.parameters() if p.requires_grad)

    def _observe(self, rows: Any, y: Tensor, t: Tensor, constants: list[Tensor],
                 params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        ys = list(y.unbind(-1))
        n = y.shape[0]
        net_values: dict[str, Tensor] = {}
        for pid, (net_id, (arg, index)) in self._obs_outputs.items():
            net = self._nets[net_id]
            if net_id not in net_values:
                exprs = tuple(self._model_expression(self._table[p]) for _, p in sorted(net.inputs.items()))
                vals = self._model_function(exprs)(t, ys, constants)
                net_values[net_id] = self._forward_batch(net_id, vals, torch.Size([n]), y.dtype)
            params = {**params, pid: net_values[net_id][:, index]}
        sims, sigmas = [], []
        for k, row in enumerate(rows.itertuples(index=False)):
            obs = self._observables[row.observableId]
            local = dict(params)
            for sym, value in zip(obs.observable_placeholders, [v for v in row.observableParameters.split(";") if v]):
                local[sym.name] = self._value(value, params)
            for sym, value in zip(obs.noise_placeholders, [v for v in row.noiseParameters.split(";") if v]):
                local[sym.name] = self._value(value, params)
            sims.append(self._formula(obs.formula, local, k, t, ys, constants))
            sigmas.append(self._formula(obs.noise_formula, local, k, t, ys, constants))
        return torch.stack(sims), torch.stack(sigmas)

    def _formula(self, expr: Any, local: dict[str, Tensor], k: int, t: Tensor, ys: list[Tensor],
                 constants: list[Tensor]) -> Tensor:
        expr = sp.sympify(expr)
        subs: dict[sp.Symbol, Any] = {}
        for s in expr.free_symbols:
            if s.name in local and s.name not in self._model_ids:
                v = local[s.name]
                subs[s] = v[k] if v.ndim else v
            elif s.name == "time":
                subs[s] = t[k]
            elif s.name in self._model_ids:
                exprs = (self.math.observable(s.name).xreplace(self._rename),)
                subs[s] = self._model_function(exprs)(t[k], [y[k] for y in ys], constants)[0]
            else:
                raise SciMLError(f"{self.path}: an observable formula reads {s.name!r}, which is neither a model entity, "
                                 "a placeholder nor a PEtab parameter")
        f = self._compiled(tuple(subs), expr)
        return torch.as_tensor(f(*subs.values()), dtype=torch.float64)

    def _nllh(self, theta: Tensor) -> Tensor:
        sims, sigmas = self._simulate(theta)
        m = torch.as_tensor(self.measurements["measurement"].to_numpy(dtype=np.float64).copy())
        total = torch.zeros((), dtype=torch.float64)
        for k, obs_id in enumerate(self.measurements["observableId"]):
            how, dist = DISTRIBUTIONS[str(self._observables[obs_id].noise_distribution.value)]
            total = total + neg_log_likelihood(m[k], sims[k], sigmas[k], how, dist)
        return total

    # ------------------------------------------------------------------------------ public
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the estimated mechanistic parameters (linear scale)."""
        by_id = {p.id: p for p in self.petab.parameters}
        lower = [float(by_id[i].lb) if by_id[i].lb is not None else -np.inf for i in self.parameter_ids]
        upper = [float(by_id[i].ub) if by_id[i].ub is not None else np.inf for i in self.parameter_ids]
        return np.array(lower), np.array(upper)

    def nllh(self, theta: Any = None) -> float:
        """Negative log-likelihood at ``theta`` (the estimated parameters; nominal if omitted)."""
        with torch.no_grad():
            return float(self._nllh(self._theta(theta)))

    @property
    def has_priors(self) -> bool:
        """Whether any estimated parameter or network weight has a prior."""
        return bool(self._mech_priors or self._net_priors)

    def _prior(self, theta: Tensor) -> Tensor:
        """``-log`` of the priors at ``theta`` and the networks' current weights (0 without priors)."""
        total = torch.zeros((), dtype=torch.float64)
        for j, prior in self._mech_priors:
            total = total + prior(theta[j:j + 1])
        if self._net_priors:
            weights = {(net_id, name): p for net_id, net in self._nets.items()
                       for name, p in net.module.named_parameters()}
            for key, prior in self._net_priors.items():
                total = total + prior(weights[key])
        return total

    def neg_log_prior(self, theta: Any = None) -> float:
        """``-log`` of the parameter table's priors (PEtab v2 ``priorDistribution``), network
        weights included (a network row's prior applies to each of its weights)."""
        with torch.no_grad():
            return float(self._prior(self._theta(theta)))

    def _objective(self, theta: Tensor) -> Tensor:
        """What calibration minimises: the negative log-likelihood plus the negative log-prior."""
        return self._nllh(theta) + self._prior(theta)

    def objective(self, theta: Any = None) -> float:
        """The negative log-posterior, :meth:`nllh` + :meth:`neg_log_prior` (equal to the nllh
        without priors)."""
        with torch.no_grad():
            return float(self._objective(self._theta(theta)))

    def chi2(self, theta: Any = None) -> float:
        with torch.no_grad():
            sims, sigmas = self._simulate(self._theta(theta))
        m = torch.as_tensor(self.measurements["measurement"].to_numpy(dtype=np.float64).copy())
        out = 0.0
        for k, obs_id in enumerate(self.measurements["observableId"]):
            how, _ = DISTRIBUTIONS[str(self._observables[obs_id].noise_distribution.value)]
            out += float(residual(m[k], sims[k], sigmas[k], how)) ** 2
        return out

    def gradient(self, theta: Any = None, prior: bool = False) -> dict[str, Any]:
        """``{parameter id: d nllh / d value}`` and, per network id, ``{state-dict name: array}`` of
        d nllh / d weight for its estimated weights (frozen ones are left out); with ``prior``, the
        gradient of :meth:`objective` instead."""
        th = self._theta(theta).clone().requires_grad_(True)
        nets = {net_id: [(n, p) for n, p in net.module.named_parameters() if p.requires_grad]
                for net_id, net in self._nets.items()}
        flat = [p for items in nets.values() for _, p in items]
        grads = torch.autograd.grad((self._objective if prior else self._nllh)(th), [th, *flat], allow_unused=True)
        out: dict[str, Any] = {i: float(g) for i, g in zip(self.parameter_ids, grads[0])} if self.parameter_ids else {}
        k = 1
        for net_id, items in nets.items():
            out[net_id] = {}
            for name, p in items:
                g = grads[k]
                out[net_id][name] = (torch.zeros_like(p) if g is None else g).detach().numpy()
                k += 1
        return out

    def simulate(self, theta: Any = None) -> Any:
        """The PEtab simulation table: the measurement table with a ``simulation`` column."""
        with torch.no_grad():
            sims, _ = self._simulate(self._theta(theta))
        out = self.measurements.rename(columns={"measurement": "simulation"}).copy()
        out["simulation"] = sims.numpy()
        return out

    def __repr__(self) -> str:
        return (f"SciMLProblem({self.path.name}: {len(self.parameter_ids)} mechanistic parameters, "
                f"networks {sorted(self._nets)}, {len(self.measurements)} measurements)")
