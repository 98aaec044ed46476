"""Model families."""

from stiffml.models.base import StiffModel
from stiffml.models.pointwise import FCNN, LiftedConvNet, MixNet, Res2Net, ResNet
from stiffml.models.odenet import ODENet
from stiffml.models.physics import HNN, KAN, KANLNN, LNN, NODE, DissipativeHNN, PhysicsModel
from stiffml.models.temporal import GRU, LSTM, RNN, AttenLSTM, LastStateReadout, StackedLSTM, WindowModel

__all__ = [
    "HNN", "KAN", "KANLNN", "LNN", "NODE", "DissipativeHNN", "PhysicsModel",
    "FCNN", "GRU", "LSTM", "RNN", "AttenLSTM", "LastStateReadout", "LiftedConvNet", "MixNet", "ODENet", "Res2Net", "ResNet",
    "StackedLSTM", "StiffModel", "WindowModel",
]
