"""``stiffml list [PATTERN] [--json]``: the registry's models, datamodules and solvers.

Building the table imports every model (torch, Lightning: seconds), so its rows are cached in the
cache folder under :func:`stiffml.registry.fingerprint`, which changes whenever a plugin is
installed, removed or upgraded, or a registered package's source file is edited. A cached
listing answers without importing torch; plugin warnings are cached and shown again.
"""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any

from stiffml import registry
from stiffml.io import atomic_write, default_cache_dir, remove_stale_temps

USAGE = ("usage: stiffml list [PATTERN] [--refresh] [--json]   (PATTERN: a glob over names, e.g. '*LSTM*'; "
         "--json: one JSON object for programs)")
MODEL_COLUMNS = ("name", "family", "consumes", "params", "distribution")
DATAMODULE_COLUMNS = ("name", "system", "states", "distribution")
SOLVER_COLUMNS = ("name", "backend", "capabilities")


def _param_count(cls: type) -> str:
    """Parameters at default sizes for a 3-state system (B-Z), or '-' if that is not cheap."""
    try:
        n_in = 1 if cls.consumes({}) == "pointwise" else 3
        return f"{cls(n_inputs=n_in, n_outputs=3).n_params:,}"
    except Exception:
        return "-"


def build_rows() -> dict[str, Any]:
    """Every registered model and datamodule as table rows, plus the plugin warnings raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", registry.PluginWarning)
        models = registry.load("models", refresh=True)
        datamodules = registry.load("datamodules", refresh=True)
    rows: dict[str, Any] = {"models": [], "datamodules": [],
                            "warnings": [str(w.message) for w in caught if issubclass(w.category, registry.PluginWarning)]}
    for name, entry in models.items():
        rows["models"].append([name, entry.cls.family or "-", entry.cls.consumes({}), _param_count(entry.cls), entry.dist])
    for name, entry in datamodules.items():
        system = getattr(entry.cls, "system_class", None)
        if system is None:
            rows["datamodules"].append([name, getattr(entry.cls, "system_label", "-"), "-", entry.dist])
        else:
            rows["datamodules"].append([name, system.name, ", ".join(system.state_names), entry.dist])
    rows["solvers"] = solver_rows()
    return rows


def solver_rows() -> list[list[str]]:
    """Every registered integration method: name, backend, its declared capabilities."""
    from stiffml.solvers import REGISTRY, solver_class

    out = []
    for name, (backend, _, _) in REGISTRY.items():
        caps = [c for c, on in solver_class(name).capabilities().items() if on]
        out.append([name, backend, ", ".join(caps)])
    return out


def cached_rows(refresh: bool = False) -> dict[str, Any]:
    """The rows of :func:`build_rows`, from the cache when the registry has not changed."""
    folder = default_cache_dir()
    path = folder / f"registry-{registry.fingerprint()[:24]}.json"
    if not refresh:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    rows = build_rows()
    try:
        for old in folder.glob("registry-*.json"):
            old.unlink(missing_ok=True)
        remove_stale_temps(folder)
        atomic_write(path, json.dumps(rows))
    except OSError:  # an unwritable cache folder only costs speed
        pass
    return rows


def print_registry(pattern: str = "*", refresh: bool = False, as_json: bool = False) -> None:
    """Print the models, datamodules and solvers whose names match ``pattern`` (case-insensitive
    glob): as tables (full width when stdout is not a terminal, so names are never cut) or, with
    ``as_json``, as one JSON object of lists of records."""
    import fnmatch

    rows = cached_rows(refresh)
    if "solvers" not in rows:  # a listing cached before solvers were listed
        rows["solvers"] = solver_rows()
    for message in rows["warnings"]:
        print(f"warning: {message}", file=sys.stderr)

    def match(row: list[str]) -> bool:
        return fnmatch.fnmatch(row[0].lower(), pattern.lower())

    models = list(filter(match, rows["models"]))
    datamodules = list(filter(match, rows["datamodules"]))
    solvers = list(filter(match, rows["solvers"]))
    if not models and not datamodules and not solvers:
        names = len(rows["models"]) + len(rows["datamodules"]) + len(rows["solvers"])
        raise LookupError(f"no model, datamodule or solver matches {pattern!r} (a case-insensitive glob such as "
                          f"'*LSTM*'; 'stiffml list' shows all {names})")
    if as_json:
        print(json.dumps({
            "models": [dict(zip(MODEL_COLUMNS, r)) for r in models],
            "datamodules": [dict(zip(DATAMODULE_COLUMNS, r)) for r in datamodules],
            "solvers": [dict(zip(SOLVER_COLUMNS, r[:2]), capabilities=r[2].split(", ") if r[2] else [])
                        for r in solvers],
            "warnings": rows["warnings"],
        }, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    # piped or redirected: no terminal width to fit, so never cut a name ("RobertsonDataMod…")
    console = Console() if sys.stdout.isatty() else Console(width=1000, soft_wrap=True)
    for title, columns, found in (
        ("Models (stiffml.models)", ("name", "family", "consumes", "params (B-Z, defaults)", "distribution"), models),
        ("Datamodules (stiffml.datamodules)", DATAMODULE_COLUMNS, datamodules),
        ("Solvers (stiffml.solvers)", SOLVER_COLUMNS, solvers),
    ):
        if not found:
            continue
        table = Table(title=title)
        for col in columns:
            table.add_column(col, overflow="fold" if sys.stdout.isatty() else "ignore", no_wrap=not sys.stdout.isatty())
        for row in found:
            table.add_row(*row)
        console.print(table)


def main(argv: list[str]) -> int:
    """``stiffml list [PATTERN] [--refresh] [--json]``."""
    refresh, as_json = "--refresh" in argv, "--json" in argv
    rest = [a for a in argv if a not in ("--refresh", "--json")]
    if rest and rest[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if len(rest) > 1 or (rest and rest[0].startswith("-")):
        print(f"stiffml: error: list takes one PATTERN, --refresh and --json, got {' '.join(rest)!r}; {USAGE}",
              file=sys.stderr)
        return 2
    try:
        print_registry(rest[0] if rest else "*", refresh, as_json)
    except LookupError as err:
        print(f"stiffml: error: {err}", file=sys.stderr)
        return 1
    return 0
