"""Checks of a training command's arguments that need neither torch nor Lightning, so a missing or
broken config file is reported in a fraction of a second (``stiffml.main`` runs them before it
imports the CLI)."""

from __future__ import annotations

import re
from pathlib import Path

_NEGATIVE = re.compile(r"^-(\d|\.\d|inf\b|\.inf\b)")


def check_argv(argv: list[str]) -> None:
    """Mistakes jsonargparse reports confusingly or late: a negative value after a space (taken
    for an option), and a config file that is missing, not UTF-8 text, or not valid YAML."""
    for flag, value in zip(argv, argv[1:]):
        if flag.startswith("--") and "=" not in flag and _NEGATIVE.match(value):
            raise ValueError(f"{flag} {value}: a value starting with '-' is read as an option; "
                             f"write {flag}={value}")
        if flag in ("--config", "-c"):
            check_config_file(value)
    for arg in argv:
        if arg.startswith("--config="):
            check_config_file(arg.split("=", 1)[1])


def check_config_file(value: str) -> None:
    """One line naming the file when a config file cannot be read as YAML."""
    import yaml

    try:
        text = Path(value).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"config file {value} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except FileNotFoundError:
        raise ValueError(f"config file {value} does not exist") from None
    except OSError as err:
        raise ValueError(f"config file {value} cannot be read: {err.strerror or err}") from None
    try:
        yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or " ".join(str(err).split())[:120]
        raise ValueError(f"config file {value} is not valid YAML{where}: {problem}") from None
