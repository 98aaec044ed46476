"""The system zoo against the Test Set references, the paper's stiffness ratios, and failures."""

from __future__ import annotations

import numpy as np
import pytest

from stiffml.systems import SYSTEMS, SolveError, get_system

# Test Set for IVP Solvers (Mazzia & Magherini), computed with RADAU5 at tolerances ~1e-18.
REFERENCES = {
    "robertson": (1e11, [0.2083340149701255e-07, 0.8333360770334713e-13, 0.9999999791665050]),
    "hires": (321.8122, [
        0.7371312573325668e-3, 0.1442485726316185e-3, 0.5888729740967575e-4, 0.1175651343283149e-2,
        0.2386356198831331e-2, 0.6238968252742796e-2, 0.2849998395185769e-2, 0.2850001604814231e-2,
    ]),
    "orego": (360.0, [0.1000814870318523e1, 0.1228178521549917e4, 0.1320554942846706e3]),
    # Test Set for IVP Solvers, POLLU (RADAU5 with uround 1.01e-19)
    "pollu": (60.0, [
        0.5646255480022769e-01, 0.1342484130422339e+00, 0.4139734331099427e-08, 0.5523140207484359e-02,
        0.2018977262302196e-06, 0.1464541863493966e-06, 0.7784249118997964e-01, 0.3245075353396018e+00,
        0.7494013383880406e-02, 0.1622293157301561e-07, 0.1135863833257075e-07, 0.2230505975721359e-02,
        0.2087162882798630e-03, 0.1396921016840158e-04, 0.8964884856898061e-02, 0.4352846369330103e-17,
        0.6899219696263405e-02, 0.1007803037365946e-03, 0.1772146513969984e-05, 0.5682943292316392e-04,
    ]),
}


# POLLU with Radau and per-component atol down to 4e-30 takes about 6 s: in the slow set
@pytest.mark.parametrize("name, method", [
    pytest.param(n, m, marks=pytest.mark.slow) if n in ("pollu", "orego", "robertson") else (n, m)
    for n in sorted(REFERENCES) for m in ("Radau", "LSODA")
])
def test_reference_solutions_to_8_digits(name: str, method: str) -> None:
    t_end, ref = REFERENCES[name]
    ref = np.array(ref)
    s = get_system(name)
    rtol = 1e-10 if method == "Radau" else 1e-13
    traj = s.solve([t_end], rtol=rtol, atol=np.abs(ref) * rtol * 1e-2, method=method)
    rel = np.abs(traj.y[-1] - ref) / np.abs(ref)
    assert rel.max() < 5e-9, rel  # at least 8 significant digits in every component


def test_paper_stiffness_ratios() -> None:
    printed = get_system("bz", c=-8.375e-6)
    assert printed.stiffness_ratio(printed.y0) == pytest.approx(1.934e3, rel=1e-3)
    vdp = get_system("vdp")
    assert vdp.stiffness_ratio(vdp.y0) == pytest.approx(5.76e4, rel=1e-3)
    assert get_system("bz").stiffness_ratio(get_system("bz").y0) == pytest.approx(1928.43, rel=1e-4)


def test_printed_bz_sign_blows_up_with_clear_error() -> None:
    s = get_system("bz", c=-8.375e-6)
    with pytest.raises(SolveError, match=r"blew up at t≈0\.23"):
        s.solve(s.default_grid(dt=1e-3))


def test_default_bz_oscillates_over_the_paper_span() -> None:
    s = get_system("bz")
    traj = s.solve(s.default_grid(dt=1e-3), rtol=1e-8, atol=1e-10)
    assert traj.y.shape == (10001, 3) and traj.t.shape == (10001,)
    assert traj.y[:, 0].max() > 1e5 and traj.y[:, 0].min() < 1.01  # relaxation oscillations


def test_solvers_agree_on_vdp() -> None:
    s = get_system("vdp")
    t = np.linspace(0, 30, 301)
    a = s.solve(t, rtol=1e-10, atol=1e-12, method="Radau").y
    b = s.solve(t, rtol=1e-11, atol=1e-13, method="BDF").y
    assert np.max(np.abs(a - b)) < 1e-5 * np.abs(a).max()


@pytest.mark.slow  # two long VdP solves
def test_lienard_form_is_the_same_oscillator() -> None:
    """``vdp_lienard``'s x is ``vdp``'s x (two jumps included), and y = x − x³/3 − x'/μ along the way."""
    t = np.linspace(0, 140, 1401)  # past the first two jumps (about 65 s and 130 s)
    xv = get_system("vdp").solve(t, rtol=1e-11, atol=1e-13, method="Radau").y
    xy = get_system("vdp_lienard").solve(t, rtol=1e-11, atol=1e-13, method="Radau").y
    np.testing.assert_allclose(xy[:, 0], xv[:, 0], atol=1e-5)
    x, v = xv.T
    np.testing.assert_allclose(xy[:, 1], x - x**3 / 3 - v / 80, atol=1e-6)
    assert xy[:, 0].min() < -1.9 and xy[:, 0].max() > 1.9


@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_analytic_jacobian_matches_finite_differences(name: str) -> None:
    s = get_system(name)
    rng = np.random.default_rng(0)
    y = np.abs(s.y0) + rng.uniform(0.1, 1.0, s.n)
    jac = s.jac(0.0, y)
    eps = 1e-6
    fd = np.stack([(s.rhs(0.0, y + eps * e) - s.rhs(0.0, y - eps * e)) / (2 * eps) for e in np.eye(s.n)], 1)
    np.testing.assert_allclose(jac, fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max())


@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_rhs_is_vectorised(name: str) -> None:
    s = get_system(name)
    ys = np.abs(s.y0)[:, None] + np.random.default_rng(1).uniform(0, 1, (s.n, 5))
    batched = s.rhs(0.0, ys)
    assert batched.shape == (s.n, 5)
    np.testing.assert_allclose(batched[:, 3], s.rhs(0.0, ys[:, 3]))


def test_bad_names_and_parameters_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown system 'nope'; valid: \['bz', 'duffing'"):
        get_system("nope")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['mu'\].*valid: \['a', 'b', 'c', 'h'\]"):
        get_system("bz", mu=3)
    with pytest.raises(ValueError, match="y0 .* must have 2 components"):
        get_system("vdp", y0=[1, 2, 3])
    s = get_system("vdp")
    with pytest.raises(ValueError, match="positive"):
        s.default_grid(dt=-1)
    with pytest.raises(ValueError, match="t1 > t0"):
        s.default_grid(t_span=(5, 1))
    with pytest.raises(ValueError, match=r"unknown ODE solver .RK45.; valid: \[.Radau., .BDF., .LSODA.\]"):
        s.solve([1.0], method="RK45")


def test_log_grid_spans_the_decades() -> None:
    grid = get_system("robertson").default_grid()
    assert grid[0] == 0 and grid[1] == pytest.approx(1e-5) and grid[-1] == pytest.approx(1e5)
    assert np.all(np.diff(grid) > 0)
