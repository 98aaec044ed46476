"""SBML models as stiff systems: read with python-libsbml, math generated with sympy, reference
trajectories from libroadrunner's CVODE.

Example:
    >>> from stiffml.sbml import SBMLSystem
    >>> s = SBMLSystem("tyson1991")          # a shipped example, or a path to any SBML file
    >>> traj = s.solve(s.default_grid())     # CVODE reference
    >>> s.rhs(0.0, s.y0), s.jac(0.0, s.y0)   # generated numpy math
"""

from stiffml.sbml.document import SBMLError, SBMLUnsupported
from stiffml.sbml.examples import EXAMPLES
from stiffml.sbml.system import SBMLSystem

__all__ = ["EXAMPLES", "SBMLError", "SBMLSystem", "SBMLUnsupported"]
