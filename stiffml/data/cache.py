"""On-disk cache of reference trajectories (npz, no pickle, atomic writes)."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from stiffml.io import atomic_write, default_cache_dir, remove_stale_temps, write_failure
from stiffml.systems import StiffSystem, Trajectory

CACHE_VERSION = 1


def cache_key(system: StiffSystem, t_eval: np.ndarray, solver: dict) -> str:
    """Hash of everything that determines a trajectory: system, parameters, y0, grid, solver."""
    grid = hashlib.sha256(np.ascontiguousarray(t_eval, dtype=np.float64).tobytes()).hexdigest()
    spec = {
        "version": CACHE_VERSION,
        "system": system.name,
        "params": {k: repr(float(v)) for k, v in sorted(system.params.items())},
        "y0": [repr(float(v)) for v in system.y0],
        "grid": grid,
        "solver": {k: repr(v) for k, v in sorted(solver.items())},
    }
    token = system.cache_token  # e.g. an SBML file's content hash
    if token:
        spec["token"] = token
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _load(path: Path, key: str, t_eval: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Load and validate one cache file's states ``y`` (of ``shape``); raise ``ValueError`` if it
    cannot be trusted."""
    try:
        with np.load(path, allow_pickle=False) as f:
            stored_key = str(f["key"])
            t, y = f["t"], f["y"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"unreadable ({type(err).__name__}: {err})") from None
    if stored_key != key:
        raise ValueError("key mismatch")
    if t.shape != t_eval.shape or y.shape != shape or not np.array_equal(t, t_eval):
        raise ValueError(f"shape mismatch (t {t.shape}, y {y.shape})")
    if not np.all(np.isfinite(y)):
        raise ValueError("non-finite values")
    return y


def cached_solve(
    system: StiffSystem,
    t_eval: np.ndarray,
    cache_dir: str | os.PathLike | None = None,
    method: str = "Radau",
    rtol: float = 1e-10,
    atol: float = 1e-12,
) -> Trajectory:
    """Solve ``system`` on ``t_eval``, reusing a valid cached result.

    A cache file that is unreadable or does not match the request is reported and regenerated,
    never trusted. The new file is written to a temporary name and renamed into place, so an
    interrupted or failed solve leaves nothing behind.
    """
    t_eval = np.asarray(t_eval, dtype=np.float64)
    solver = {"method": method, "rtol": float(rtol), "atol": float(atol)}
    key = cache_key(system, t_eval, solver)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = root / f"{system.name}-{key[:20]}.npz"
    if path.exists():
        try:
            return Trajectory(t=t_eval, y=_load(path, key, t_eval, (t_eval.size, system.n)))
        except ValueError as err:
            warnings.warn(f"stiffml: ignoring bad cache file {path}: {err}; regenerating", stacklevel=2)
    traj = system.solve(t_eval, method=method, rtol=rtol, atol=atol)
    _write(path, key=np.array(key), t=traj.t, y=traj.y)
    return traj


def _write(path: Path, **arrays: np.ndarray) -> None:
    """Write an npz atomically, first removing what a killed writer left in the folder."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot create cache directory {path.parent}: {err}") from None
    remove_stale_temps(path.parent)
    try:
        atomic_write(path, lambda f: np.savez(f, **arrays))
    except OSError as err:
        raise write_failure(err, "the trajectory cache", path,
                            "free space there or point --data.cache_dir (or STIFFML_CACHE_DIR) elsewhere") from None


def cached_ensemble(
    system: StiffSystem,
    y0s: np.ndarray,
    t_eval: np.ndarray,
    cache_dir: str | os.PathLike | None = None,
    method: str = "LSODA",
    rtol: float = 1e-12,
    atol: float = 1e-12,
    params: list[dict[str, float]] | None = None,
) -> np.ndarray:
    """:meth:`StiffSystem.solve_ensemble`, cached like :func:`cached_solve`; shape ``(m, T, n)``.

    ``params``: per-member parameter overrides (part of the key)."""
    t_eval = np.asarray(t_eval, dtype=np.float64)
    y0s = np.ascontiguousarray(y0s, dtype=np.float64)
    solver = {
        "method": method, "rtol": float(rtol), "atol": float(atol), "ensemble": True,
        "y0s": hashlib.sha256(y0s.tobytes() + repr(y0s.shape).encode()).hexdigest(),
    }
    if params is not None:
        members = [{k: repr(float(v)) for k, v in sorted(p.items())} for p in params]
        solver["params"] = hashlib.sha256(json.dumps(members).encode()).hexdigest()
    key = cache_key(system, t_eval, solver)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = root / f"{system.name}-ensemble-{key[:20]}.npz"
    shape = (y0s.shape[0], t_eval.size, system.n)
    if path.exists():
        try:
            return _load(path, key, t_eval, shape)
        except ValueError as err:
            warnings.warn(f"stiffml: ignoring bad cache file {path}: {err}; regenerating", stacklevel=2)
    y = system.solve_ensemble(y0s, t_eval, rtol=rtol, atol=atol, method=method, params=params)
    _write(path, key=np.array(key), t=t_eval, y=y)
    return y
