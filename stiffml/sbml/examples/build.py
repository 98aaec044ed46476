"""Regenerate the shipped SBML examples from their Antimony sources (needs ``antimony``).

Usage: ``python -m stiffml.sbml.examples.build [--check]``; ``--check`` exits 1 when a shipped
``.xml`` differs from what its ``.ant`` gives.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stiffml.sbml.examples import FOLDER


def build(source: Path) -> str:
    """SBML Level 3 Version 2 text of one Antimony file, its header comment as the model notes."""
    import antimony
    import libsbml

    antimony.clearPreviousLoads()
    text = source.read_text()
    if antimony.loadAntimonyString(text) < 0:
        raise ValueError(f"{source}: {antimony.getLastError()}")
    doc = libsbml.readSBMLFromString(antimony.getSBMLString(antimony.getMainModuleName()))
    header = [line[2:].strip() for line in text.splitlines() if line.startswith("//")]
    notes = " ".join(header).replace("&", "and").replace("<", "(").replace(">", ")")
    doc.getModel().setNotes(f'<body xmlns="http://www.w3.org/1999/xhtml"><p>{notes}</p></body>')
    out = libsbml.writeSBMLToString(doc)
    # the converter stamps its own version into a comment; drop it so rebuilds compare equal
    return "\n".join(line for line in out.splitlines() if not line.startswith("<!-- Created by")) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for source in sorted(FOLDER.glob("*.ant")):
        text, target = build(source), source.with_suffix(".xml")
        if args.check:
            if not target.is_file() or target.read_text() != text:
                stale.append(target.name)
        else:
            target.write_text(text)
            print(f"wrote {target}")
    if stale:
        print(f"stale: {stale}; run python -m stiffml.sbml.examples.build", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
