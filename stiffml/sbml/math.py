"""SBML math as one sympy ODE system, and the numpy/torch functions generated from it.

The translation follows the SBML Level 3 Version 2 specification (section 4): a species symbol
means its concentration unless ``hasOnlySubstanceUnits`` is set (or its compartment has no
spatial dimensions); reactions change amounts, so a concentration's derivative is the reaction
sum over the compartment size, with the product rule when the size itself follows a rate rule;
assignment rules hold at every time and are substituted; initial assignments are evaluated once
at t = 0. What the generated right-hand side cannot express (delays, algebraic rules left unsolved
on reading, fast reactions, ``rateOf`` of a rule-set symbol, compartments sized by an assignment
rule that reads a species it dilutes) is recorded by name in
:attr:`ModelMath.unsupported`; events are recorded in :attr:`ModelMath.events` (the generated
field is the one that holds between them).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable

import numpy as np
import sympy as sp

from stiffml.sbml.document import SBMLError, SBMLUnsupported

T = sp.Symbol("_t")  # model time in generated code
DELAY_PREFIX = "delay() in "
AVOGADRO = 6.02214076e23


@dataclasses.dataclass(frozen=True)
class Generated:
    """The compiled functions of one model (independent of parameter values).

    Attributes:
        rhs: ``rhs(t, y, c)`` → list of ``n`` arrays (or scalars) broadcastable to ``y[0]``.
        jac_entries: ``jac_entries(t, y, c)`` → the Jacobian's structurally non-zero entries.
        jac_rows: Row index of each entry.
        jac_cols: Column index of each entry.
        rhs_torch: The same right-hand side on torch tensors.
    """

    rhs: Callable[..., list[Any]]
    jac_entries: Callable[..., list[Any]]
    jac_rows: np.ndarray
    jac_cols: np.ndarray
    rhs_torch: Callable[..., list[Any]]


class ModelMath:
    """The ODE system of an SBML document, in sympy.

    Attributes:
        model_id: The model's id (or ``None``).
        state_ids: SBML ids of what the ODE integrates, in state order.
        constant_ids: Ids of the symbols that stay constant during a solve.
        parameter_ids: The overridable subset: global parameters without rules or initial
            assignments.
        rhs: One sympy expression per state, in states, constants and ``T`` only (``None`` when
            :attr:`unsupported` is not empty).
        unsupported: Why the generated right-hand side cannot express this model (empty if it can).
        events: Ids (or positions) of the model's events.
    """

    def __init__(self, doc: Any, label: str) -> None:
        from sbmlmath import CSymbol, TimeSymbol, sbml_math_to_sympy

        self._csymbol, self._time_symbol, self._to_sympy = CSymbol, TimeSymbol, sbml_math_to_sympy
        self.label = label
        self._doc = doc  # the libsbml objects below live only as long as their document
        m = doc.getModel()
        self.model_id: str | None = m.getId() or None
        self.unsupported: list[str] = []
        self.events = [e.getId() or f"#{i}" for i, e in enumerate(m.getListOfEvents())]
        self._event_elements = list(m.getListOfEvents())

        self.species = {s.getId(): s for s in m.getListOfSpecies()}
        self.compartments = {c.getId(): c for c in m.getListOfCompartments()}
        self.parameters = {p.getId(): p for p in m.getListOfParameters()}
        self.reactions = {r.getId(): r for r in m.getListOfReactions()}
        self.model_conversion = m.getConversionFactor() or None

        self.assigned: dict[str, sp.Expr] = {}
        self.rate: dict[str, sp.Expr] = {}
        self._rate_of_calls: list[tuple[Any, str]] = []
        for rule in m.getListOfRules():
            if not rule.isSetMath():  # SBML L3V2 §4.11: a rule without math has no effect
                continue
            if rule.isAlgebraic():
                self.unsupported.append("an algebraic rule")
                continue
            expr = self._parse(rule, f"the rule for '{rule.getVariable()}'")
            (self.assigned if rule.isAssignment() else self.rate)[rule.getVariable()] = expr
        self.initial = {ia.getSymbol(): self._parse(ia, f"the initial assignment to '{ia.getSymbol()}'")
                        for ia in m.getListOfInitialAssignments()}

        # species references with ids are symbols of their own (their stoichiometry)
        self.stoich_refs: dict[str, Any] = {}
        self.kinetics: dict[str, sp.Expr] = {}
        for rid, r in self.reactions.items():
            if r.isSetFast() and r.getFast():
                self.unsupported.append(f"fast reaction '{rid}'")
            for ref in [*r.getListOfReactants(), *r.getListOfProducts()]:
                if ref.isSetId() and ref.getId():
                    self.stoich_refs[ref.getId()] = ref
            law = r.getKineticLaw()
            if law is None or not law.isSetMath():
                self.unsupported.append(f"reaction '{rid}' without a kinetic law")
                self.kinetics[rid] = sp.Integer(0)
                continue
            expr = self._parse(law, f"the kinetic law of reaction '{rid}'")
            local = {sp.Symbol(p.getId()): sp.Float(p.getValue()) for p in law.getListOfLocalParameters()}
            self.kinetics[rid] = expr.xreplace(local)

        self.state_ids = [s for s in self.species if self._is_state_species(s)]
        self.state_ids += [c for c in self.compartments if c in self.rate]
        self.state_ids += [p for p in self.parameters if p in self.rate]
        self.state_ids += [r for r in self.stoich_refs if r in self.rate]  # a stoichiometry under a rate rule
        busy = set(self.state_ids) | set(self.assigned)
        self.constant_ids = [i for i in [*self.compartments, *self.species, *self.parameters, *self.stoich_refs]
                             if i not in busy]
        self.parameter_ids = [p for p in self.parameters if p not in busy and p not in self.initial]
        # a compartment sized by an assignment rule dilutes the concentrations inside by dV/dt, the
        # rule's derivative by the chain rule; it must not read a state that is itself diluted
        for cid in self.compartments:
            inside = [s for s, sp_ in self.species.items() if sp_.getCompartment() == cid
                      and self.concentration_valued(s) and s not in self.rate]
            if cid in self.assigned and inside:
                try:
                    reads = {y.name for y in self.expand(sp.Symbol(cid), f"the size of '{cid}'").free_symbols}
                except SBMLError:
                    reads = set()
                diluted = sorted(r for r in reads if r in self.species and r in self.state_ids
                                 and self.species[r].getCompartment() in self.assigned)
                if diluted:
                    self.unsupported.append(f"compartment '{cid}' sized by an assignment rule of the diluted "
                                            f"species {diluted}")
        for call, where in self._rate_of_calls:
            arg = call.args[0] if len(call.args) == 1 else None
            name = getattr(arg, "name", None)
            if name is None or (name not in self.state_ids and name in busy):
                self.unsupported.append(f"rateOf({arg}) of a symbol set by a rule, in {where}")
        self.rhs: list[sp.Expr] | None = None
        #: ``delay(expr, tau)`` terms of the right-hand side, each replaced there by a symbol
        #: ``_delay<j>`` whose value the delay integrator supplies (:mod:`stiffml.sbml.delays`).
        self.delay_terms: list[tuple[sp.Expr, sp.Expr]] = []
        self._delay_symbols: dict[sp.Expr, sp.Symbol] = {}
        # delays stay in `unsupported` (every engine but the delay integrator refuses them) but
        # do not stop the right-hand side from being built
        if not [u for u in self.unsupported if not u.startswith(DELAY_PREFIX)]:
            rhs = [self.expand(self._raw_rhs(i), f"the derivative of '{i}'") for i in self.state_ids]
            self.rhs = [self._delays_to_symbols(e, f"the derivative of '{i}'") for i, e in zip(self.state_ids, rhs)]
            allowed = {sp.Symbol(i) for i in [*self.state_ids, *self.constant_ids]} | {T}
            allowed |= set(self._delay_symbols.values())
            for sid, expr in zip(self.state_ids, self.rhs):
                extra = expr.free_symbols - allowed
                if extra:
                    raise SBMLError(f"{label}: the derivative of '{sid}' uses undefined symbol(s) "
                                    f"{sorted(map(str, extra))}")

    # ------------------------------------------------------------------------------ parsing
    def _parse(self, obj: Any, where: str) -> sp.Expr:
        if not obj.isSetMath():
            raise SBMLError(f"{self.label}: {where} has no math")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expr = self._to_sympy(obj, ignore_units=True, floats_as_rationals=False, evaluate=False)
        except Exception as err:
            raise SBMLError(f"{self.label}: cannot read the math of {where}: {err}") from None
        return self._normalise(sp.sympify(expr), where)

    def _normalise(self, expr: sp.Expr, where: str) -> sp.Expr:
        """Replace sbmlmath's csymbols (time, avogadro) by ours; flag what we cannot generate."""
        subs: dict[Any, Any] = {}
        for atom in expr.atoms(sp.Symbol):
            if isinstance(atom, self._time_symbol):
                subs[atom] = T
            elif isinstance(atom, self._csymbol):
                if "avogadro" in str(atom):
                    subs[atom] = sp.Float(AVOGADRO)
                else:
                    self.unsupported.append(f"csymbol '{atom}' in {where}")
        for call in expr.atoms(sp.core.function.AppliedUndef):
            name = type(call).__name__
            if name == "rateOf":  # resolved in expand(): the derivative of its argument
                self._rate_of_calls.append((call, where))
                continue
            if name == "delay":
                self.unsupported.append(f"{DELAY_PREFIX}{where}")
                continue
            self.unsupported.append(f"{'rateOf' if name.lower() == 'rate_of' else name}() in {where}")
        return expr.xreplace(subs) if subs else expr

    def _delays_to_symbols(self, expr: sp.Expr, where: str) -> sp.Expr:
        """``expr`` with each ``delay(e, tau)`` replaced by its symbol (registered on first sight);
        ``tau`` must be constant and ``e`` free of further delays."""
        calls = [c for c in expr.atoms(sp.core.function.AppliedUndef) if type(c).__name__ == "delay"]
        if not calls:
            return expr
        constants = {sp.Symbol(i) for i in self.constant_ids}
        for call in calls:
            if call in self._delay_symbols:
                continue
            if len(call.args) != 2:
                raise SBMLError(f"{self.label}: delay() takes two arguments, got {call} in {where}")
            value, tau = call.args
            if not tau.free_symbols <= constants:
                raise SBMLUnsupported(f"{self.label}: the delay {tau} in {where} is not constant; the generated "
                                      "engine integrates constant delays only")
            if any(type(c).__name__ == "delay" for c in value.atoms(sp.core.function.AppliedUndef)):
                raise SBMLUnsupported(f"{self.label}: a delay nested in a delay in {where}")
            self._delay_symbols[call] = sp.Symbol(f"_delay{len(self.delay_terms)}")
            self.delay_terms.append((value, tau))
        return expr.xreplace(self._delay_symbols)

    # --------------------------------------------------------------------------- structure
    def _reacts(self, sid: str) -> bool:
        return any(ref.getSpecies() == sid
                   for r in self.reactions.values()
                   for ref in [*r.getListOfReactants(), *r.getListOfProducts()])

    def _is_state_species(self, sid: str) -> bool:
        s = self.species[sid]
        if sid in self.rate:
            return True
        if s.getConstant() or s.getBoundaryCondition() or sid in self.assigned:
            return False
        return True

    def concentration_valued(self, sid: str) -> bool:
        """Whether the species symbol means a concentration (SBML L3V2 §4.6.5)."""
        s = self.species[sid]
        c = self.compartments.get(s.getCompartment())
        return not s.getHasOnlySubstanceUnits() and (c is None or c.getSpatialDimensionsAsDouble() != 0)

    def _stoichiometry(self, ref: Any) -> sp.Expr:
        if ref.isSetId() and ref.getId():
            return sp.Symbol(ref.getId())
        return sp.Float(ref.getStoichiometry()) if ref.isSetStoichiometry() else sp.Integer(1)

    def _raw_rhs(self, sid: str) -> sp.Expr:
        if sid in self.rate:
            return self.rate[sid]
        s = self.species[sid]
        flux = sp.Integer(0)
        for rid, r in self.reactions.items():
            for sign, refs in ((-1, r.getListOfReactants()), (1, r.getListOfProducts())):
                for ref in refs:
                    if ref.getSpecies() == sid:
                        flux += sign * self._stoichiometry(ref) * sp.Symbol(rid)
        factor = s.getConversionFactor() or self.model_conversion
        if factor:
            flux *= sp.Symbol(factor)
        if not self.concentration_valued(sid):
            return flux
        cid = s.getCompartment()
        size = sp.Symbol(cid)
        if cid in self.rate:  # d[S]/dt = (dn/dt − [S]·dV/dt) / V
            return (flux - sp.Symbol(sid) * self.rate[cid]) / size
        if cid in self.assigned:  # V(t, y) by a rule: dV/dt = ∂V/∂t + Σ ∂V/∂y_j · dy_j/dt
            volume = self.expand(size, f"the size of '{cid}'")
            rate = sp.diff(volume, T) + sum(
                (sp.diff(volume, y) * self.expand(self._raw_rhs(y.name), f"the derivative of '{y.name}'")
                 for y in volume.free_symbols if y.name in self.state_ids), sp.Integer(0))
            return (flux - sp.Symbol(sid) * rate) / size
        return flux / size

    def expand(self, expr: sp.Expr, where: str) -> sp.Expr:
        """Substitute assignment rules and reaction rates until only states, constants and time
        remain."""
        table = {sp.Symbol(k): v for k, v in self.assigned.items()}
        table.update({sp.Symbol(k): v for k, v in self.kinetics.items()})
        for _ in range(len(table) + len(self.state_ids) + 2):
            hit: dict[Any, Any] = {s: table[s] for s in expr.free_symbols if s in table}
            for call in expr.atoms(sp.core.function.AppliedUndef):
                if type(call).__name__ == "rateOf":  # SBML rateOf: the state's derivative, 0 if constant
                    name = call.args[0].name
                    hit[call] = self._raw_rhs(name) if name in self.state_ids else sp.Integer(0)
            if not hit:
                return expr
            expr = expr.xreplace(hit)
        raise SBMLError(f"{self.label}: assignment rules form a cycle in {where}")

    def switch_conditions(self) -> list[sp.Basic]:
        """The conditions of piecewise terms in the right-hand side that can change during a solve
        (they read time or a state): where the field jumps, so solvers should stop there."""
        if self.rhs is None:
            return []
        if getattr(self, "_switches", None) is None:  # the rhs is fixed: walk it once per model
            moving = {sp.Symbol(i) for i in self.state_ids} | {T}
            out: list[sp.Basic] = []
            for expr in self.rhs:
                for pw in expr.atoms(sp.Piecewise):
                    for _, cond in pw.args:
                        if cond not in (sp.true, sp.false) and cond.free_symbols & moving and cond not in out:
                            out.append(cond)
            self._switches = out
        return list(self._switches)

    def event_definitions(self) -> list[dict[str, Any]]:
        """Each event's trigger, flags and assignments, expanded into states, constants and time.

        Returns:
            One dict per event: ``id``, ``trigger`` (sympy boolean), ``initial_value``,
            ``persistent``, ``delay`` and ``priority`` (sympy or ``None``),
            ``use_trigger_time_values`` and ``assignments`` (list of ``(variable id, expr)``).
        """
        out = []
        for eid, e in zip(self.events, self._event_elements):
            where = f"event '{eid}'"
            trig = e.getTrigger()
            if trig is None or not trig.isSetMath():
                raise SBMLError(f"{self.label}: {where} has no trigger math")
            out.append({
                "id": eid,
                "trigger": self.expand(self._parse(trig, f"the trigger of {where}"), where),
                "initial_value": trig.getInitialValue() if trig.isSetInitialValue() else True,
                "persistent": trig.getPersistent() if trig.isSetPersistent() else True,
                "delay": self.expand(self._parse(e.getDelay(), f"the delay of {where}"), where)
                if e.isSetDelay() and e.getDelay().isSetMath() else None,
                "priority": self.expand(self._parse(e.getPriority(), f"the priority of {where}"), where)
                if e.isSetPriority() and e.getPriority().isSetMath() else None,
                "use_trigger_time_values": e.getUseValuesFromTriggerTime() if e.isSetUseValuesFromTriggerTime() else True,
                "assignments": [(a.getVariable(), self.expand(self._parse(a, f"an assignment of {where}"), where))
                                for a in e.getListOfEventAssignments() if a.isSetMath()],
            })
        return out

    def observable(self, vid: str, amount: bool = False) -> sp.Expr:
        """Expression of any SBML symbol in states, constants and time; a species in ``amounts``
        is its amount, otherwise its concentration."""
        known = {*self.species, *self.compartments, *self.parameters, *self.reactions, *self.stoich_refs}
        if vid not in known:
            raise SBMLError(f"{self.label}: unknown variable '{vid}'; the model has {sorted(known)}")
        if vid in self.reactions:
            return self.expand(sp.Symbol(vid), f"reaction '{vid}'")
        expr = self.expand(sp.Symbol(vid), f"'{vid}'")
        if vid in self.species:
            size = self.expand(sp.Symbol(self.species[vid].getCompartment()), f"the compartment of '{vid}'")
            if self.concentration_valued(vid) and amount:
                expr = expr * size
            elif not self.concentration_valued(vid) and not amount:
                expr = expr / size
        return expr

    # ------------------------------------------------------------------------ initial values
    def initial_values(self, overrides: dict[str, float]) -> dict[str, float]:
        """Every symbol's value at t = 0: initial assignments first, then assignment rules, then
        the values in the file (a species' amount converted to concentration or back), with
        ``overrides`` replacing parameter values."""
        literals = self.literal_values()
        literals.update({p: v for p, v in overrides.items() if p in self.parameters})

        def literal(i: str) -> sp.Expr:
            v = literals[i]
            return sp.nan if np.isnan(v) else sp.Float(v)

        exprs = self._initial_table(literal)
        exprs.update(self.kinetics)
        exprs.update(self.assigned)
        exprs.update({k: v for k, v in self.initial.items() if k not in overrides})
        def evaluate(expr: sp.Expr, deps: dict) -> float:
            try:
                return float(sp.N(expr.xreplace({**deps, T: sp.Integer(0)}), 17))
            except TypeError:
                return float("nan")

        return self._resolve(exprs, evaluate)

    def _resolve(self, exprs: dict[str, sp.Expr], evaluate: Callable[[sp.Expr, dict], Any],
                 free: Callable[[str], bool] = lambda name: False) -> dict[str, Any]:
        """Every entry of ``exprs`` evaluated after the entries it uses (depth first), by
        ``evaluate(expr, {symbol: value of its entry})``; a cycle or a symbol that is neither an
        entry, time, nor ``free`` is a one-line error."""
        done: dict[str, Any] = {}
        visiting: set[str] = set()

        def get(name: str) -> Any:
            if name in done:
                return done[name]
            if name in visiting:
                raise SBMLError(f"{self.label}: initial values of {sorted(visiting)} depend on each other")
            visiting.add(name)
            expr = exprs[name]
            missing = {s.name for s in expr.free_symbols if s != T and s.name not in exprs and not free(s.name)}
            if missing:
                raise SBMLError(f"{self.label}: the initial value of '{name}' uses undefined {sorted(missing)}")
            out = evaluate(expr, {s: get(s.name) for s in expr.free_symbols if s != T and s.name in exprs})
            visiting.discard(name)
            done[name] = out
            return out

        for name in exprs:
            get(name)
        return done

    def _initial_table(self, literal: Callable[[str], sp.Expr]) -> dict[str, sp.Expr]:
        """Each literal id's value at t = 0 from ``literal(id)`` (a number or a symbol), species
        converted between amount and concentration as their symbols mean; before kinetics,
        assignment rules and initial assignments are laid over it."""
        exprs: dict[str, sp.Expr] = {}
        for i in [*self.compartments, *self.parameters, *self.stoich_refs]:
            exprs[i] = literal(i)
        for sid, s in self.species.items():
            size = sp.Symbol(s.getCompartment())
            conc = self.concentration_valued(sid)
            if s.isSetInitialConcentration():
                exprs[sid] = literal(sid) if conc else literal(sid) * size
            else:
                exprs[sid] = literal(sid) / size if conc else literal(sid)
        return exprs

    def literal_ids(self) -> list[str]:
        """Ids whose value the file states as a literal: compartments, parameters, species (their
        initial value as written) and species references. Every initial value is a function of
        these (:meth:`initial_expressions`)."""
        return [*self.compartments, *self.parameters, *self.species, *self.stoich_refs]

    def literal_values(self) -> dict[str, float]:
        """The file's literal for each of :meth:`literal_ids` (NaN where none is set)."""
        out: dict[str, float] = {}
        for cid, c in self.compartments.items():
            out[cid] = c.getSize() if c.isSetSize() else float("nan")
        for pid, p in self.parameters.items():
            out[pid] = p.getValue() if p.isSetValue() else float("nan")
        for sid, s in self.species.items():
            out[sid] = (s.getInitialConcentration() if s.isSetInitialConcentration()
                        else s.getInitialAmount() if s.isSetInitialAmount() else float("nan"))
        for ref_id, ref in self.stoich_refs.items():
            out[ref_id] = ref.getStoichiometry() if ref.isSetStoichiometry() else 1.0
        return out

    def initial_expressions(self, overridden: frozenset[str] = frozenset()) -> dict[str, sp.Expr]:
        """Every symbol's value at t = 0 as a sympy expression of literal symbols ``_q_<id>``
        (:meth:`literal_ids`) and override symbols ``_o_<id>``.

        The same precedence as :meth:`initial_values`: initial assignments, then assignment
        rules, then the file's literals (a species' amount converted to concentration or back).
        A symbol in ``overridden`` takes the value of its override symbol as it is (a species'
        value in the unit its symbol has: concentration unless amount-valued), ahead of any
        initial assignment, as PEtab's condition table requires.
        """
        exprs = self._initial_table(lambda i: sp.Symbol(f"_q_{i}"))
        exprs.update(self.kinetics)
        exprs.update(self.assigned)
        exprs.update(self.initial)
        for oid in overridden:
            exprs[oid] = sp.Symbol(f"_o_{oid}")
        return self._resolve(exprs, lambda expr, deps: expr.xreplace(deps).xreplace({T: sp.Integer(0)}),
                             free=lambda name: name.startswith(("_q_", "_o_")))

    # ------------------------------------------------------------------------------ codegen
    def generate(self) -> Generated:
        """Lambdify the right-hand side and its symbolic Jacobian (numpy, and torch when
        installed) with common subexpressions shared."""
        if self.rhs is None:
            raise SBMLError(f"{self.label}: the generated right-hand side cannot express "
                            f"{'; '.join(self.unsupported)}")
        ys, cs, rename = self._arguments()
        exprs = [e.xreplace(rename) for e in self.rhs]
        entries, rows, cols = [], [], []
        for i, e in enumerate(exprs):
            for j, y in enumerate(ys):
                d = sp.diff(e, y)
                if d != 0:
                    entries.append(d)
                    rows.append(i)
                    cols.append(j)
        args = [T, ys, cs]
        # torch is a dependency of stiffml, so the torch printer is always available
        rhs_torch = sp.lambdify(args, exprs, modules="torch", cse=True)
        return Generated(
            rhs=sp.lambdify(args, exprs, modules="numpy", cse=True),
            jac_entries=sp.lambdify(args, entries, modules="numpy", cse=True),
            jac_rows=np.array(rows, dtype=np.intp),
            jac_cols=np.array(cols, dtype=np.intp),
            rhs_torch=rhs_torch,
        )

    def _arguments(self) -> tuple[list[sp.Symbol], list[sp.Symbol], dict[sp.Symbol, sp.Symbol]]:
        """Argument symbols of generated code (SBML ids may be Python keywords, so never used)."""
        ys = [sp.Symbol(f"_y{i}") for i in range(len(self.state_ids))]
        cs = [sp.Symbol(f"_c{j}") for j in range(len(self.constant_ids) + len(self.delay_terms))]
        rename = {sp.Symbol(s): y for s, y in zip(self.state_ids, ys)}
        rename.update({sp.Symbol(c): v for c, v in zip(self.constant_ids, cs)})
        # delayed values follow the constants: the delay integrator appends them
        rename.update({sym: cs[len(self.constant_ids) + j]
                       for j, sym in enumerate(self._delay_symbols.values())})
        return ys, cs, rename

    # ---------------------------------------------------------------------------- hybrid
    def hybrid_targets(self) -> dict[str, list[str]]:
        """What a network may replace: reaction rates and constant global parameters."""
        busy = set(self.state_ids) | set(self.assigned) | set(self.initial)
        return {"reactions": list(self.reactions),
                "parameters": [p for p in self.parameters if p not in busy]}

    def hybrid_rhs(self, targets: list[str]) -> list[sp.Expr]:
        """The right-hand side with each target (a reaction's rate or a constant parameter)
        replaced by a symbol ``_h<j>``, whose value a network supplies at every call.

        Raises:
            SBMLError: A target that is neither a reaction nor a constant parameter (named, with
                what is allowed), or a model whose generated right-hand side is unavailable.
        """
        if self.rhs is None or self.delay_terms:
            raise SBMLError(f"{self.label}: a hybrid model needs the whole dynamics as one generated "
                            f"right-hand side, and the model has {'; '.join(self.unsupported) or 'delays'}")
        allowed = self.hybrid_targets()
        bad = [t for t in targets if t not in allowed["reactions"] and t not in allowed["parameters"]]
        if bad:
            raise SBMLError(f"{self.label}: hybridization target {bad[0]!r} is not a model entity a network can "
                            f"replace; reactions {allowed['reactions']}, constant parameters {allowed['parameters']}")
        slots = {t: sp.Symbol(f"_h{j}") for j, t in enumerate(targets)}
        saved = dict(self.kinetics)
        try:  # a replaced rate enters wherever the reaction's id is read (fluxes, rules)
            self.kinetics.update({t: s for t, s in slots.items() if t in self.reactions})
            rhs = [self.expand(self._raw_rhs(i), f"the derivative of '{i}'") for i in self.state_ids]
        finally:
            self.kinetics.clear()
            self.kinetics.update(saved)
        params = {sp.Symbol(t): s for t, s in slots.items() if t not in self.reactions}
        return [e.xreplace(params) for e in rhs]

    def generate_hybrid(self, targets: list[str], inputs: list[str]) -> tuple[Callable[..., list[Any]],
                                                                              Callable[..., list[Any]]]:
        """Torch functions of a hybrid model: ``rhs(t, y, c, h)`` (``h`` the targets' values, see
        :meth:`hybrid_rhs`) and ``inputs(t, y, c)`` (the values of the ids in ``inputs``: species,
        compartments, parameters, assigned symbols or reactions, as :meth:`observable`), both on
        lists of tensors."""
        exprs = self.hybrid_rhs(targets)
        known = {*self.species, *self.compartments, *self.parameters, *self.reactions, *self.stoich_refs}
        bad = [i for i in inputs if i not in known]
        if bad:
            raise SBMLError(f"{self.label}: network input {bad[0]!r} is not a species, compartment, parameter or "
                            f"reaction of the model; the model has {sorted(known)}")
        ys, cs, rename = self._arguments()
        hs = [sp.Symbol(f"_h{j}") for j in range(len(targets))]
        rhs = sp.lambdify([T, ys, cs, hs], [e.xreplace(rename) for e in exprs], modules="torch", cse=True)
        values = [self.observable(i).xreplace(rename) for i in inputs]
        return rhs, sp.lambdify([T, ys, cs], values, modules="torch", cse=True)

    def generate_observables(self, variables: list[str], amounts: set[str]) -> Callable[..., list[Any]]:
        """``f(t, y, c)`` → the values of ``variables`` (see :meth:`observable`)."""
        exprs = [self._delays_to_symbols(self.observable(v, v in amounts), f"'{v}'") for v in variables]
        ys, cs, rename = self._arguments()  # after the observables' delays are registered
        return sp.lambdify([T, ys, cs], [e.xreplace(rename) for e in exprs], modules="numpy", cse=True)
