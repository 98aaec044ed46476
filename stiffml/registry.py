"""Plugin registry: every model and datamodule, built-in or third-party, comes from entry points.

Loading the entry points imports the classes, which is what lets LightningCLI resolve short
names (``--model FCNN``, ``class_path: FCNN``) for plugin classes too.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import importlib.util
import os
import warnings
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

GROUPS = {"models": "stiffml.models", "datamodules": "stiffml.datamodules"}


class RegistryError(RuntimeError):
    """Two distributions register different classes under one name."""


class PluginWarning(UserWarning):
    """A plugin could not be loaded; the rest of stiffml keeps working."""


@dataclass(frozen=True)
class Entry:
    """A registered class and the distribution that registered it."""

    name: str
    cls: type
    dist: str


_cache: dict[str, dict[str, Entry]] = {}


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "<unknown distribution>"


def _base_for(kind: str) -> type:
    if kind == "models":
        from stiffml.models.base import StiffModel

        return StiffModel
    from stiffml.data.base import SystemDataModule

    return SystemDataModule


def load(kind: str, eps: list[EntryPoint] | None = None, refresh: bool = False) -> dict[str, Entry]:
    """Load the entry points of ``kind`` (``models`` or ``datamodules``).

    A plugin that fails to import, is not a subclass of the base class, or whose entry-point
    name differs from its class name is skipped with a :class:`PluginWarning` naming it.
    Two distributions registering different classes under one name is a :class:`RegistryError`.

    Args:
        kind: ``models`` or ``datamodules``.
        eps: Entry points to use instead of the installed ones (for tests).
        refresh: Reload even if already loaded.
    """
    if kind not in GROUPS:
        raise ValueError(f"unknown registry kind {kind!r}; valid: {sorted(GROUPS)}")
    if eps is None and not refresh and kind in _cache:
        return _cache[kind]
    base = _base_for(kind)
    found: dict[str, Entry] = {}
    for ep in eps if eps is not None else entry_points(group=GROUPS[kind]):
        dist = _dist_name(ep)
        try:
            obj = ep.load()
        except (Exception, SystemExit) as err:  # a broken plugin must not take stiffml down
            warnings.warn(
                f"stiffml: skipping plugin {kind[:-1]} '{ep.name}' from {dist} ({ep.value}): "
                f"import failed: {type(err).__name__}: {err}",
                PluginWarning,
                stacklevel=2,
            )
            continue
        if not (isinstance(obj, type) and issubclass(obj, base)):
            warnings.warn(
                f"stiffml: skipping plugin {kind[:-1]} '{ep.name}' from {dist}: {ep.value} is not "
                f"a subclass of {base.__module__}.{base.__name__}",
                PluginWarning,
                stacklevel=2,
            )
            continue
        if obj.__name__ != ep.name:
            warnings.warn(
                f"stiffml: skipping plugin {kind[:-1]} '{ep.name}' from {dist}: the entry-point "
                f"name must equal the class name '{obj.__name__}'",
                PluginWarning,
                stacklevel=2,
            )
            continue
        prev = found.get(ep.name)
        if prev is not None and prev.cls is not obj:
            raise RegistryError(
                f"two {kind} are registered as '{ep.name}': {prev.cls.__module__}.{prev.cls.__name__} "
                f"from {prev.dist} and {obj.__module__}.{obj.__name__} from {dist}"
            )
        found[ep.name] = Entry(ep.name, obj, dist)
    found = dict(sorted(found.items()))
    if eps is None:
        _cache[kind] = found
    return found


def import_class(path: str) -> object:
    """A registered short name (``FCNN``) or a dotted import path (``pkg.module.Class``)."""
    for kind in GROUPS:
        if path in load(kind):
            return load(kind)[path].cls
    module, _, name = path.rpartition(".")
    if not module:
        raise ValueError(f"unknown class {path!r}: neither a registered name nor a dotted import path")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import {path!r}: {err}") from None


def fingerprint() -> str:
    """A hash of what the registry's contents depend on, computed without importing any plugin:
    every entry point with its distribution's name and version, and the modification times of
    the Python files of the packages the entry points live in (edits to an editable install)."""
    parts, roots = [], set()
    for kind, group in GROUPS.items():
        for ep in sorted(entry_points(group=group), key=lambda e: (e.name, e.value)):
            dist = getattr(ep, "dist", None)
            parts.append(f"{kind}|{ep.name}|{ep.value}|{_dist_name(ep)}|{getattr(dist, 'version', '')}")
            roots.add(ep.value.split(":")[0].split(".")[0])
    for root in sorted(roots):
        try:
            spec = importlib.util.find_spec(root)  # a top-level name: finds, imports nothing
        except (ImportError, ValueError):
            spec = None
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        files = [spec.origin] if spec is not None and spec.origin and not folders else []
        for folder in folders:
            files += [str(p) for p in Path(folder).rglob("*.py")]
        for file in sorted(files):
            try:
                parts.append(f"{file}|{os.stat(file).st_mtime_ns}")
            except OSError:
                parts.append(f"{file}|missing")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def load_all() -> None:
    """Import every registered model and datamodule (call before the CLI parses)."""
    for kind in GROUPS:
        load(kind)


def models(pattern: str = "*") -> dict[str, Entry]:
    """Registered models whose name matches the glob ``pattern`` (case-insensitive)."""
    return {k: v for k, v in load("models").items() if fnmatch.fnmatch(k.lower(), pattern.lower())}


def datamodules(pattern: str = "*") -> dict[str, Entry]:
    """Registered datamodules whose name matches the glob ``pattern`` (case-insensitive)."""
    return {k: v for k, v in load("datamodules").items() if fnmatch.fnmatch(k.lower(), pattern.lower())}


def get_model(name: str) -> type:
    """The model class registered as ``name``; unknown names list the valid ones."""
    try:
        return load("models")[name].cls
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid: {sorted(load('models'))}") from None


def get_datamodule(name: str) -> type:
    """The datamodule class registered as ``name``; unknown names list the valid ones."""
    try:
        return load("datamodules")[name].cls
    except KeyError:
        raise ValueError(f"unknown datamodule {name!r}; valid: {sorted(load('datamodules'))}") from None
