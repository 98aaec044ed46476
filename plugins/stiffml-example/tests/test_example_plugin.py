"""The example plugin against stiffml's plugin contract, plus its own checks."""

from __future__ import annotations

import numpy as np
import pytest

from stiffml import registry
from stiffml.testing import check_datamodule, check_model
from stiffml_example import Siren, ToggleSwitch, ToggleSwitchDataModule


def test_registered_under_class_names() -> None:
    assert registry.load("models")["Siren"].cls is Siren
    assert registry.load("models")["Siren"].dist == "stiffml-example"
    assert registry.load("datamodules")["ToggleSwitchDataModule"].cls is ToggleSwitchDataModule


# slow in the quick loop: stiffml's own tests/test_contract.py runs these classes too
@pytest.mark.slow
def test_siren_contract(tmp_path) -> None:
    check_model(Siren, tmp_path, datamodule=ToggleSwitchDataModule)


# slow in the quick loop: stiffml's own tests/test_contract.py runs these classes too
@pytest.mark.slow
def test_toggle_switch_contract(tmp_path) -> None:
    check_datamodule(ToggleSwitchDataModule, tmp_path)


def test_toggle_switch_jacobian_and_stiff_setting() -> None:
    s = ToggleSwitch(kappa=1000.0)
    y = np.array([1.3, 4.2])
    eps = 1e-6
    fd = np.stack([(s.rhs(0, y + eps * e) - s.rhs(0, y - eps * e)) / (2 * eps) for e in np.eye(2)], 1)
    np.testing.assert_allclose(s.jac(0, y), fd, rtol=1e-6)
    traj = s.solve(s.default_grid(dt=0.1))
    ratios = [s.stiffness_ratio(y) for y in traj.y[::20]]
    assert max(ratios) > 3e3  # stiff with kappa = 1000 ...
    classic = ToggleSwitch()
    assert max(classic.stiffness_ratio(y) for y in classic.solve(classic.default_grid(dt=0.1)).y[::20]) < 10
    with pytest.raises(ValueError, match="unknown parameter"):
        ToggleSwitch(alpha3=1.0)


def test_short_names_through_the_cli(tmp_path) -> None:
    from stiffml.main import main

    assert main(["fit", "--model", "Siren", "--data", "ToggleSwitchDataModule", "--data.dt", "0.1",
                 "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path / "a"),
                 "--trainer.enable_progress_bar", "false"]) == 0
    cfg = tmp_path / "siren.yaml"
    cfg.write_text("model:\n  class_path: Siren\n  init_args:\n    hidden: 16\n"
                   "data:\n  class_path: ToggleSwitchDataModule\n  init_args:\n    dt: 0.1\n    params: {kappa: 1000.0}\n"
                   "trainer:\n  max_epochs: 1\n  enable_progress_bar: false\n")
    assert main(["fit", "--config", str(cfg), "--trainer.default_root_dir", str(tmp_path / "b")]) == 0
