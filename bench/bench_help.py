"""Wall time of ``progdel --help`` beside ``python -c "import typer"``.

Median of 10 runs each; the target ratio is <= 1.5.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 10
BIN = Path(sys.executable).parent


def median_ms(cmd: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    progdel = str(BIN / "progdel")
    median_ms([progdel, "--help"])  # warm the file cache
    help_ms = median_ms([progdel, "--help"])
    typer_ms = median_ms([sys.executable, "-c", "import typer"])
    print(f"progdel --help: {help_ms:.0f} ms (median of {RUNS})")
    print(f'python -c "import typer": {typer_ms:.0f} ms (median of {RUNS})')
    print(f"ratio: {help_ms / typer_ms:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
