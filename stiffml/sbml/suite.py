"""Score stiffml on cases in the SBML Test Suite's format: ``stiffml sbml-suite FOLDER``.

A semantic case is a folder ``NNNNN/`` holding ``NNNNN-sbml-l3v2.xml`` (or another level),
``NNNNN-settings.txt`` (``start``, ``duration``, ``steps``, ``variables``, ``absolute``,
``relative``, ``amount``, ``concentration``) and ``NNNNN-results.csv`` (``time`` plus one column
per variable). A case passes when every value satisfies
``|simulated − expected| ≤ absolute + relative·|expected|`` (NaN must meet NaN, infinities must be
equal). Cases whose ``NNNNN-model.m`` names a test type other than ``TimeCourse``, and models
that stiffml refuses by name, count as unsupported.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from stiffml.sbml.document import SBMLError, SBMLUnsupported, read_document

# the file of a case at the newest level first: stiffml reads them all, the newest carries most
LEVELS = ("l3v2", "l3v1", "l2v5", "l2v4", "l2v3", "l2v2", "l2v1", "l1v2")


@dataclasses.dataclass(frozen=True)
class Settings:
    """A case's ``NNNNN-settings.txt``."""

    start: float
    duration: float
    steps: int
    variables: list[str]
    absolute: float
    relative: float
    amount: list[str]
    concentration: list[str]

    @property
    def times(self) -> np.ndarray:
        return np.linspace(self.start, self.start + self.duration, self.steps + 1)

    @classmethod
    def read(cls, path: Path) -> "Settings":
        fields: dict[str, str] = {}
        for line in path.read_text().splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower()] = value.strip()

        def names(key: str) -> list[str]:
            return [v.strip() for v in fields.get(key, "").split(",") if v.strip()]

        try:
            return cls(start=float(fields.get("start", 0)), duration=float(fields["duration"]),
                       steps=int(float(fields["steps"])), variables=names("variables"),
                       absolute=float(fields["absolute"]), relative=float(fields["relative"]),
                       amount=names("amount"), concentration=names("concentration"))
        except (KeyError, ValueError) as err:
            raise SBMLError(f"{path}: bad settings ({type(err).__name__}: {err})") from None


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One case's result: ``passed``, ``failed`` or ``unsupported``, with the reason."""

    case: str
    status: str
    reason: str = ""


def read_results(path: Path) -> tuple[list[str], np.ndarray]:
    """A results CSV: its column names and values (``NaN``/``INF`` spelled any way numpy reads)."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    header = [h.strip() for h in lines[0].split(",")]
    rows = [[float(v.strip()) for v in ln.split(",")] for ln in lines[1:]]
    return header, np.array(rows, dtype=np.float64).reshape(len(rows), len(header))


def compare(expected: np.ndarray, simulated: np.ndarray, absolute: float, relative: float) -> np.ndarray:
    """Boolean mask of the values that pass the suite's criterion."""
    with np.errstate(invalid="ignore"):
        ok = np.abs(simulated - expected) <= absolute + relative * np.abs(expected)
    ok |= np.isnan(expected) & np.isnan(simulated)
    ok |= np.isinf(expected) & (expected == simulated)
    return ok


def simulate_file(path: Path, times: np.ndarray, variables: Sequence[str], amounts: Sequence[str] = (),
                  engine: str = "roadrunner", rtol: float = 1e-10, atol: float = 1e-14) -> np.ndarray:
    """Values of ``variables`` at ``times`` from t = 0 for one SBML file (see
    :meth:`stiffml.sbml.SBMLSystem.simulate`); the roadrunner engine needs only a readable file."""
    if engine == "generated":
        from stiffml.sbml.system import SBMLSystem

        return SBMLSystem(path).simulate(times, variables, amounts, engine="generated", rtol=rtol, atol=atol)
    from stiffml.sbml.system import SBMLSystem, roadrunner_simulate

    doc, raw = read_document(path)
    if b"http://www.sbml.org/sbml/symbols/delay" in raw:  # libroadrunner cannot load delay()
        return SBMLSystem(path).simulate(times, variables, amounts, engine="roadrunner", rtol=rtol, atol=atol)
    species = {s.getId() for s in doc.getModel().getListOfSpecies()}
    return roadrunner_simulate(raw.decode("utf-8", "replace"), species, times, variables, amounts, rtol, atol)


def case_file(folder: Path) -> Path | None:
    """The SBML file of a case folder, newest level first."""
    for level in LEVELS:
        path = folder / f"{folder.name}-sbml-{level}.xml"
        if path.is_file():
            return path
    found = sorted(folder.glob(f"{folder.name}-sbml-*.xml"))
    return found[-1] if found else None


def run_case(folder: Path, engine: str = "roadrunner") -> Outcome:
    """Simulate one case and compare it with its expected results."""
    name = folder.name
    model_m = folder / f"{name}-model.m"
    if model_m.is_file():
        kind = re.search(r"testType:\s*(\w+)", model_m.read_text())
        if kind and kind.group(1) != "TimeCourse":
            return Outcome(name, "unsupported", f"test type {kind.group(1)}")
    sbml = case_file(folder)
    settings_path, results_path = folder / f"{name}-settings.txt", folder / f"{name}-results.csv"
    if sbml is None or not settings_path.is_file() or not results_path.is_file():
        return Outcome(name, "failed", "incomplete case: needs -sbml-*.xml, -settings.txt and -results.csv")
    try:
        settings = Settings.read(settings_path)
        header, expected = read_results(results_path)
        columns = [h for h in header if h.lower() != "time"]
        times = expected[:, [h.lower() for h in header].index("time")] if "time" in map(str.lower, header) else settings.times
        simulated = simulate_file(sbml, times, columns, settings.amount, engine=engine)
    except SBMLUnsupported as err:
        return Outcome(name, "unsupported", str(err))
    except Exception as err:  # a case that cannot run is a failure with its reason, not a crash
        return Outcome(name, "failed", f"{type(err).__name__}: {' '.join(str(err).split())}")
    exp = expected[:, [header.index(c) for c in columns]]
    ok = compare(exp, simulated, settings.absolute, settings.relative)
    if ok.all():
        return Outcome(name, "passed")
    i, j = np.argwhere(~ok)[0]
    bad = int((~ok).sum())
    return Outcome(name, "failed", f"{bad} value(s) out of tolerance, first {columns[j]} at t={times[i]:g}: "
                                   f"simulated {simulated[i, j]:.10g}, expected {exp[i, j]:.10g}")


def find_cases(folder: Path, selection: str | None = None) -> list[Path]:
    """Case folders under ``folder`` (names of digits), optionally only those in ``selection``
    (``1-100,205``)."""
    if not folder.is_dir():
        raise SBMLError(f"suite folder '{folder}' not found")
    cases = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.isdigit())
    if selection:
        wanted: set[int] = set()
        for part in selection.split(","):
            lo, _, hi = part.strip().partition("-")
            try:
                wanted.update(range(int(lo), int(hi or lo) + 1))
            except ValueError:
                raise SBMLError(f"bad case selection {selection!r}; write e.g. 1-100,205") from None
        cases = [p for p in cases if int(p.name) in wanted]
    if not cases:
        raise SBMLError(f"no test cases (folders named by number) in '{folder}'"
                        + (f" matching {selection!r}" if selection else ""))
    return cases


def main(argv: list[str] | None = None) -> int:
    """``stiffml sbml-suite FOLDER``: exit 0 when no case failed, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="stiffml sbml-suite", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of case folders (e.g. the suite's cases/semantic)")
    parser.add_argument("--engine", choices=("roadrunner", "generated"), default="roadrunner",
                        help="roadrunner: libroadrunner's CVODE (what solve() uses); generated: stiffml's "
                             "generated math integrated by scipy's Radau (no events)")
    parser.add_argument("--cases", default=None, help="only these case numbers, e.g. 1-100,205")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    args = parser.parse_args(argv)
    cases = find_cases(args.folder, args.cases)
    return score(cases, lambda folder: run_case(folder, args.engine), args.quiet, f", engine {args.engine}")


def score(cases: Sequence[Path], run: Callable[[Path], Outcome], quiet: bool, detail: str = "") -> int:
    """Run every case, print each one that did not pass (unless ``quiet``) and the summary line
    ``N passed, M failed, K unsupported``; 1 when a case failed, else 0 (shared by both suites)."""
    counts = {"passed": 0, "failed": 0, "unsupported": 0}
    for folder in cases:
        outcome = run(folder)
        counts[outcome.status] += 1
        if outcome.status != "passed" and not quiet:
            print(f"{outcome.case} {outcome.status}: {outcome.reason}")
    print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['unsupported']} unsupported "
          f"({len(cases)} cases{detail})")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
