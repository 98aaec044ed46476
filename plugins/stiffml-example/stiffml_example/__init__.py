"""Example stiffml plugin: the worked example of the plugin guide (README, "Writing a plugin")."""

from stiffml_example.siren import Siren
from stiffml_example.toggle import ToggleSwitch, ToggleSwitchDataModule

__all__ = ["Siren", "ToggleSwitch", "ToggleSwitchDataModule"]
