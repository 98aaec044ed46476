"""PEtab parameter-estimation problems: the likelihood of measurements given an SBML model, and its
gradient through the stiff solver.

Example:
    >>> from stiffml.petab import Problem
    >>> p = Problem("Boehm_JProteomeRes2014/Boehm_JProteomeRes2014.yaml")
    >>> p.nllh(), p.gradient(), p.simulate()
"""

from stiffml.petab.problem import PEtabError, PEtabUnsupported, Problem

__all__ = ["PEtabError", "PEtabUnsupported", "Problem"]
