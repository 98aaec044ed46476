"""The physics-structured family (Yaguchi 2025): models of a vector field trained on
(state, derivative) samples: a plain neural ODE field, Hamiltonian and dissipative Hamiltonian
networks, Lagrangian networks, and pykan KANs (as a field regressor and as a Lagrangian)."""

from stiffml.models.physics.base import NODE, PhysicsModel, autograd_enabled, mlp
from stiffml.models.physics.hamiltonian import HNN, DissipativeHNN
from stiffml.models.physics.kan import KAN, KANLNN
from stiffml.models.physics.lagrangian import LNN

__all__ = ["HNN", "KAN", "KANLNN", "LNN", "NODE", "DissipativeHNN", "PhysicsModel", "autograd_enabled", "mlp"]
