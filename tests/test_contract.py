"""The plugin contract, run over every registered model and datamodule (plugins included)."""

from __future__ import annotations

import pytest

from stiffml import registry
from stiffml.testing import check_datamodule, check_model


@pytest.mark.parametrize("name", sorted(registry.load("models")))
def test_model_contract(name: str, tmp_path) -> None:
    check_model(registry.get_model(name), tmp_path)


@pytest.mark.parametrize("name", sorted(registry.load("datamodules")))
def test_datamodule_contract(name: str, tmp_path) -> None:
    check_datamodule(registry.get_datamodule(name), tmp_path)
