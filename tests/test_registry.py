"""The plugin registry: entry points, broken plugins, name clashes, listing."""

from __future__ import annotations

import sys
import types
from importlib.metadata import EntryPoint

import pytest

from stiffml import registry
from stiffml.models import FCNN, StiffModel
from stiffml.registry import PluginWarning, RegistryError


def test_builtins_are_registered_through_entry_points() -> None:
    models = registry.load("models")
    assert {"FCNN", "ResNet", "Res2Net", "MixNet"} <= set(models)
    assert models["FCNN"].cls is FCNN and models["FCNN"].dist == "stiffml"
    assert {"BZDataModule", "VdPDataModule", "RobertsonDataModule", "HIRESDataModule",
            "OregoDataModule", "DuffingDataModule"} <= set(registry.load("datamodules"))
    assert set(registry.models("res*")) == {"ResNet", "Res2Net"}


@pytest.fixture
def fake_plugin_module():
    mod = types.ModuleType("fake_stiffml_plugin")

    class GoodNet(FCNN):
        pass

    mod.GoodNet, mod.NotAModel = GoodNet, dict
    mod.Clash = type("GoodNet", (FCNN,), {})  # a different class with the same name
    sys.modules["fake_stiffml_plugin"] = mod
    yield mod
    del sys.modules["fake_stiffml_plugin"]


def _ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group="stiffml.models")


def test_broken_plugins_warn_and_the_rest_keeps_working(fake_plugin_module) -> None:
    eps = [
        _ep("FCNN", "stiffml.models.pointwise:FCNN"),
        _ep("Broken", "no_such_module_xyz:Broken"),
        _ep("NotAModel", "fake_stiffml_plugin:NotAModel"),
        _ep("Renamed", "fake_stiffml_plugin:GoodNet"),
        _ep("GoodNet", "fake_stiffml_plugin:GoodNet"),
    ]
    with pytest.warns(PluginWarning) as record:
        found = registry.load("models", eps=eps)
    assert set(found) == {"FCNN", "GoodNet"}
    messages = " | ".join(str(w.message) for w in record)
    assert "'Broken'" in messages and "ModuleNotFoundError" in messages
    assert "'NotAModel'" in messages and "not a subclass" in messages
    assert "'Renamed'" in messages and "must equal the class name 'GoodNet'" in messages


def test_two_classes_under_one_name_is_an_error(fake_plugin_module) -> None:
    eps = [_ep("GoodNet", "fake_stiffml_plugin:GoodNet"), _ep("GoodNet", "fake_stiffml_plugin:Clash")]
    with pytest.raises(RegistryError, match="two models are registered as 'GoodNet'"):
        registry.load("models", eps=eps)


def test_unknown_names_list_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'Nope'; valid: \[.*'FCNN'"):
        registry.get_model("Nope")
    assert issubclass(registry.get_model("ResNet"), StiffModel)


def test_list_command_prints_models_and_datamodules(cli, capsys) -> None:
    assert cli("list") == 0
    out = capsys.readouterr().out
    for word in ("FCNN", "non-temporal", "pointwise", "456,603", "BZDataModule", "x, y, z", "VdPDataModule"):
        assert word in out
    assert cli("list", "*lstm*") == 0
    out = capsys.readouterr().out
    assert "AttenLSTM" in out and "FCNN" not in out


def test_list_output_for_programs_is_whole_and_json(cli, capsys) -> None:
    import json

    # captured (not a terminal): full names, never "RobertsonDataMod…"
    assert cli("list", "Robertson*") == 0
    out = capsys.readouterr().out
    assert "RobertsonEnsembleDataModule" in out and "…" not in out
    assert cli("list", "--json") == 0
    listing = json.loads(capsys.readouterr().out)
    assert set(listing) == {"models", "datamodules", "solvers", "warnings"}
    fcnn = next(m for m in listing["models"] if m["name"] == "FCNN")
    assert fcnn == {"name": "FCNN", "family": "non-temporal", "consumes": "pointwise", "params": "456,603",
                    "distribution": "stiffml"}
    radau = next(s for s in listing["solvers"] if s["name"] == "Radau")
    assert radau == {"name": "Radau", "backend": "scipy", "capabilities": ["implicit", "adaptive", "events"]}
    assert cli("list", "rk4", "--json") == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["models"] == [] and [s["name"] for s in listing["solvers"]] == ["rk4"]
