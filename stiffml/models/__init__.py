"""Model families."""

from stiffml.models.base import StiffModel
from stiffml.models.pointwise import FCNN, LiftedConvNet, MixNet, Res2Net, ResNet

__all__ = ["FCNN", "LiftedConvNet", "MixNet", "Res2Net", "ResNet", "StiffModel"]
