"""`progdel demo` run as a user runs it: both outcomes, the served split, nothing left running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.promfixture import require_prometheus


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


@pytest.mark.e2e
def test_demo_promotes_one_release_and_rolls_back_the_other(tmp_path: Path) -> None:
    require_prometheus()
    data_dir = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "progdel", "-o", "ndjson", "demo", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    runs = {r["version"]: r for r in records if r["kind"] == "run"}
    assert runs["1.1.0"]["outcome"] == "promoted"
    assert runs["1.2.0"]["outcome"] == "rolled back"

    served = [r["served"] for r in records if r["kind"] == "tick" and r.get("served")]
    assert any(s["weight"] > 0 and s["canary"] > 0 for s in served), f"the canary got no traffic: {served}"
    # the split is judged where the sample is large enough (100 requests: 20 points is 4 standard
    # deviations of a fair split); how many intervals reach it depends on how busy the machine
    # is, not on progdel, so none may
    judged = [s for s in served if s["requests"] >= 100]
    for s in judged:
        assert abs(s["canary"] * 100 - s["weight"]) <= 20, f"served {s} far from the weight set"

    assert processes_mentioning(str(data_dir)) == [], "a process outlived the demo"
