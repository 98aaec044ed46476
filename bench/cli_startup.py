"""Start-up time of the ``stiffml`` command: help, list, a mistyped command, and ``fit --help``.

Each command runs as a fresh process ``--repeats`` times; prints the best and median wall times.
``stiffml list`` is timed warm (its registry table cached, as after any first call) and cold
(``--refresh``: every model imported). ``fit --help`` needs Lightning and is shown for scale.

    python bench/cli_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "stiffml --help": ["--help"],
    "stiffml frobnicate (an argument error)": ["frobnicate"],
    "stiffml list (cached)": ["list"],
    "stiffml list --refresh (cold)": ["list", "--refresh"],
    "stiffml fit --help (loads Lightning)": ["fit", "--help"],
}


def timed(args: list[str]) -> float:
    exe = Path(sys.executable).parent / "stiffml"
    start = time.perf_counter()
    subprocess.run([str(exe), *args], capture_output=True, check=False)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    timed(["list"])  # fill the registry cache once
    for label, args in COMMANDS.items():
        times = [timed(args) for _ in range(a.repeats)]
        print(f"{label:<40} best {min(times):6.3f}s  median {statistics.median(times):6.3f}s")


if __name__ == "__main__":
    main()
