"""Checkpoints: validated loading, atomic saving, and finding the run to resume."""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from stiffml.io import atomic_write, remove_stale_temps, write_failure


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (missing, empty, corrupt, or not a checkpoint)."""


class UnverifiedCheckpointWarning(UserWarning):
    """A checkpoint without stiffml's content digest (written by another tool) was loaded."""


DIGEST_KEY = "stiffml_digest"
DIGESTED = ("state_dict", "optimizer_states", "stiffml")


def _feed(h: Any, obj: Any) -> None:
    """Hash a checkpoint entry's content: tensors by dtype, shape and bytes; containers in order
    (dicts by sorted key); everything else by its repr."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, dict):
        h.update(b"{")
        for key in sorted(obj, key=repr):
            h.update(repr(key).encode())
            _feed(h, obj[key])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[" if isinstance(obj, list) else b"(")
        for item in obj:
            _feed(h, item)
        h.update(b"]")
    else:
        h.update(repr(obj).encode())


def content_digest(checkpoint: dict[str, Any]) -> dict[str, str]:
    """SHA-256 of the model weights, the optimiser state and stiffml's own entry of a checkpoint.

    torch's file format has no integrity check of its own (a flipped byte inside a tensor loads
    as a different number), so the digest is written with the checkpoint and checked on load.
    """
    out = {}
    for key in DIGESTED:
        if key in checkpoint:
            h = hashlib.sha256()
            _feed(h, checkpoint[key])
            out[key] = h.hexdigest()
    return out


def verify_digest(checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    """Refuse a checkpoint whose content does not match its recorded digest; warn once where
    there is none."""
    recorded = checkpoint.get(DIGEST_KEY)
    if recorded is None:
        warnings.warn(f"checkpoint {path} has no stiffml content digest (written by another tool?); "
                      "loading it unverified", UnverifiedCheckpointWarning, stacklevel=3)
        return
    actual = content_digest(checkpoint)
    names = {"state_dict": "model weights", "optimizer_states": "optimiser state", "stiffml": "stiffml's run state"}
    bad = [names[k] for k in DIGESTED if recorded.get(k) != actual.get(k)]
    if bad:
        raise CheckpointError(f"checkpoint {path} is damaged: the digest recorded when it was written does not match "
                              f"its {' and '.join(bad)}; use another checkpoint (e.g. best-*.ckpt)")


def load_checkpoint(path: str | os.PathLike, verify: bool = True) -> dict[str, Any]:
    """Load a Lightning checkpoint on the CPU (tensors and plain data only, no code), checking its
    content digest (:func:`verify_digest`) unless ``verify`` is false.

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
    if verify:
        verify_digest(ckpt, path)
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
        checkpoint = {**checkpoint, DIGEST_KEY: content_digest(checkpoint)}
        try:
            atomic_write(path, lambda f: torch.save(checkpoint, f))
        except (OSError, RuntimeError) as err:
            # torch.save on a full disk raises a RuntimeError of its zip writer; other runtime
            # errors are not about the disk and go on as they are
            if isinstance(err, RuntimeError) and "inline_container" not in str(err) and "unexpected pos" not in str(err):
                raise
            raise write_failure(err, "the checkpoint", path, "the checkpoints written before it are intact") from None

    def load_checkpoint(self, path: _PATH, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Lightning's load, then the content digest checked (:func:`verify_digest`)."""
        checkpoint = super().load_checkpoint(path, *args, **kwargs)
        verify_digest(checkpoint, path)
        return checkpoint


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
