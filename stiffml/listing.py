"""``stiffml list``: a table of the registry."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from stiffml import registry


def _param_count(cls: type) -> str:
    """Parameters at default sizes for a 3-state system (B-Z), or '-' if that is not cheap."""
    try:
        n_in = 1 if cls.consumes({}) == "pointwise" else 3
        return f"{cls(n_inputs=n_in, n_outputs=3).n_params:,}"
    except Exception:
        return "-"


def print_registry(pattern: str = "*") -> None:
    """Print the models and datamodules whose names match ``pattern``."""
    console = Console()
    table = Table(title="Models (stiffml.models)")
    for col in ("name", "family", "consumes", "params (B-Z, defaults)", "distribution"):
        table.add_column(col)
    for name, entry in registry.models(pattern).items():
        table.add_row(name, entry.cls.family or "-", entry.cls.consumes({}), _param_count(entry.cls), entry.dist)
    console.print(table)
    table = Table(title="Datamodules (stiffml.datamodules)")
    for col in ("name", "system", "states", "distribution"):
        table.add_column(col)
    for name, entry in registry.datamodules(pattern).items():
        system = getattr(entry.cls, "system_class", None)
        if system is None:
            table.add_row(name, "-", "-", entry.dist)
        else:
            table.add_row(name, system.name, ", ".join(system.state_names), entry.dist)
    console.print(table)
