"""Reading and checking SBML files with python-libsbml (one-line errors, nothing cached)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

# SBML Level 3 packages whose meaning stiffml does not implement: a model that requires one is
# refused by name instead of being simulated wrongly. (Hierarchical ``comp`` models are flattened
# on reading.)
UNSUPPORTED_PACKAGES = {
    "arrays": "arrays",
    "distrib": "distributions",
    "multi": "multistate species",
    "spatial": "spatial geometry",
    "qual": "qualitative (logical) models",
}


class SBMLError(ValueError):
    """An SBML file that is missing, unreadable, invalid or that stiffml cannot simulate."""


class SBMLUnsupported(SBMLError):
    """A valid SBML construct that the generated math (or stiffml as a whole) does not cover."""


def _libsbml() -> Any:
    try:
        import libsbml
    except ImportError:  # pragma: no cover - the extra is installed in CI
        raise SBMLError("SBML support needs python-libsbml: pip install 'stiffml[sbml]'") from None
    return libsbml


def read_document(path: str | Path) -> tuple[Any, bytes]:
    """Read, check and normalise an SBML file.

    The document is converted to Level 3 Version 2 (libsbml's converter, so Level 2 models get
    Level 3 semantics) and function definitions are expanded in place (libsbml's
    ``expandFunctionDefinitions`` converter), so every piece of math refers only to model symbols.

    Args:
        path: The SBML file.

    Returns:
        The libsbml document and the file's raw bytes (for content hashes).

    Raises:
        SBMLError: The file is missing, is not SBML, or has errors (libsbml's first error message
            with its line number), or requires an SBML package stiffml does not implement.
    """
    libsbml = _libsbml()
    path = Path(path)
    if not path.is_file():
        raise SBMLError(f"SBML file '{path}' not found")
    raw = path.read_bytes()
    doc = libsbml.readSBMLFromString(raw.decode("utf-8", errors="replace"))
    _raise_errors(doc, path, "read")
    if doc.getModel() is None:
        raise SBMLError(f"'{path}' is not an SBML model: it holds no <model> element")
    if doc.getPlugin("comp") is not None:
        doc, raw = _flatten(doc, path, libsbml)
    for i in range(doc.getNumPlugins()):
        prefix = doc.getPlugin(i).getPrefix()
        if prefix in UNSUPPORTED_PACKAGES and doc.getPackageRequired(doc.getPlugin(i).getURI()):
            raise SBMLUnsupported(
                f"'{path}' requires the SBML '{prefix}' package ({UNSUPPORTED_PACKAGES[prefix]}), "
                "which stiffml does not support"
            )
    # unit consistency is advice, not an error: the suite and BioModels hold many models without
    # units; everything else libsbml checks (identifiers, math, references, SBO) is kept
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, False)
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_MODELING_PRACTICE, False)
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_SBO_CONSISTENCY, False)
    doc.checkConsistency()
    _raise_errors(doc, path, "check")
    if (doc.getLevel(), doc.getVersion()) != (3, 2):
        if not doc.setLevelAndVersion(3, 2, False):
            _raise_errors(doc, path, f"convert (Level {doc.getLevel()} Version {doc.getVersion()} to Level 3 Version 2)")
            raise SBMLError(f"libsbml could not convert '{path}' to SBML Level 3 Version 2")
    algebraic = [r for r in doc.getModel().getListOfRules() if r.isAlgebraic() and r.isSetMath()]
    if algebraic:
        doc, raw = _solve_algebraic_rules(doc, algebraic, path, libsbml)
    props = libsbml.ConversionProperties()
    props.addOption("expandFunctionDefinitions", True)
    if doc.convert(props) != libsbml.LIBSBML_OPERATION_SUCCESS:
        _raise_errors(doc, path, "expand function definitions of")
        raise SBMLError(f"libsbml could not expand the function definitions of '{path}'")
    return doc, raw


def _flatten(doc: Any, path: Path, libsbml: Any) -> tuple[Any, bytes]:
    """A hierarchical (``comp``) model flattened into one model by libsbml's converter; the
    flattened text is what every engine then reads."""
    props = libsbml.ConversionProperties()
    props.addOption("flatten comp", True)
    props.addOption("leave_ports", False)
    if doc.convert(props) != libsbml.LIBSBML_OPERATION_SUCCESS:
        _raise_errors(doc, path, "flatten the hierarchical ('comp') model of")
        raise SBMLUnsupported(f"libsbml could not flatten the hierarchical ('comp') model of '{path}'")
    text = libsbml.writeSBMLToString(doc)
    flat = libsbml.readSBMLFromString(text)  # a fresh document: no leftover comp plugin state
    _raise_errors(flat, path, "read the flattened model of")
    return flat, text.encode("utf-8")


def _solve_algebraic_rules(doc: Any, rules: list[Any], path: Path, libsbml: Any) -> tuple[Any, bytes]:
    """Turn algebraic rules into assignment rules where sympy can solve each for one variable.

    The variable a rule determines is the one non-constant symbol in it that nothing else
    determines (no assignment or rate rule, no reaction changing it, no other algebraic rule
    already solved for it); rules are taken in the order that leaves each exactly one such symbol.
    A rule whose variable cannot be found, or that sympy cannot solve for it uniquely, stays an
    algebraic rule (the generated engine then refuses it by name). The converted document is what
    every engine reads, so roadrunner, which cannot load algebraic rules, simulates it too; an
    initial assignment to a solved variable is dropped (the rule holds at t = 0 as well).
    """
    import sympy as sp
    from sbmlmath import sbml_math_to_sympy, sympy_to_sbml_math

    m = doc.getModel()
    determined = {r.getVariable() for r in m.getListOfRules() if not r.isAlgebraic()}
    for r in m.getListOfReactions():
        for ref in [*r.getListOfReactants(), *r.getListOfProducts()]:
            s = m.getSpecies(ref.getSpecies())
            if s is not None and not s.getBoundaryCondition():
                determined.add(s.getId())
    variable_ids = {e.getId() for group in (m.getListOfSpecies(), m.getListOfCompartments(), m.getListOfParameters())
                    for e in group if not e.getConstant()}
    for r in m.getListOfReactions():
        for ref in [*r.getListOfReactants(), *r.getListOfProducts()]:
            if ref.isSetId() and not ref.getConstant():
                variable_ids.add(ref.getId())
    exprs = {}
    for rule in rules:
        try:
            exprs[id(rule)] = sp.sympify(sbml_math_to_sympy(rule, ignore_units=True, floats_as_rationals=False))
        except Exception:  # unreadable math stays an algebraic rule, refused later by name
            continue
    pending = [r for r in rules if id(r) in exprs]
    changed = True
    while pending and changed:
        changed = False
        for rule in list(pending):
            expr = exprs[id(rule)]
            free = [s for s in expr.free_symbols if s.name in variable_ids and s.name not in determined]
            if len(free) != 1:
                continue
            (var,) = free
            try:
                solutions = sp.solve(expr, var)
            except Exception:
                solutions = []
            if len(solutions) != 1:
                continue
            new = m.createAssignmentRule()
            new.setVariable(var.name)
            new.setMath(sympy_to_sbml_math(solutions[0]))
            index = next(i for i in range(m.getNumRules()) if m.getRule(i) == rule)
            m.removeRule(index)
            m.removeInitialAssignment(var.name)
            determined.add(var.name)
            pending.remove(rule)
            changed = True
    text = libsbml.writeSBMLToString(doc)
    converted = libsbml.readSBMLFromString(text)
    _raise_errors(converted, path, "read the model with its algebraic rules solved, of")
    return converted, text.encode("utf-8")


def _raise_errors(doc: Any, path: Path, what: str) -> None:
    libsbml = _libsbml()
    for i in range(doc.getNumErrors()):
        err = doc.getError(i)
        if err.getSeverity() >= libsbml.LIBSBML_SEV_ERROR:
            message = " ".join(err.getMessage().split())
            raise SBMLError(f"'{path}' line {err.getLine()}: {message} (libsbml, on {what})")


def content_hash(raw: bytes) -> str:
    """SHA-256 of a model file's bytes: part of every cache key built from the file."""
    return hashlib.sha256(raw).hexdigest()
