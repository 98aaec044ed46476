"""The trajectory cache: hits, corrupt or mismatched files regenerated, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest

from stiffml.data.cache import cached_solve, default_cache_dir
from stiffml.systems import SolveError, get_system


def _count_solves(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    from stiffml.systems.base import StiffSystem

    real = StiffSystem.solve

    def counting(self, *a, **k):
        calls.append(1)
        return real(self, *a, **k)

    monkeypatch.setattr(StiffSystem, "solve", counting)
    return calls


def test_hit_miss_and_key(tmp_path, monkeypatch) -> None:
    calls = _count_solves(monkeypatch)
    s = get_system("vdp")
    grid = np.linspace(0, 1, 11)
    a = cached_solve(s, grid, tmp_path)
    b = cached_solve(s, grid, tmp_path)
    assert len(calls) == 1 and np.array_equal(a.y, b.y)
    cached_solve(get_system("vdp", mu=10), grid, tmp_path)  # other parameters: other file
    cached_solve(s, grid, tmp_path, rtol=1e-8)  # other solver settings: other file
    assert len(calls) == 3
    assert len(list(tmp_path.glob("*.npz"))) == 3


@pytest.mark.parametrize("damage", ["garbage", "truncate", "wrong-key"])
def test_bad_cache_file_is_regenerated(tmp_path, monkeypatch, damage: str) -> None:
    s = get_system("vdp")
    grid = np.linspace(0, 1, 11)
    good = cached_solve(s, grid, tmp_path)
    (path,) = tmp_path.glob("*.npz")
    if damage == "garbage":
        path.write_bytes(b"not an npz")
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    else:
        np.savez(path, key=np.array("0" * 64), t=good.t, y=good.y + 1)
    calls = _count_solves(monkeypatch)
    with pytest.warns(UserWarning, match="ignoring bad cache file"):
        again = cached_solve(s, grid, tmp_path)
    assert len(calls) == 1
    np.testing.assert_array_equal(again.y, good.y)
    cached_solve(s, grid, tmp_path)  # the rewritten file is trusted again
    assert len(calls) == 1


def test_failed_solve_leaves_nothing_behind(tmp_path) -> None:
    s = get_system("bz", c=-8.375e-6)
    with pytest.raises(SolveError):
        cached_solve(s, s.default_grid(dt=1e-2), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cache_location(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("STIFFML_CACHE_DIR", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    monkeypatch.delenv("STIFFML_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "stiffml"
