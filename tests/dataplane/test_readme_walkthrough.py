"""The README's Canaries walkthrough, run as written on ``progdel sandbox up --mesh
--allow-commands``: every command of its first shell block, from the repository's root, with the
real ``kubectl`` and the installed ``progdel``. The sandbox itself is the shared one (the block's
``sandbox up`` and ``export`` lines are what the fixture already did)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import MeshSandbox

ROOT = Path(__file__).resolve().parents[2]
STARTS_THE_SANDBOX = ("progdel sandbox up", "export KUBECONFIG=")


def walkthrough() -> list[str]:
    section = (ROOT / "README.md").read_text().split("\n## Canaries\n", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert block is not None
    return [line.split("  #", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


@pytest.mark.e2e
@pytest.mark.timeout(900)
@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("kubectl", "hey", "curl")),
    reason="needs kubectl, hey and curl (scripts/bootstrap installs them)",
)
def test_the_readme_canary_walkthrough_reaches_a_verdict(mesh_sandbox: MeshSandbox, tmp_path: Path) -> None:
    commands = walkthrough()
    assert [c for c in commands if c.startswith(STARTS_THE_SANDBOX)], "the walkthrough starts the sandbox"
    assert commands[-1].startswith("progdel -n test canary watch podinfo")
    env = {
        **os.environ,
        "KUBECONFIG": str(mesh_sandbox.server.write_kubeconfig(tmp_path / "kubeconfig")),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # its progdel
    }
    assert shutil.which("progdel", path=env["PATH"]), "progdel is installed beside this Python"
    mesh_sandbox.wait_no_traffic("test")
    try:
        for command in commands:
            if command.startswith(STARTS_THE_SANDBOX):
                continue
            out = subprocess.run(
                ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
            )
            assert out.returncode == 0, f"{command}: exit {out.returncode}\n{out.stdout[-3000:]}{out.stderr}"
        assert "result  promoted" in out.stdout, out.stdout[-3000:]
        assert "Pre-rollout check acceptance-test passed" in out.stdout
    finally:
        subprocess.run(["kubectl", "delete", "namespace", "test", "--wait=true"], env=env, timeout=120)
