"""SBML models shipped with stiffml, usable by name (``--data.model tyson1991``).

Each ``NAME.xml`` is generated from ``NAME.ant`` (Antimony, with the source cited in its header,
which is copied into the SBML notes) by ``python -m stiffml.sbml.examples.build``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from stiffml.sbml.document import SBMLError

FOLDER = Path(__file__).parent


@dataclasses.dataclass(frozen=True)
class Example:
    """A shipped model and the simulation settings that show its dynamics.

    Attributes:
        name: Name to pass as ``model``.
        description: One line.
        t_span: Default time span.
        dt: Default sampling step (log grids: the first time after ``t0``).
        spacing: ``linear`` or ``log``.
    """

    name: str
    description: str
    t_span: tuple[float, float]
    dt: float
    spacing: str = "linear"

    @property
    def path(self) -> Path:
        return FOLDER / f"{self.name}.xml"


EXAMPLES: dict[str, Example] = {e.name: e for e in (
    Example("bz", "Belousov-Zhabotinsky, the paper's Oregonator form (rate rules)", (0.0, 10.0), 1e-3),
    Example("robertson", "ROBER kinetics as three mass-action reactions", (0.0, 1e5), 1e-5, "log"),
    Example("goldbeter1991", "Goldbeter (1991) minimal mitotic oscillator, 3 species", (0.0, 100.0), 0.01),
    Example("tyson1991", "Tyson (1991) cdc2-cyclin cell cycle, 6 species", (0.0, 100.0), 0.01),
)}


def resolve_model(model: str | Path) -> tuple[Path, Example | None]:
    """The file of ``model``: a shipped example's name, or a path.

    Raises:
        SBMLError: Neither an example nor an existing file.
    """
    text = str(model)
    if text in EXAMPLES:
        return EXAMPLES[text].path, EXAMPLES[text]
    path = Path(text).expanduser()
    if path.is_dir():
        raise SBMLError(f"SBML model '{text}' is a folder, not a file")
    if not path.is_file():
        raise SBMLError(f"SBML model '{text}' is neither a file nor a shipped example; "
                        f"examples: {sorted(EXAMPLES)}")
    return path, None
