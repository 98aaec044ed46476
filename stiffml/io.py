"""Atomic file writes and the clean-up of what a killed writer left behind.

Every file stiffml writes (trajectory caches, prediction files, benchmark records and reports,
checkpoints) goes through :func:`atomic_write`: the bytes go to a hidden temporary file in the
target's folder, which is renamed over the target only once complete. A process killed mid-write
leaves only that temporary file; its name carries the writer's PID, so :func:`remove_stale_temps`
can later delete exactly the temporaries whose writer is gone, never a live writer's (benchmark
workers write into shared folders side by side).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

_TEMP = re.compile(r"^\..+\.pid(\d+)\.[^.]+\.tmp$")


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[IO[bytes]], None]) -> Path:
    """Write ``data`` (bytes, text, or a function that writes to a binary file) to ``path``.

    The folder is created if needed; the file appears complete or not at all (mode 0644).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.pid{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_failure(err: BaseException, what: str, path: str | os.PathLike, hint: str = "") -> OSError:
    """A one-line OSError for a file that could not be written, naming what and where; a full disk
    says so with the space left (torch.save on a full disk raises only "[enforce fail at
    inline_container.cc] unexpected pos", a RuntimeError)."""
    path = Path(path)
    folder = next((p for p in [path.parent, *path.parents] if p.exists()), path.parent)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    full = getattr(err, "errno", None) == errno.ENOSPC or "unexpected pos" in str(err) or "inline_container" in str(err)
    if full:
        left = f" ({free / 2**20:.1f} MiB left)" if free is not None else ""
        reason = f"no space left on the device of {folder}{left}"
    else:
        reason = getattr(err, "strerror", None) or " ".join(str(err).split())
    return OSError(f"cannot write {what} {path}: {reason}" + (f"; {hint}" if hint else ""))


def default_cache_dir() -> Path:
    """``$STIFFML_CACHE_DIR``, else ``$XDG_CACHE_HOME/stiffml``, else ``~/.cache/stiffml``."""
    env = os.environ.get("STIFFML_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "stiffml"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of :func:`atomic_write` in ``folder`` whose writer has died."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match and not _alive(int(match.group(1))):
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed
