"""``stiffml list [PATTERN]``: a table of the registry.

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

USAGE = "usage: stiffml list [PATTERN] [--refresh]   (PATTERN: a glob over names, e.g. '*LSTM*')"


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
    return rows


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


def print_registry(pattern: str = "*", refresh: bool = False) -> None:
    """Print the models and datamodules whose names match ``pattern`` (case-insensitive glob)."""
    import fnmatch

    from rich.console import Console
    from rich.table import Table

    rows = cached_rows(refresh)
    for message in rows["warnings"]:
        print(f"warning: {message}", file=sys.stderr)

    def match(row: list[str]) -> bool:
        return fnmatch.fnmatch(row[0].lower(), pattern.lower())

    models = list(filter(match, rows["models"]))
    datamodules = list(filter(match, rows["datamodules"]))
    if not models and not datamodules:
        names = len(rows["models"]) + len(rows["datamodules"])
        raise LookupError(f"no model or datamodule matches {pattern!r} (a case-insensitive glob such as '*LSTM*'; "
                          f"'stiffml list' shows all {names})")
    console = Console()
    table = Table(title="Models (stiffml.models)")
    for col in ("name", "family", "consumes", "params (B-Z, defaults)", "distribution"):
        table.add_column(col)
    for row in models:
        table.add_row(*row)
    console.print(table)
    table = Table(title="Datamodules (stiffml.datamodules)")
    for col in ("name", "system", "states", "distribution"):
        table.add_column(col)
    for row in datamodules:
        table.add_row(*row)
    console.print(table)


def main(argv: list[str]) -> int:
    """``stiffml list [PATTERN] [--refresh]``."""
    refresh = "--refresh" in argv
    rest = [a for a in argv if a != "--refresh"]
    if rest and rest[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if len(rest) > 1 or (rest and rest[0].startswith("-")):
        print(f"stiffml: error: list takes one PATTERN and --refresh, got {' '.join(rest)!r}; {USAGE}", file=sys.stderr)
        return 2
    try:
        print_registry(rest[0] if rest else "*", refresh)
    except LookupError as err:
        print(f"stiffml: error: {err}", file=sys.stderr)
        return 1
    return 0
