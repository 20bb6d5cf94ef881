"""``progdel sandbox up --detach`` / ``status`` / ``down`` as a user runs them."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

PROGDEL = [sys.executable, "-c", "from progdel.cli.main import run; run()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def progdel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PROGDEL, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.e2e
def test_up_status_down(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "sb"
    up = progdel("sandbox", "up", "--detach", "--port", str(port), "--data-dir", str(data))
    assert up.returncode == 0, up.stderr
    try:
        assert f"export KUBECONFIG={data / 'kubeconfig'}" in up.stdout
        st = progdel("-o", "json", "sandbox", "status", "--data-dir", str(data))
        assert st.returncode == 0, st.stderr
        info = json.loads(st.stdout)
        assert info["running"] is True and info["url"] == f"https://127.0.0.1:{port}"
        assert info["objects"]["namespaces"] == 4
        assert info["objects"]["customresourcedefinitions.apiextensions.k8s.io"] >= 7
        busy = progdel("sandbox", "up", "--port", str(port), "--data-dir", str(tmp_path / "other"))
        assert busy.returncode == 2
        assert f"port {port} is already in use" in busy.stderr and "--port" in busy.stderr
    finally:
        down = progdel("sandbox", "down", "--data-dir", str(data))
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    st = json.loads(progdel("-o", "json", "sandbox", "status", "--data-dir", str(data)).stdout)
    assert st["running"] is False
