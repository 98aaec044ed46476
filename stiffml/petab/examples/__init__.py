"""PEtab problems shipped with stiffml, usable by name (``Problem("tyson1991")``).

Each lives in ``NAME/problem.yaml`` with its tables; the measurements are synthetic, written by
``python -m stiffml.petab.examples.build`` from the true parameters (the parameter table's nominal
values) with seeded Gaussian noise.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).parent

EXAMPLES: dict[str, str] = {
    "tyson1991": "Tyson (1991) cell cycle: total cyclin and active MPF under three cyclin-synthesis rates, "
                 "3 rate constants to recover",
}


def resolve_problem(problem: str | Path) -> Path:
    """The YAML file of ``problem``: a shipped example's name, or a path as given."""
    text = str(problem)
    return FOLDER / text / "problem.yaml" if text in EXAMPLES else Path(text).expanduser()
