"""ODE solvers for neural ODEs: torchdiffeq's and a differentiable stiff Rosenbrock23."""

from stiffml.solvers.integrate import SOLVERS, TORCHDIFFEQ_SOLVERS, check_solver, integrate
from stiffml.solvers.rosenbrock import StepBudgetExceeded, batched_jacobian, rosenbrock23

__all__ = [
    "SOLVERS", "TORCHDIFFEQ_SOLVERS", "StepBudgetExceeded", "batched_jacobian", "check_solver",
    "integrate", "rosenbrock23",
]
