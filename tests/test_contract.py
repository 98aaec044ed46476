"""The plugin contract, run over every registered model and datamodule (plugins included).

Every class runs the float64 contract. The float32 contract runs for every class in the full
suite and, in the quick loop (``-m "not slow"``), for one model of each built-in family and one
datamodule; pykan models are slow even at a tiny size and run in the full suite only.
"""

from __future__ import annotations

import pytest

from stiffml import registry
from stiffml.testing import check_datamodule, check_model

MODELS = sorted(registry.load("models"))
DATAMODULES = sorted(registry.load("datamodules"))
SLOW = {"KANLNN"}
# datamodules whose reference solve over the whole span takes seconds even on a short grid
SLOW_DATA = {"VdPDataModule", "OregoDataModule", "RobertsonEnsembleDataModule", "PolluDataModule", "PolluEnsembleDataModule",
             "VdPLienardDataModule"}
FLOAT32_SAMPLE = {"FCNN", "AttenLSTM", "ODENet", "HNN", "BZDataModule"}


def _params(names: list[str], slow: set[str]) -> list:
    return [pytest.param(n, marks=pytest.mark.slow) if n in slow else n for n in names]


@pytest.mark.parametrize("name", _params(MODELS, SLOW))
def test_model_contract(name: str, tmp_path) -> None:
    check_model(registry.get_model(name), tmp_path, precisions=("64-true",))


@pytest.mark.parametrize("name", _params(MODELS, set(MODELS) - FLOAT32_SAMPLE))
def test_model_contract_float32(name: str, tmp_path) -> None:
    check_model(registry.get_model(name), tmp_path, precisions=("32-true",))


@pytest.mark.parametrize("name", _params(DATAMODULES, SLOW_DATA))
def test_datamodule_contract(name: str, tmp_path) -> None:
    check_datamodule(registry.get_datamodule(name), tmp_path, precisions=("64-true",))


@pytest.mark.parametrize("name", _params(DATAMODULES, set(DATAMODULES) - FLOAT32_SAMPLE))
def test_datamodule_contract_float32(name: str, tmp_path) -> None:
    check_datamodule(registry.get_datamodule(name), tmp_path, precisions=("32-true",))
