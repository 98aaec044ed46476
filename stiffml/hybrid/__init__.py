"""Hybrid models: networks inside a mechanistic SBML right-hand side (universal differential
equations). The numerical core, free of Lightning; :class:`stiffml.models.hybrid.HybridModel` is
its Lightning shell."""

from stiffml.hybrid.field import HybridField, Replacement, TermNetwork, parse_replace

__all__ = ["HybridField", "Replacement", "TermNetwork", "parse_replace"]
