"""A PEtab parameter-estimation problem: its likelihood, gradient and simulation table.

Reading, validation and formula parsing are the ``petab`` library's (0.8.x for Python 3.11); the
simulation is stiffml's generated SBML math with forward sensitivities (:mod:`stiffml.petab.simulate`);
observables, noise models and priors are torch expressions, so the gradient of the negative
log-likelihood is autograd through the observation model chained with the sensitivities of the solve.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import sympy as sp
import torch
from torch import Tensor

from stiffml.petab.errors import PEtabError, PEtabUnsupported
from stiffml.petab.likelihood import (DISTRIBUTIONS, PRIORS, SCALES, TRANSFORMATIONS, neg_log_likelihood,
                                      neg_log_prior, residual, to_scale, unscale)
from stiffml.petab.model import CompiledModel
from stiffml.petab.simulate import Experiment, Solution, Stage
from stiffml.sbml.document import SBMLError
from stiffml.sbml.math import T


def _petab() -> Any:
    try:
        import petab.v1 as pv
    except ImportError:  # pragma: no cover - the extra is installed in CI
        raise PEtabError("PEtab problems need the petab library: pip install 'stiffml[petab]'") from None
    return pv


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip())


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class _Simulate(torch.autograd.Function):
    """States ``[K, T, n]`` and constants ``[K, n_c]`` of one experiment at ``K`` sets of dynamic
    parameters ``[K, n_v]`` (one joint solve); the backward pass contracts the output gradients
    with the forward sensitivities. A set whose solve fails gets NaN outputs and a zero gradient."""

    @staticmethod
    def forward(ctx: Any, v: Tensor, experiment: Experiment, rtol: float, atol: float,
                joint: bool) -> tuple[Tensor, Tensor]:
        solve = experiment.solve_batch if joint else experiment.solve_each
        sols = solve(v.detach().cpu().numpy(), ctx.needs_input_grad[0], rtol, atol)
        ctx.sols, ctx.n_v = sols, v.shape[1]
        m = experiment.model
        rows = experiment.times.size + int(experiment.steady_state)
        x = np.full((len(sols), rows, m.n), np.nan)
        c = np.full((len(sols), m.n_c), np.nan)
        for k, sol in enumerate(sols):
            if isinstance(sol, Solution):
                x[k], c[k] = sol.x, sol.c
        return torch.as_tensor(x, dtype=v.dtype), torch.as_tensor(c, dtype=v.dtype)

    @staticmethod
    def backward(ctx: Any, gx: Tensor, gc: Tensor) -> tuple[Any, ...]:
        gxn, gcn = gx.numpy(), gc.numpy()
        out = np.zeros((len(ctx.sols), ctx.n_v))
        for k, sol in enumerate(ctx.sols):
            if isinstance(sol, Solution):
                out[k] = np.einsum("tn,tnd->d", gxn[k], sol.dx) + gcn[k] @ sol.dc
        return torch.as_tensor(out, dtype=gx.dtype), None, None, None, None


@dataclasses.dataclass
class _Observable:
    """One observable's generated formula and noise formula over all its measurement rows."""

    id: str
    rows: np.ndarray
    formula: Any
    noise: Any
    transformation: str
    distribution: str
    obs_placeholders: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # per placeholder: base, pos, v
    noise_placeholders: list[tuple[np.ndarray, np.ndarray, np.ndarray]]


class Problem:
    """A PEtab problem (format version 1) over an SBML model.

    Args:
        path: The problem's YAML file, or the name of a shipped example (``stiffml.petab.examples``).
        rtol: Relative tolerance of every solve.
        atol: Absolute tolerance of every solve.
        joint_solves: Integrate the parameter sets of :meth:`values_and_gradients` as one joint
            system per experiment (else one solve each). Measured with bench/petab_batched.py over
            20 starts: 2.75 times faster on Boehm, 0.83 times on Fujita (see docs/petab.md).

    Attributes:
        parameter_ids: The estimated parameters, in the parameter table's order.
        nominal: Their nominal values on their PEtab scales.
        lower: Lower bounds on their scales.
        upper: Upper bounds on their scales.
        scales: Their scales (``lin``, ``log``, ``log10``).

    Example:
        >>> p = Problem("Boehm_JProteomeRes2014/Boehm_JProteomeRes2014.yaml")
        >>> p.nllh(), p.gradient()["k_phos"]
    """

    def __new__(cls, path: str | Path, *args: Any, **kwargs: Any) -> Any:
        # a PEtab v2 problem (with the SciML extension's networks or without) has its own engine
        from stiffml.petab.examples import resolve_problem

        resolved = resolve_problem(path)
        if resolved.is_file() and resolved.suffix in (".yaml", ".yml"):
            import yaml

            from stiffml.petab.sciml import SciMLProblem, is_sciml

            try:
                spec = yaml.safe_load(resolved.read_text())
            except yaml.YAMLError:
                spec = None
            if is_sciml(spec):
                keep = {k: v for k, v in kwargs.items() if k in ("rtol", "atol", "solver", "batch_experiments")}
                return SciMLProblem(resolved, **keep)
        return super().__new__(cls)

    def __init__(self, path: str | Path, rtol: float = 1e-8, atol: float = 1e-16, joint_solves: bool = True) -> None:
        from stiffml.petab.examples import EXAMPLES, resolve_problem

        pv = _petab()
        self.path = resolve_problem(path)
        if not self.path.is_file():
            raise PEtabError(f"PEtab problem file '{self.path}' not found (shipped examples: {sorted(EXAMPLES)})")
        self.rtol, self.atol = float(rtol), float(atol)
        self.joint_solves = bool(joint_solves)
        self.petab = self._load(pv)
        self._lint(pv)
        from stiffml.sbml.system import _compile

        sbml_path = self._model_path()
        try:
            math_, _, _, _ = _compile(sbml_path)
        except SBMLError as err:
            raise PEtabError(str(err)) from None
        if math_.unsupported or math_.rhs is None:
            raise PEtabUnsupported(f"the SBML model '{sbml_path.name}' uses what the generated engine cannot express: "
                             f"{'; '.join(math_.unsupported)}")
        self.math = math_
        self._read_parameters()
        self._read_conditions()
        self.model = CompiledModel(math_, self._overridable)
        from stiffml.petab.events import TimedEvents

        self.events = TimedEvents(self.model, f"the SBML model '{sbml_path.name}'") if math_.events else None
        self._read_measurements()
        self._build_experiments()
        self._build_observables()

    # ----------------------------------------------------------------------------- reading
    def _load(self, pv: Any) -> Any:
        import yaml

        try:
            spec = yaml.safe_load(self.path.read_text())
        except yaml.YAMLError as err:
            raise PEtabError(f"'{self.path}' is not valid YAML: {' '.join(str(err).split())}") from None
        version = str((spec or {}).get("format_version", "")) if isinstance(spec, dict) else ""
        if not version.startswith("1"):
            raise PEtabUnsupported(f"'{self.path}': PEtab format_version {version or '(none)'} is not supported; "
                             "stiffml reads PEtab version 1 problems")
        problems = spec.get("problems") or []
        if len(problems) != 1:
            raise PEtabUnsupported(f"'{self.path}': {len(problems)} problems in one file; stiffml reads exactly one")
        for key in ("sbml_files", "condition_files", "measurement_files", "observable_files"):
            for name in problems[0].get(key) or []:
                if not (self.path.parent / name).is_file():
                    raise PEtabError(f"'{self.path}': {key[:-1].replace('_', ' ')} '{name}' not found")
        if not (self.path.parent / str(spec.get("parameter_file", ""))).is_file():
            raise PEtabError(f"'{self.path}': parameter file '{spec.get('parameter_file')}' not found")
        self._spec = spec
        try:
            return pv.Problem.from_yaml(str(self.path))
        except Exception as err:  # the library raises many kinds; each becomes one line
            raise PEtabError(f"'{self.path}': the petab library cannot read it: {' '.join(str(err).split())}") from None

    def _lint(self, pv: Any) -> None:
        """The library's lint; its first error becomes the message."""
        messages: list[str] = []

        class Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.levelno >= logging.ERROR:
                    messages.append(" ".join(record.getMessage().split()))

        handler = Collect()
        loggers = [logging.getLogger(name) for name in ("petab", "petab.v1", "petab.v1.lint")]
        saved = [(lg, lg.level, lg.propagate) for lg in loggers]
        for lg in loggers:
            lg.addHandler(handler)
            lg.propagate = False
            lg.setLevel(logging.WARNING)
        try:
            failed = pv.lint_problem(self.petab)
        except Exception as err:
            failed, messages = True, [*messages, " ".join(str(err).split())]
        finally:
            for lg, level, propagate in saved:
                lg.removeHandler(handler)
                lg.setLevel(level)
                lg.propagate = propagate
        if failed:
            first = messages[0] if messages else "see petablint"
            raise PEtabError(f"'{self.path}' fails PEtab's lint: {first[:300]}")

    def _model_path(self) -> Path:
        files = self._spec["problems"][0].get("sbml_files") or []
        if len(files) != 1:
            raise PEtabUnsupported(f"'{self.path}': {len(files)} SBML files; stiffml reads exactly one")
        return self.path.parent / files[0]

    def _read_parameters(self) -> None:
        df = self.petab.parameter_df
        self.table_ids: list[str] = list(df.index)
        self._v_index = {pid: k for k, pid in enumerate(self.table_ids)}
        est = df["estimate"].astype(int).to_numpy() == 1 if "estimate" in df else np.ones(len(df), bool)
        scales = [str(s) if not _blank(s) else "lin" for s in df.get("parameterScale", ["lin"] * len(df))]
        for pid, s in zip(self.table_ids, scales):
            if s not in SCALES:
                raise PEtabError(f"parameter '{pid}': parameterScale '{s}' is not one of {list(SCALES)}")
        nominal = df["nominalValue"].astype(float).to_numpy() if "nominalValue" in df else np.full(len(df), np.nan)
        lower = df["lowerBound"].astype(float).to_numpy() if "lowerBound" in df else np.full(len(df), -np.inf)
        upper = df["upperBound"].astype(float).to_numpy() if "upperBound" in df else np.full(len(df), np.inf)
        self._estimated = np.flatnonzero(est)
        self.parameter_ids = [self.table_ids[k] for k in self._estimated]
        self.scales = [scales[k] for k in self._estimated]
        for k in self._estimated:
            pid = self.table_ids[k]
            if not lower[k] <= nominal[k] <= upper[k]:
                raise PEtabError(f"parameter '{pid}': nominal value {nominal[k]} outside its bounds "
                                 f"[{lower[k]}, {upper[k]}]")
        for k in np.flatnonzero(~est):
            if not np.isfinite(nominal[k]):
                raise PEtabError(f"parameter '{self.table_ids[k]}' is not estimated and has no nominal value")
        self._fixed_lin = np.nan_to_num(nominal, nan=0.0)
        self.nominal = np.array([to_scale(nominal[k], s) for k, s in zip(self._estimated, self.scales)])
        self.lower = np.array([to_scale(lower[k], s) if lower[k] > 0 or s == "lin" else -np.inf
                               for k, s in zip(self._estimated, self.scales)])
        self.upper = np.array([to_scale(upper[k], s) for k, s in zip(self._estimated, self.scales)])
        self._priors: list[tuple[int, str, tuple[float, float]]] = []
        if "objectivePriorType" in df:
            for j, k in enumerate(self._estimated):
                kind = df["objectivePriorType"].iloc[k]
                if _blank(kind):
                    continue
                if kind not in PRIORS:
                    raise PEtabError(f"parameter '{self.table_ids[k]}': objectivePriorType '{kind}' is not one of {list(PRIORS)}")
                raw = str(df["objectivePriorParameters"].iloc[k]).split(";")
                vals = tuple(float(x) for x in raw)
                if len(vals) != 2:
                    raise PEtabError(f"parameter '{self.table_ids[k]}': objectivePriorParameters needs two values, got {raw}")
                self._priors.append((j, str(kind), vals))  # type: ignore[arg-type]

    def _read_conditions(self) -> None:
        df = self.petab.condition_df
        entities = {*self.math.species, *self.math.compartments, *self.math.parameters}
        self.conditions: dict[str, dict[str, Any]] = {}
        self._overridable: list[str] = []
        columns = [c for c in (df.columns if df is not None else []) if c != "conditionName"]
        for col in columns:
            if col not in entities:
                raise PEtabError(f"condition table column '{col}' names no model entity (species, compartment "
                                 "or parameter)")
            if col in self.math.assigned or col in self.math.rate and col not in self.math.state_ids:
                raise PEtabError(f"condition table column '{col}' is set by a rule in the model")
            self._overridable.append(col)
        if df is None:
            return
        for cid, row in df.iterrows():
            values: dict[str, Any] = {}
            for col in columns:
                value = row[col]
                if _blank(value):
                    continue
                num = _number(value)
                if num is None and str(value) not in self._v_index:
                    raise PEtabError(f"condition '{cid}', column '{col}': '{value}' is neither a number nor a "
                                     "parameter of the parameter table")
                values[col] = num if num is not None else str(value)
            self.conditions[str(cid)] = values

    def _read_measurements(self) -> None:
        df = self.petab.measurement_df.reset_index(drop=True)
        obs_ids = set(self.petab.observable_df.index)
        for i, row in df.iterrows():
            if row["observableId"] not in obs_ids:
                raise PEtabError(f"measurement row {i + 1} names unknown observable '{row['observableId']}'")
            for col in ("simulationConditionId", "preequilibrationConditionId"):
                cid = row.get(col)
                if not _blank(cid) and str(cid) not in self.conditions:
                    raise PEtabError(f"measurement row {i + 1} names unknown condition '{cid}' ({col})")
            t = float(row["time"])
            if t < 0 or math.isnan(t):
                raise PEtabError(f"measurement row {i + 1}: time {row['time']} must be ≥ 0 (or inf)")
        self.measurements = df

    # ------------------------------------------------------------------------- structure
    def _stage(self, cid: str) -> tuple[str, np.ndarray, list[tuple[int, int]], frozenset[str]]:
        """A condition's inputs: fixed values in ``u``, and (u position, table index) pairs."""
        m = self.model
        u = m.defaults.copy()
        refs: list[tuple[int, int]] = []
        values = self.conditions[cid]
        for lit, pos in m.index.items():
            if lit in self._v_index:
                refs.append((pos, self._v_index[lit]))
        for target, value in values.items():
            pos = m.override_index[target]
            if isinstance(value, str):
                refs.append((pos, self._v_index[value]))
            else:
                u[pos] = value
        return cid, u, refs, frozenset(values)

    def _build_experiments(self) -> None:
        df = self.measurements
        pre = ["" if _blank(x) else str(x) for x in df.get("preequilibrationConditionId", [""] * len(df))]
        sim = [str(x) for x in df["simulationConditionId"]]
        keys = list(dict.fromkeys(zip(pre, sim)))
        stages = {cid: self._stage(cid) for cid in {c for k in keys for c in k if c}}
        dynamic = sorted({v for cid in stages for _, v in stages[cid][2]})
        self._dynamic = np.array(dynamic, dtype=np.intp)
        local = {v: k for k, v in enumerate(dynamic)}

        def stage(cid: str) -> Stage:
            name, u, refs, over = stages[cid]
            pos = np.array([p for p, _ in refs], dtype=np.intp)
            vi = np.array([local[v] for _, v in refs], dtype=np.intp)
            return Stage(name=name, u=u, u_pos=pos, v_idx=vi, overridden=over)

        times = df["time"].astype(float).to_numpy()
        self.experiments: list[Experiment] = []
        self._row_exp = np.zeros(len(df), dtype=np.intp)
        self._row_out = np.zeros(len(df), dtype=np.intp)  # row into the concatenated outputs
        offset = 0
        exp_of = {k: i for i, k in enumerate(keys)}
        for e, (p, s) in enumerate(keys):
            rows = np.flatnonzero([(a, b) == (p, s) for a, b in zip(pre, sim)])
            t = times[rows]
            grid = np.unique(t[np.isfinite(t)])
            ss = bool(np.any(np.isinf(t)))
            if self.events is not None and (p or ss):
                raise PEtabUnsupported(f"'{self.path.name}': the model has events and condition '{p or s}' asks for a "
                                       "steady state; the calibration engine fires events only in time courses")
            self.experiments.append(Experiment(self.model, stage(s), stage(p) if p else None, grid, ss,
                                               len(dynamic), events=self.events))
            for r in rows:
                k = grid.size if np.isinf(times[r]) else int(np.searchsorted(grid, times[r]))
                self._row_out[r] = offset + k
            offset += grid.size + int(ss)
        for r, (p, s) in enumerate(zip(pre, sim)):
            self._row_exp[r] = exp_of[(p, s)]
        self._times = torch.as_tensor(np.where(np.isinf(times), 0.0, times), dtype=torch.float64)
        self._measured = torch.tensor(df["measurement"].astype(float).to_numpy(), dtype=torch.float64)

    def _placeholders(self, rows: np.ndarray, column: str, count: int, obs: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per placeholder: fixed values over ``rows``, and (row position, table index) pairs."""
        out = [(np.full(rows.size, np.nan), [], []) for _ in range(count)]
        series = self.measurements.get(column)
        for j, r in enumerate(rows):
            raw = series.iloc[r] if series is not None else None
            parts = [] if _blank(raw) else [p.strip() for p in str(raw).split(";")]
            if len(parts) != count:
                raise PEtabError(f"measurement row {r + 1} ({obs}): {column} gives {len(parts)} value(s) "
                                 f"{parts}, the observable has {count} placeholder(s)")
            for k, part in enumerate(parts):
                num = _number(part)
                if num is not None:
                    out[k][0][j] = num
                elif part in self._v_index:
                    out[k][1].append(j)
                    out[k][2].append(self._v_index[part])
                else:
                    raise PEtabError(f"measurement row {r + 1} ({obs}): {column} '{part}' is neither a number nor "
                                     "a parameter of the parameter table")
        return [(b, np.array(p, dtype=np.intp), np.array(v, dtype=np.intp)) for b, p, v in out]

    def _build_observables(self) -> None:
        from petab.v1.math import sympify_petab

        m = self.model
        df = self.petab.observable_df
        vs = [sp.Symbol(f"_v{k}") for k in range(len(self.table_ids))]
        self._observables: list[_Observable] = []
        model_ids = {*self.math.species, *self.math.compartments, *self.math.parameters, *self.math.reactions,
                     *self.math.stoich_refs}
        obs_col = self.measurements["observableId"].astype(str).to_numpy()
        for oid, row in df.iterrows():
            oid = str(oid)
            rows = np.flatnonzero(obs_col == oid)
            how = "lin" if _blank(row.get("observableTransformation")) else str(row["observableTransformation"])
            dist = "normal" if _blank(row.get("noiseDistribution")) else str(row["noiseDistribution"])
            if how not in TRANSFORMATIONS:
                raise PEtabError(f"observable '{oid}': observableTransformation '{how}' is not one of {list(TRANSFORMATIONS)}")
            if dist not in DISTRIBUTIONS:
                raise PEtabError(f"observable '{oid}': noiseDistribution '{dist}' is not one of {list(DISTRIBUTIONS)}")
            exprs, counts = [], {}
            for col, prefix in (("observableFormula", "observableParameter"), ("noiseFormula", "noiseParameter")):
                raw = row.get(col)
                expr = sympify_petab(raw if not _blank(raw) else (0 if col == "noiseFormula" else raw))
                expr = sp.sympify(expr)
                placeholder = {}
                for s in expr.free_symbols:
                    name = s.name
                    if name.startswith(("observableParameter", "noiseParameter")) and name.endswith(f"_{oid}"):
                        kind, _, rest = name.partition("Parameter")
                        placeholder[name] = (kind + "Parameter", int(rest[: -len(oid) - 1]))
                count = max((k for kind, k in placeholder.values() if kind == prefix), default=0)
                counts[prefix] = max(counts.get(prefix, 0), count)
                exprs.append((expr, placeholder))
            obs_ph = [sp.Symbol(f"_op{k}") for k in range(counts["observableParameter"])]
            noise_ph = [sp.Symbol(f"_np{k}") for k in range(counts["noiseParameter"])]
            funcs = []
            for (expr, placeholder), where in zip(exprs, ("observableFormula", "noiseFormula")):
                subs = {}
                for s in expr.free_symbols:
                    name = s.name
                    if name in placeholder:
                        kind, k = placeholder[name]
                        subs[s] = (obs_ph if kind == "observableParameter" else noise_ph)[k - 1]
                    elif name in ("time", "t") and name not in model_ids:
                        subs[s] = T
                    elif name in model_ids:
                        subs[s] = m.symbol_expression(name)
                    elif name in self._v_index:
                        subs[s] = vs[self._v_index[name]]
                    else:
                        raise PEtabError(f"observable '{oid}': {where} uses '{name}', which is neither a model "
                                         "entity nor a parameter of the parameter table")
                e = expr.xreplace(subs)
                funcs.append(sp.lambdify([T, m.state_symbols, m.constant_symbols, vs, obs_ph, noise_ph], e,
                                         modules="torch"))
            noise_expr = exprs[1][0]
            if noise_expr.is_number and not float(noise_expr) > 0:
                raise PEtabError(f"observable '{oid}': noiseFormula {noise_expr} must be positive")
            noise_ph_specs = self._placeholders(rows, "noiseParameters", len(noise_ph), oid)
            if len(noise_ph) == 1 and len(noise_expr.free_symbols) == 1:  # the formula is the placeholder
                base, from_table = noise_ph_specs[0][0], noise_ph_specs[0][1]
                numeric = np.ones(rows.size, dtype=bool)
                numeric[from_table] = False
                bad = np.flatnonzero(numeric & ~(base > 0))
                if bad.size:
                    raise PEtabError(f"measurement row {rows[bad[0]] + 1} ({oid}): noise value {base[bad[0]]:g} "
                                     "must be positive")
            self._observables.append(_Observable(
                id=oid, rows=rows, formula=funcs[0], noise=funcs[1], transformation=how, distribution=dist,
                obs_placeholders=self._placeholders(rows, "observableParameters", len(obs_ph), oid),
                noise_placeholders=noise_ph_specs))

    # ------------------------------------------------------------------------- evaluation
    def _theta(self, theta: Any) -> Tensor:
        if theta is None:
            return torch.as_tensor(self.nominal, dtype=torch.float64)
        if isinstance(theta, dict):
            unknown = sorted(set(theta) - set(self.parameter_ids))
            if unknown:
                raise PEtabError(f"unknown parameter(s) {unknown}; estimated: {self.parameter_ids}")
            vals = self.nominal.copy()
            for k, pid in enumerate(self.parameter_ids):
                if pid in theta:
                    vals[k] = float(theta[pid])
            theta = vals
        out = torch.as_tensor(np.asarray(theta, dtype=np.float64) if not isinstance(theta, Tensor) else theta,
                              dtype=torch.float64)
        if out.shape != (len(self.parameter_ids),):
            raise PEtabError(f"theta has shape {tuple(out.shape)}; expected ({len(self.parameter_ids)},), one value "
                             "per estimated parameter on its scale")
        return out

    def _table_values(self, theta: Tensor) -> Tensor:
        """Every parameter-table entry's linear value (estimated ones from ``theta``)."""
        v = torch.as_tensor(self._fixed_lin, dtype=theta.dtype)
        return v.index_put((torch.as_tensor(self._estimated),), unscale(theta, self.scales))

    def _forward(self, theta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Simulated observables, noise values and per-row negative log-likelihood."""
        sim, sigma, nllh = self._forward_batch(theta[None])
        return sim[0], sigma[0], nllh[0]

    def _forward_batch(self, thetas: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`_forward` at ``K`` parameter vectors (``[K, P]``) with one joint solve per
        experiment; each output ``[K, rows]``."""
        vs = torch.stack([self._table_values(th) for th in thetas.unbind(0)])
        v_dyn = vs[:, torch.as_tensor(self._dynamic, dtype=torch.long)]
        xs, cs = [], []
        for e in self.experiments:
            x, c = _Simulate.apply(v_dyn, e, self.rtol, self.atol, self.joint_solves)
            xs.append(x)
            cs.append(c)
        k_count = thetas.shape[0]
        x_all = torch.cat(xs, dim=1) if xs else torch.zeros(k_count, 0, self.model.n, dtype=thetas.dtype)
        c_all = torch.stack(cs, dim=1) if cs else torch.zeros(k_count, 0, self.model.n_c, dtype=thetas.dtype)
        outs = [self._observe(vs[k], x_all[k], c_all[k]) for k in range(k_count)]
        return tuple(torch.stack(parts) for parts in zip(*outs))  # type: ignore[return-value]

    def _observe(self, v: Tensor, x_all: Tensor, c_all: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Observables, noise values and per-row nllh from the table values ``v`` and the
        concatenated outputs of every experiment."""
        dtype = v.dtype
        n_rows = len(self.measurements)
        sim = torch.zeros(n_rows, dtype=dtype)
        sigma = torch.zeros(n_rows, dtype=dtype)
        nllh = torch.zeros(n_rows, dtype=dtype)
        v_list = list(v.unbind(0))
        for ob in self._observables:
            if not ob.rows.size:
                continue
            rows = torch.as_tensor(ob.rows)
            xr = x_all[torch.as_tensor(self._row_out[ob.rows])]
            cr = c_all[torch.as_tensor(self._row_exp[ob.rows])]
            t = self._times[rows]

            def fill(specs: list) -> list[Tensor]:
                out = []
                for base, pos, vi in specs:
                    b = torch.as_tensor(base, dtype=dtype)
                    out.append(b.index_put((torch.as_tensor(pos),), v[torch.as_tensor(vi)]) if pos.size else b)
                return out

            args = (t, list(xr.unbind(-1)), list(cr.unbind(-1)), v_list, fill(ob.obs_placeholders),
                    fill(ob.noise_placeholders))
            s = torch.as_tensor(ob.formula(*args), dtype=dtype).expand(rows.shape)
            sd = torch.as_tensor(ob.noise(*args), dtype=dtype).expand(rows.shape)
            m = self._measured[rows]
            sim = sim.index_put((rows,), s)
            sigma = sigma.index_put((rows,), sd)
            nllh = nllh.index_put((rows,), neg_log_likelihood(m, s, sd, ob.transformation, ob.distribution))
        return sim, sigma, nllh

    def nllh(self, theta: Any = None) -> float:
        """Negative log-likelihood at ``theta`` (estimated parameters on their scales, in
        :attr:`parameter_ids` order, or a dict by id; the nominal values when omitted)."""
        with torch.no_grad():
            sim, sigma, nllh = self._forward(self._theta(theta))
        bad = np.flatnonzero(~(sigma.numpy() > 0))
        if bad.size:
            row = self.measurements.iloc[bad[0]]
            raise PEtabError(f"measurement row {bad[0] + 1} ({row['observableId']}): the noise value "
                             f"{float(sigma[bad[0]]):g} is not positive")
        return float(nllh.sum())

    def chi2(self, theta: Any = None) -> float:
        """Sum of squared noise-normalised residuals on the observables' transformation scales."""
        with torch.no_grad():
            sim, sigma, _ = self._forward(self._theta(theta))
            total = 0.0
            for ob in self._observables:
                rows = torch.as_tensor(ob.rows)
                total += float(residual(self._measured[rows], sim[rows], sigma[rows], ob.transformation).pow(2).sum())
            return total

    def neg_log_prior(self, theta: Any = None) -> float:
        """``-log`` of the priors of the parameter table (0 where it has none)."""
        with torch.no_grad():
            return float(self._prior(self._theta(theta)))

    def _prior(self, theta: Tensor) -> Tensor:
        total = torch.zeros((), dtype=theta.dtype)
        if not self._priors:
            return total
        lin = unscale(theta, self.scales)
        for j, kind, params in self._priors:
            total = total + neg_log_prior(kind, params, lin[j], theta[j])
        return total

    def value_and_gradient(self, theta: Any = None, prior: bool = False) -> tuple[float, np.ndarray]:
        """The negative log-likelihood and its gradient in the estimated parameters (on their
        scales), through forward sensitivities of every solve; ``prior`` adds
        :meth:`neg_log_prior`."""
        th = self._theta(theta).clone().requires_grad_(True)
        value = self._forward(th)[2].sum()
        if prior and self._priors:
            value = value + self._prior(th)
        (grad,) = torch.autograd.grad(value, th, allow_unused=True)
        grad = torch.zeros_like(th) if grad is None else grad
        return float(value.detach()), grad.numpy().copy()

    def values_and_gradients(self, thetas: Any, rows: Any = None, prior: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The nllh and its gradient at ``K`` parameter vectors (``[K, P]``, on their scales), the
        solves of all ``K`` joined per experiment (:meth:`Experiment.solve_batch`). Where a
        vector's solve fails its value is ``inf`` and its gradient zero; the others are unaffected.
        ``rows`` (indices into the measurement table) restricts the sum to those rows; ``prior``
        adds :meth:`neg_log_prior` (the objective of calibration: the negative log-posterior)."""
        th = torch.as_tensor(np.asarray(thetas, dtype=np.float64), dtype=torch.float64)
        if th.ndim != 2 or th.shape[1] != len(self.parameter_ids):
            raise PEtabError(f"thetas has shape {tuple(th.shape)}; expected (K, {len(self.parameter_ids)}), one row "
                             "per start, one value per estimated parameter on its scale")
        th = th.clone().requires_grad_(True)
        per_row = self._forward_batch(th)[2]
        if rows is not None:
            per_row = per_row[:, torch.as_tensor(np.asarray(rows, dtype=np.int64))]
        values = per_row.sum(dim=1)
        if prior and self._priors:
            values = values + torch.stack([self._prior(th[k]) for k in range(th.shape[0])])
        finite = torch.isfinite(values)
        (grad,) = torch.autograd.grad(torch.where(finite, values, 0.0).sum(), th, allow_unused=True)
        grad = torch.zeros_like(th) if grad is None else grad
        vals = values.detach().numpy().copy()
        vals[~finite.numpy()] = np.inf
        g = grad.numpy().copy()
        g[~finite.numpy()] = 0.0
        return vals, g

    def value_gradient_fisher(self, theta: Any = None) -> tuple[float, np.ndarray, np.ndarray]:
        """The nllh, its gradient and the Fisher information matrix (a Gauss–Newton Hessian):
        ``Σ J_rᵀ J_r + 2 Σ J_sᵀ J_s`` over the rows, with ``r`` the noise-normalised residuals on the
        transformation scale and ``s`` the log noise values, their Jacobians from the forward
        sensitivities (one backward pass per row and quantity). Exact for normal noise; for
        Laplace noise an approximation of the same form."""
        th = self._theta(theta).clone().requires_grad_(True)
        sim, sigma, nllh = self._forward(th)
        value = nllh.sum()
        (grad,) = torch.autograd.grad(value, th, retain_graph=True, allow_unused=True)
        rows = []
        for ob in self._observables:
            idx = torch.as_tensor(ob.rows)
            if idx.numel():
                rows.append(residual(self._measured[idx], sim[idx], sigma[idx], ob.transformation))
        r = torch.cat(rows) if rows else torch.zeros(0, dtype=th.dtype)
        log_sigma = torch.log(sigma)
        fim = torch.zeros(th.numel(), th.numel(), dtype=th.dtype)
        for quantity, weight in ((r, 1.0), (log_sigma, 2.0)):
            if not quantity.requires_grad:
                continue
            for i in range(quantity.numel()):
                (row,) = torch.autograd.grad(quantity[i], th, retain_graph=True, allow_unused=True)
                if row is not None:
                    fim += weight * torch.outer(row, row)
        grad = torch.zeros_like(th) if grad is None else grad
        return float(value.detach()), grad.numpy().copy(), fim.numpy()

    def gradient(self, theta: Any = None) -> dict[str, float]:
        """d nllh / d theta for each estimated parameter (on its scale), by id."""
        return dict(zip(self.parameter_ids, self.value_and_gradient(theta)[1].tolist()))

    def simulate(self, theta: Any = None) -> Any:
        """The PEtab simulation table: the measurement table (its row order) with a
        ``simulation`` column in place of ``measurement``."""
        with torch.no_grad():
            sim = self._forward(self._theta(theta))[0].numpy()
        out = self.measurements.copy()
        out.insert(out.columns.get_loc("measurement"), "simulation", sim)
        return out.drop(columns=["measurement"])

    def __repr__(self) -> str:
        return (f"Problem('{self.path}': {len(self.parameter_ids)} estimated parameters, "
                f"{len(self.experiments)} experiments, {len(self.measurements)} measurements)")


def problems_in(folder: str | Path) -> Sequence[Path]:
    """The PEtab problem YAML files directly inside ``folder``'s subfolders (or the folder)."""
    folder = Path(folder)
    found = sorted(folder.glob("*/*.yaml")) + sorted(folder.glob("*.yaml"))
    return [p for p in found if "format_version" in p.read_text(errors="replace")]
