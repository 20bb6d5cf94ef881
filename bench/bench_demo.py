"""The demo's total time, and each release's canary run, as a user runs it.

.venv/bin/python bench/bench_demo.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="progdel-bench-demo-")) / "demo"
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "progdel", "-o", "ndjson", "demo", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    total = time.perf_counter() - started
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"the demo failed with exit {proc.returncode}")
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    for run in (r for r in records if r["kind"] == "run"):
        print(f"release {run['version']}: {run['outcome']} in {run['seconds']:.1f} s")
    print(f"demo total: {total:.1f} s (target: about three minutes or less)")


if __name__ == "__main__":
    main()
