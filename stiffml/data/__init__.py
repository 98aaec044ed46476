"""Data pipeline: cached reference trajectories, sample representations, fast batching."""

from stiffml.data.base import Built, DataSpec, StiffDataModule, SystemDataModule, precision_dtype
from stiffml.data.cache import cached_ensemble, cached_solve, default_cache_dir
from stiffml.data.ensemble import EnsembleDataModule
from stiffml.data.loader import BatchLoader
from stiffml.data.modules import (
    BZDataModule,
    DuffingDataModule,
    HIRESDataModule,
    OregoDataModule,
    PolluDataModule,
    RobertsonDataModule,
    PolluEnsembleDataModule,
    RobertsonEnsembleDataModule,
    VdPDataModule,
    VdPLienardDataModule,
)
from stiffml.data.samples import REPRESENTATIONS, SampleSet
from stiffml.data.scaling import NORMALIZATIONS, Scaler

__all__ = [
    "BZDataModule", "BatchLoader", "Built", "DataSpec", "SystemDataModule", "DuffingDataModule", "PolluEnsembleDataModule", "RobertsonEnsembleDataModule", "EnsembleDataModule", "HIRESDataModule", "NORMALIZATIONS",
    "OregoDataModule", "PolluDataModule", "REPRESENTATIONS", "RobertsonDataModule", "SampleSet", "Scaler",
    "StiffDataModule", "VdPDataModule", "VdPLienardDataModule", "cached_ensemble", "cached_solve", "default_cache_dir", "precision_dtype",
]
