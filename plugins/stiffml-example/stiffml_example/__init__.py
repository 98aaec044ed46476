"""Example stiffml plugin: the worked example of the plugin guide (docs/plugins.md)."""

from stiffml_example.siren import Siren
from stiffml_example.toggle import ToggleSwitch, ToggleSwitchDataModule

__all__ = ["Siren", "ToggleSwitch", "ToggleSwitchDataModule"]
