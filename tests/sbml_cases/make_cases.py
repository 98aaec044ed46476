"""Write the SBML test cases of this folder (SBML Test Suite format) with analytic expected results.

Each case is an Antimony model (converted with the ``antimony`` package, then edited with libsbml
where Antimony cannot say it), its settings and the exact solution. Run
``python tests/sbml_cases/make_cases.py`` to regenerate; the files are committed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).parent
E = np.exp


def case(number: int, title: str, antimony_text: str, variables: list[str],
         solution: Callable[[np.ndarray], list[np.ndarray]], duration: float = 5.0, steps: int = 50,
         amount: tuple[str, ...] = (), edit: Callable | None = None, level: tuple[int, int] = (3, 2),
         absolute: float = 1e-7, relative: float = 1e-4, comp: bool = False) -> None:
    import antimony
    import libsbml

    antimony.clearPreviousLoads()
    if antimony.loadAntimonyString(antimony_text) < 0:
        raise ValueError(antimony.getLastError())
    main_module = antimony.getMainModuleName()
    doc = libsbml.readSBMLFromString(antimony.getCompSBMLString(main_module) if comp else antimony.getSBMLString(main_module))
    model = doc.getModel()
    model.setNotes(f'<body xmlns="http://www.w3.org/1999/xhtml"><p>{title}</p></body>')
    if edit is not None:
        edit(model)
    if level != (3, 2):
        assert doc.setLevelAndVersion(*level, False), doc.getErrorLog().toString()
    name = f"{number:05d}"
    folder = HERE / name
    folder.mkdir(exist_ok=True)
    text = libsbml.writeSBMLToString(doc)
    text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("<!-- Created by")) + "\n"
    (folder / f"{name}-sbml-l{level[0]}v{level[1]}.xml").write_text(text)
    conc = [v for v in variables if v not in amount and model.getSpecies(v) is not None]
    (folder / f"{name}-settings.txt").write_text(
        f"start: 0\nduration: {duration}\nsteps: {steps}\nvariables: {', '.join(variables)}\n"
        f"absolute: {absolute}\nrelative: {relative}\namount: {', '.join(amount)}\n"
        f"concentration: {', '.join(conc)}\n")
    (folder / f"{name}-model.m").write_text(f"(* {title} *)\ntestType: TimeCourse\n")
    t = np.linspace(0.0, duration, steps + 1)
    cols = [np.broadcast_to(np.asarray(c, dtype=np.float64), t.shape) for c in solution(t)]
    rows = [",".join(["time", *variables])]
    rows += [",".join(repr(float(v)) for v in (ti, *vals)) for ti, *vals in zip(t, *cols)]
    (folder / f"{name}-results.csv").write_text("\n".join(rows) + "\n")


def species_edit(**changes: dict) -> Callable:
    """An edit setting species attributes: ``S1={"hosu": True, "amount": 3.0}``."""
    def edit(model):
        for sid, attrs in changes.items():
            s = model.getSpecies(sid)
            if "hosu" in attrs:
                s.setHasOnlySubstanceUnits(attrs["hosu"])
            if "amount" in attrs:
                s.unsetInitialConcentration()
                s.setInitialAmount(attrs["amount"])
            if "conversion" in attrs:
                s.setConversionFactor(attrs["conversion"])
    return edit


def main() -> None:
    k = 0.7
    case(1, "First-order decay S1 -> S2 in a unit compartment",
         "model c1\n compartment C = 1; species S1 in C, S2 in C\n J1: S1 -> S2; k1*S1\n k1 = 0.7; S1 = 1; S2 = 0\nend",
         ["S1", "S2"], lambda t: [E(-k * t), 1 - E(-k * t)])
    # amounts: dn1/dt = -k [S1] C1 = -k n1; n1(0) = [S1](0) C1 = 2
    case(2, "Two compartments of different sizes; S1 reported as an amount, S2 as a concentration",
         "model c2\n compartment C1 = 2, C2 = 0.5; species S1 in C1, S2 in C2\n J1: S1 -> S2; k1*S1*C1\n"
         " k1 = 0.7; S1 = 1; S2 = 0\nend",
         ["S1", "S2"], lambda t: [2 * E(-k * t), 2 * (1 - E(-k * t)) / 0.5], amount=("S1",))
    # hasOnlySubstanceUnits: the symbol is the amount, n(0) = 3; reported as concentration n/2
    case(3, "A species with hasOnlySubstanceUnits and an initial amount, in a compartment of size 2",
         "model c3\n compartment C = 2; species S1 in C\n J1: S1 -> ; k1*S1\n k1 = 0.7; S1 = 1\nend",
         ["S1"], lambda t: [3 * E(-k * t) / 2], edit=species_edit(S1={"hosu": True, "amount": 3.0}))
    case(4, "An assignment rule on a parameter using a species and time",
         "model c4\n compartment C = 1; species S1 in C\n J1: S1 -> ; k1*S1\n k1 = 0.7; S1 = 1\n"
         " p := 2*S1 + time\nend",
         ["S1", "p"], lambda t: [E(-k * t), 2 * E(-k * t) + t])
    case(5, "Rate rules on a parameter and on a species",
         "model c5\n compartment C = 1; species x in C\n x' = -b*x\n p' = a\n a = 0.3; b = 1.5; x = 2; p = 1\nend",
         ["x", "p"], lambda t: [2 * E(-1.5 * t), 1 + 0.3 * t])
    case(6, "Initial assignments to a parameter and to a species",
         "model c6\n compartment C = 1; species S1 in C\n J1: S1 -> ; k1*S1\n k0 = 0.25; k1 = 2*k0; S1 = 3*k0\nend",
         ["S1", "k1"], lambda t: [0.75 * E(-0.5 * t), 0.5])
    case(7, "A function definition in a kinetic law",
         "function f(x, r)\n r*x\nend\nmodel c7\n compartment C = 1; species S1 in C, S2 in C\n"
         " J1: S1 -> S2; f(S1, k1)\n k1 = 0.7; S1 = 1; S2 = 0\nend",
         ["S1", "S2"], lambda t: [E(-k * t), 1 - E(-k * t)])
    case(8, "A piecewise rate rule (continuous solution with a kink at t = 2)",
         "model c8\n x' = piecewise(1, time < 2, -1)\n x = 0\nend",
         ["x"], lambda t: [np.where(t < 2, t, 4 - t)])
    case(9, "An event resetting a species at t = 2.55",
         "model c9\n compartment C = 1; species S1 in C\n J1: S1 -> ; k1*S1\n k1 = 0.7; S1 = 1\n"
         " E1: at (time > 2.55): S1 = 1\nend",
         ["S1"], lambda t: [np.where(t < 2.55, E(-k * t), E(-k * (t - 2.55)))])
    # d[S]/dt = (dn/dt - [S] dV/dt)/V with dn/dt = -k [S] V = -k n, V = 1 + r t
    case(10, "A compartment growing by a rate rule; concentration follows the product rule",
         "model c10\n compartment C = 1; species S in C\n C' = r\n J1: S -> ; k1*S*C\n k1 = 0.7; r = 0.5; S = 1\nend",
         ["S", "C"], lambda t: [E(-k * t) / (1 + 0.5 * t), 1 + 0.5 * t])
    case(11, "A boundary species feeding a product, and a constant species",
         "model c11\n compartment C = 1; species $S1 in C, S2 in C, S3 in C\n J1: S1 -> S2; k1*S1*S3\n"
         " k1 = 0.7; S1 = 2; S2 = 0; S3 = 0.5; const S3\nend",
         ["S1", "S2", "S3"], lambda t: [2.0, 2 * 0.7 * 0.5 * t, 0.5])
    # 2 S1 -> S2 at rate k S1: S1 = e^{-2kt}; S2 gains cf * k S1 = 0.5 k e^{-2kt}
    case(12, "Stoichiometry 2 and a species conversion factor",
         "model c12\n compartment C = 1; species S1 in C, S2 in C\n J1: 2 S1 -> S2; k1*S1\n k1 = 0.7; S1 = 1; S2 = 0\n"
         " cf = 0.5\nend",
         ["S1", "S2"], lambda t: [E(-2 * k * t), 0.25 * (1 - E(-2 * k * t))],
         edit=species_edit(S2={"conversion": "cf"}))
    case(13, "A Level 2 Version 4 file (decay with an assignment rule)",
         "model c13\n compartment C = 1; species S1 in C\n J1: S1 -> ; k1*S1\n k1 = 0.7; S1 = 1\n q := 3*S1\nend",
         ["S1", "q"], lambda t: [E(-k * t), 3 * E(-k * t)], level=(2, 4))

    def local_parameter(model):
        law = model.getReaction("J1").getKineticLaw()
        p = law.createLocalParameter()
        p.setId("k1")
        p.setValue(0.5)

    case(14, "A local parameter shadowing a global one of the same id",
         "model c14\n compartment C = 1; species S1 in C\n J1: S1 -> ; k1*S1\n k1 = 100; S1 = 1\nend",
         ["S1"], lambda t: [E(-0.5 * t)], edit=local_parameter)
    case(15, "A reaction's rate as an output variable",
         "model c15\n compartment C = 1; species S1 in C\n J1: S1 -> ; k1*S1\n k1 = 0.7; S1 = 1\nend",
         ["S1", "J1"], lambda t: [E(-k * t), k * E(-k * t)])
    case(16, "A hierarchical (comp) model: two copies of a decay, one with its rate replaced",
         "model inner()\n compartment C = 1; species S1 in C, S2 in C\n J1: S1 -> S2; k1*S1\n S1 = 1; S2 = 0; k1 = 0.7\nend\n"
         "model c16\n A: inner()\n B: inner()\n kB = 0.2\n B.k1 is kB\nend",
         ["A__S1", "B__S2", "kB"], lambda t: [E(-k * t), 1 - E(-0.2 * t), 0.2], comp=True)
    case(17, "No integrated state: an assignment rule in time and a constant",
         "model c17\n k = 2\n x := k*time + 1\nend",
         ["x", "k"], lambda t: [2 * t + 1, 2.0])

    def rule_without_math(model):
        rule = model.createAssignmentRule()
        rule.setVariable("p")  # no math: the specification says to ignore the rule

    case(18, "An assignment rule without math is ignored",
         "model c18\n compartment C = 1; species S1 in C\n J1: S1 -> ; k1*S1\n k1 = 0.7; S1 = 1\n p = 3; var p\nend",
         ["S1", "p"], lambda t: [E(-k * t), 3.0], edit=rule_without_math)
    case(19, "An initial assignment that reads time (t = 0 at the start)",
         "model c19\n compartment C = 1; species S1 in C\n J1: S1 -> ; k1*S1\n k1 = 0.7\n S1 = time + 2\nend",
         ["S1"], lambda t: [2 * E(-k * t)])
    case(20, "A piecewise nested inside a piecewise",
         "model c20\n x' = piecewise(piecewise(1, time < 1, 2), time < 3, -1)\n x = 0\nend",
         ["x"], lambda t: [np.where(t < 1, t, np.where(t < 3, 1 + 2 * (t - 1), 5 - (t - 3)))])

    def algebraic(model):
        import libsbml

        rule = model.createAlgebraicRule()  # 0 = S1 + S2 - total: S2 follows S1's decay
        rule.setMath(libsbml.parseL3Formula("S1 + S2 - total"))

    case(21, "An algebraic rule determining a species (and its initial value)",
         "model c21\n compartment C = 1; species S1 in C, S2 in C\n J1: S1 -> ; k1*S1\n k1 = 0.7; S1 = 1\n"
         " total = 3\n S2 = 0; var S2\nend",
         ["S1", "S2"], lambda t: [E(-k * t), 3 - E(-k * t)], edit=algebraic)
    period = np.log(2) / k
    case(22, "An event on a species crossing, firing again and again (a sawtooth)",
         "model c22\n compartment C = 1; species S1 in C\n J1: S1 -> ; k1*S1\n k1 = 0.7; S1 = 1\n"
         " E1: at (S1 < 0.5): S1 = 1\nend",
         ["S1"], lambda t: [E(-k * np.mod(t + 1e-12, period))], duration=5.0, steps=50)
    case(23, "An event changing a rate constant at t = 2",
         "model c23\n compartment C = 1; species S1 in C\n J1: S1 -> ; k1*S1\n k1 = 0.7; S1 = 1\n"
         " E1: at (time > 2): k1 = 0.2\nend",
         ["S1", "k1"], lambda t: [np.where(t <= 2, E(-k * t), E(-2 * k) * E(-0.2 * (t - 2))), np.where(t <= 2, k, 0.2)])
    case(24, "A trigger true at t = 0 with initialValue false fires at t = 0",
         "model c24\n compartment C = 1; species S1 in C\n J1: S1 -> ; k1*S1\n k1 = 0.7; S1 = 1\n"
         " E1: at (time >= 0), t0 = false: S1 = 2\nend",
         ["S1"], lambda t: [2 * E(-k * t)])
    case(25, "Two simultaneous events: the higher priority fires first, the lower one's value stays",
         "model c25\n x = 0; var x\n E1: at (time > 1), priority = 2: x = 1\n E2: at (time > 1), priority = 1: x = 2\nend",
         ["x"], lambda t: [np.where(t <= 1, 0.0, 2.0)])
    def rate_of(model):
        import libsbml

        rule = model.createAssignmentRule()
        rule.setVariable("x")
        rule.setMath(libsbml.parseL3Formula("rateOf(S1)"))

    case(27, "rateOf() of a species in an assignment rule",
         "model c27\n compartment C = 1; species S1 in C\n J1: S1 -> ; k1*S1\n k1 = 0.7; S1 = 1\n x = 0; var x\nend",
         ["S1", "x"], lambda t: [E(-k * t), -k * E(-k * t)], edit=rate_of)
    case(28, "A delayed event whose assignment is evaluated at execution (useValuesFromTriggerTime false)",
         "model c28\n compartment C = 1; species S1 in C; species S2 in C\n J1: S1 -> ; k1*S1\n k1 = 0.7; S1 = 1; S2 = 0\n"
         " E1: at 1.5 after (time > 2), fromTrigger=false: S2 = S1\n E2: at 1 after (time > 2): S1 = S1 + 1\nend",
         ["S1", "S2"], lambda t: [np.where(t <= 3, E(-k * t), (E(-2 * k) + 1) * E(-k * (t - 3))),
                                  np.where(t <= 3.5, 0.0, (E(-2 * k) + 1) * E(-0.5 * k))])
    case(29, "A non-persistent delayed event cancelled when its trigger turns false; a persistent one runs",
         "model c29\n compartment C = 1; species S1 in C\n J1: S1 -> ; k1*S1\n k1 = 0.7; S1 = 1\n x = 0; y = 0\n"
         " E1: at 2 after (time > 1 && time < 2), persistent=false: x = 1\n"
         " E2: at 2 after (time > 1 && time < 2), persistent=true: y = 1\nend",
         ["S1", "x", "y"], lambda t: [E(-k * t), np.zeros_like(t), np.where(t <= 3, 0.0, 1.0)])
    def delayed_decay(t: np.ndarray, tau: float = 1.0) -> np.ndarray:
        """S1' = -k S1(t - tau), S1 = 1 before t = 0: a sum of the method of steps' polynomials."""
        from math import factorial

        out = np.zeros_like(t)
        for j in range(int(t.max() / tau) + 2):
            s = np.clip(t - (j - 1) * tau, 0.0, None)
            out += (-k) ** j * s ** j / factorial(j)
        return out

    case(30, "delay(): S1' = -k S1(t - 1) with the initial state as history; x = delay(S1, 0.5) by a rule "
         "(roadrunner refuses delays)",
         "model c30\n compartment C = 1; species S1 in C\n J1: S1 -> ; k1*delay(S1, tau)\n k1 = 0.7; tau = 1; S1 = 1\n"
         " x := delay(S1, 0.5)\nend",
         ["S1", "x"], lambda t: [delayed_decay(t), np.where(t <= 0.5, 1.0, delayed_decay(np.clip(t - 0.5, 0, None)))],
         absolute=1e-6)
    case(31, "An event resizes a compartment: amounts inside are kept; S2 set by the same event is an amount "
         "in the old size (as in the official case 01779)",
         "model c31\n compartment C = 1; species S1 in C, S2 in C\n J1: S1 -> ; k1*S1*C\n k1 = 0.7; S1 = 1; S2 = 1\n"
         " E1: at (time > 2): C = 2, S2 = 3\nend",
         ["S1", "S2", "C"], lambda t: [np.where(t <= 2, E(-k * t), 0.5 * E(-k * t)), np.where(t <= 2, 1.0, 1.5),
                                       np.where(t <= 2, 1.0, 2.0)])
    case(32, "A compartment sized by an assignment rule C = 1 + t/2: concentrations inside are diluted",
         "model c32\n compartment C; species S1 in C, S2 in C\n C := 1 + time/2\n J1: S1 -> ; k1*S1*C\n"
         " k1 = 0.7; S1 = 1; S2 = 1\nend",
         ["S1", "S2", "C"], lambda t: [E(-k * t) / (1 + t / 2), 1 / (1 + t / 2), 1 + t / 2])
    def stoichiometry_rate_rule(model):
        import libsbml

        ref = model.getReaction("J1").getReactant(0)
        ref.setId("st1")
        ref.setStoichiometry(1.0)
        ref.setConstant(False)
        rule = model.createRateRule()
        rule.setVariable("st1")
        rule.setMath(libsbml.parseL3Formula("0.5"))

    case(33, "A stoichiometry under a rate rule: st1' = 1/2, so dS1/dt = -(1 + t/2) k S1",
         "model c33\n compartment C = 1; species S1 in C\n J1: S1 -> ; k1*S1\n k1 = 0.7; S1 = 1\nend",
         ["S1"], lambda t: [E(-k * (t + t ** 2 / 4))], edit=stoichiometry_rate_rule)
    case(26, "A delayed event",
         "model c26\n compartment C = 1; species S1 in C\n J1: S1 -> ; k1*S1\n k1 = 0.7; S1 = 1\n"
         " E1: at 0.5 after (time > 2): S1 = 1\nend",
         ["S1"], lambda t: [np.where(t <= 2.5, E(-k * t), E(-k * (t - 2.5)))])


if __name__ == "__main__":
    main()
