"""The ``stiffml`` console script: a thin dispatcher over one module per command.

Nothing heavy is imported here: ``stiffml --help``, ``stiffml list`` and a mistyped command answer
without loading torch or Lightning. Every command's errors end as one ``stiffml: error:`` line and
a non-zero exit (set ``STIFFML_DEBUG=1`` to see the traceback instead).
"""

from __future__ import annotations

import importlib
import os
import sys

# name -> (module with a ``main(argv) -> int``, one line of help)
COMMANDS: dict[str, tuple[str, str]] = {
    "fit": ("stiffml.commands.cli", "train a model on a stiff system (LightningCLI; --config FILE.yaml)"),
    "validate": ("stiffml.commands.cli", "score a checkpoint on the validation split (--ckpt_path PATH|last)"),
    "test": ("stiffml.commands.cli", "score a checkpoint on the test split (--ckpt_path PATH|last)"),
    "predict": ("stiffml.commands.cli", "write a checkpoint's predictions and free run (--ckpt_path PATH|last)"),
    "list": ("stiffml.commands.listing", "list registered models and datamodules ([PATTERN])"),
    "benchmark": ("stiffml.commands.benchmark", "run suites of configs over seeds; CSV, report and figures"),
    "symbolic": ("stiffml.commands.symbolic", "extract the formula a trained KAN/HNN has learned (--ckpt PATH)"),
    "sbml-suite": ("stiffml.sbml.suite", "score SBML support on cases in the SBML Test Suite's format (FOLDER)"),
    "petab-fit": ("stiffml.petab.report", "calibrate a PEtab problem by multistart and write its report (PROBLEM)"),
    "petab-suite": ("stiffml.petab.suite", "score PEtab support on cases in the PEtab test suite's format (FOLDER)"),
}


def usage() -> str:
    """The top-level help text: every subcommand with one line each."""
    width = max(map(len, COMMANDS))
    lines = [
        "usage: stiffml COMMAND [ARGS]",
        "",
        "Train, compare and explain neural networks on stiff ODE systems.",
        "",
        "commands:",
        *(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()),
        "",
        "Run 'stiffml COMMAND --help' for a command's options.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``stiffml`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        from stiffml import __version__

        print(f"stiffml {__version__}")
        return 0
    name = args[0]
    if name not in COMMANDS:
        print(f"stiffml: error: unknown command {name!r}; valid: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        if COMMANDS[name][0] == "stiffml.commands.cli":  # before Lightning's import (seconds)
            from stiffml.commands.argv import check_argv

            check_argv(args[1:])
        module = importlib.import_module(COMMANDS[name][0])
        return int(module.main(args if module.__name__ == "stiffml.commands.cli" else args[1:]) or 0)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except KeyboardInterrupt as err:
        detail = str(err)
        print(f"stiffml: interrupted{': ' + detail if detail else ''}", file=sys.stderr)
        return 130
    except Exception as err:  # every command's failure is one line, not a traceback
        if os.environ.get("STIFFML_DEBUG"):
            raise
        from stiffml.errors import one_line

        print(f"stiffml: error: {one_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
