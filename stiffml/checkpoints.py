"""Checkpoints: validated loading, atomic saving, and finding the run to resume."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from stiffml.io import atomic_write, remove_stale_temps


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (missing, empty, corrupt, or not a checkpoint)."""


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a Lightning checkpoint on the CPU (tensors and plain data only, no code).

    Raises:
        CheckpointError: one line naming the file and what is wrong with it.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not p.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    size = p.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises a zoo of types for damaged files
        text = str(err)
        if "central directory" in text or "zip archive" in text or isinstance(err, EOFError):
            reason = "truncated or not a PyTorch file"
        elif "Weights only load failed" in text or "Unpickl" in type(err).__name__:
            reason = "its contents are not a plain checkpoint (tensors, numbers, strings)"
        else:
            reason = " ".join(text.split())[:120]
        raise CheckpointError(f"{path} ({size} bytes) is not a readable checkpoint: {reason}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is a PyTorch file but not a Lightning checkpoint (no 'state_dict')")
    return ckpt


def checkpoint_model_class(ckpt: dict[str, Any]) -> str | None:
    """The model class path a stiffml checkpoint records (None for foreign checkpoints)."""
    info = ckpt.get("stiffml") or {}
    return info.get("model") or (ckpt.get("hyper_parameters") or {}).get("_class_path")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, but written to a temporary file beside the target and
    renamed into place. Lightning's own writer stages the file in ``$TMPDIR`` through fsspec, so
    a kill during a save leaves a temporary file there for ever."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        remove_stale_temps(Path(path).parent)
        atomic_write(path, lambda f: torch.save(checkpoint, f))


def _version_number(folder: Path) -> int:
    match = re.fullmatch(r"version_(\d+)", folder.name)
    return int(match.group(1)) if match else -1


def find_resumable(root: str | os.PathLike, name: str = "lightning_logs") -> tuple[Path, int]:
    """The newest ``last.ckpt`` under ``root/name/version_N/checkpoints`` and its version N.

    Raises:
        CheckpointError: when no run under ``root`` has a last checkpoint.
    """
    base = Path(root) / name
    versions = sorted((p for p in base.glob("version_*") if _version_number(p) >= 0), key=_version_number)
    for folder in reversed(versions):
        last = folder / "checkpoints" / "last.ckpt"
        if last.is_file():
            return last, _version_number(folder)
    raise CheckpointError(f"--ckpt_path last: no run under {base} has a checkpoints/last.ckpt to resume")
