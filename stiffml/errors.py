"""One-line error messages for the command line (no torch or Lightning import here)."""

from __future__ import annotations

import argparse
import re
import sys
from typing import NoReturn

_NOISE = (
    "Does not validate against any of the Union subtypes",
    "Subtypes:",
    "Errors:",
    "Expected a <class 'NoneType'>",
    "Given value type:",
    "Expected a path but",
)
# Errors whose message is written for users; anything else is prefixed with its type name.
_PLAIN = {"ValueError", "TypeError", "RuntimeError", "OSError", "FileNotFoundError", "KeyError",
          "MisconfigurationException", "SolveError", "DivergenceError", "CheckpointError",
          "PermissionError", "UnicodeDecodeError", "NotADirectoryError", "IsADirectoryError",
          "PEtabError", "PEtabUnsupported", "SciMLError", "NetworkFileError", "SBMLError"}


def condense(message: str) -> str:
    """Turn jsonargparse's nested multi-line messages into one line naming what is wrong."""
    key = re.search(r'Parser key "(\w+)"', message)
    unknown = re.search(r"Expected a dot import path string: (\S+)", message) or re.search(
        r"Import path (\S+) does not correspond", message
    )
    if key and unknown and key.group(1) in ("model", "data"):
        from stiffml import registry

        kind = "models" if key.group(1) == "model" else "datamodules"
        return f"unknown {kind[:-1]} {unknown.group(1)!r}; valid: {sorted(registry.load(kind))}"
    choice = _choices(message) or _typed(message)
    if choice:
        return choice
    inner = re.search(r"Errors:\s*- (.*?)\s*- Expected a <class 'NoneType'>", message, re.S)
    if inner and "Problem with given class_path" not in inner.group(1):
        return " ".join(inner.group(1).split())
    lines = [ln.strip(" -") for ln in message.splitlines()]
    kept = [ln for ln in lines if ln and not ln.startswith(_NOISE)]
    text = "; ".join(kept).replace(":;", ":")
    text = re.sub(r"Given value: NestedArg\(key='(\w+)', val='([^']*)'\)", r"(given \1=\2)", text)
    return text if len(text) <= 400 else text[:397] + "..."


def _choices(message: str) -> str | None:
    """``--KEY: VALUE is not one of [...]`` when every alternative was a fixed set of values."""
    key = re.search(r'Parser key "([\w.]+)"', message)
    given = re.search(r"^\s*Given value: (.*)$", message, re.M)
    errors = re.findall(r"^\s*- (Expected .*)$", message, re.M)
    literals = [e for e in errors if e.startswith("Expected a typing.Literal[")]
    if not (key and given and literals) or len(literals) + sum("NoneType" in e for e in errors) != len(errors):
        return None
    values: list[str] = []
    for text in literals:
        for item in text.removeprefix("Expected a typing.Literal[").removesuffix("]").split(", "):
            item = item.strip("'\"")
            if item not in values:
                values.append(item)
    return f"--{key.group(1)}: {given.group(1)!r} is not one of {', '.join(values)}"


_ARTICLE = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string", "dict": "a mapping"}


def _typed(message: str) -> str | None:
    """``KEY: VALUE is not an integer or ...`` for a value of the wrong type (jsonargparse says
    only "Expected a <class 'int'>", without the key)."""
    key = re.search(r'Parser key "([\w.]+)"', message)
    given = re.search(r"(?:^\s*Given value|Got value): (.*)$", message, re.M)
    expected = re.findall(r"Expected a (<class '\w+'>|typing\.Literal\[.*?\])(?:\.|$)", message, re.M)
    if not (key and given and expected):
        return None
    wanted: list[str] = []
    values: list[str] = []
    for item in expected:
        if item.startswith("<class"):
            name = item[len("<class '"):-2]
            if name != "NoneType":
                wanted.append(_ARTICLE.get(name, f"a {name}"))
        else:
            values += [v.strip("'\"") for v in item.removeprefix("typing.Literal[").removesuffix("]").split(", ")]
    if values:
        wanted.append("one of " + ", ".join(dict.fromkeys(values)))
    if not wanted:
        return None
    name = f"--{key.group(1)}" if "." in key.group(1) else key.group(1)  # nested keys come without their group
    return f"{name}: {given.group(1).strip()!r} is not {' or '.join(wanted)}"


MAX_ERROR_CHARS = 600


def one_line(err: BaseException) -> str:
    """``err`` as one line for ``stiffml: error:``."""
    text = str(err) if not isinstance(err, KeyError) else str(err.args[0] if err.args else err)
    text = " ".join((condense(text) if "\n" in text else text).split())
    if len(text) > MAX_ERROR_CHARS:  # e.g. a message quoting a 200,000-character model id
        text = f"{text[:MAX_ERROR_CHARS]}… ({len(text):,} characters)"
    name = type(err).__name__
    return text if name in _PLAIN else f"{name}: {text} (set STIFFML_DEBUG=1 for the traceback)"


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse with the CLI's error style: one ``stiffml: error:`` line naming the command, exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"stiffml: error: {self.prog.removeprefix('stiffml ')}: {message}\n")
        sys.exit(2)
