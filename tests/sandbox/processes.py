"""A sandbox in a process of its own, for tests that kill it or measure it."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from progdel.sandbox import daemon
from progdel.sandbox.kubeconfig import SandboxAccess


def serve(
    data: Path, port: int, file_size_limit: int | None = None
) -> tuple[subprocess.Popen[bytes], SandboxAccess]:
    """Start ``python -m progdel.sandbox`` on ``data`` and ``port``; return it and how to reach it
    once it answers (from the kubeconfig it writes).

    ``file_size_limit``: no file may grow past this many bytes (``RLIMIT_FSIZE``), so that the
    process sees a write fail as on a full disk (``EFBIG`` instead of ``SIGXFSZ``)."""

    def limit_files() -> None:
        if file_size_limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    proc = subprocess.Popen(
        [sys.executable, "-m", "progdel.sandbox", "--port", str(port), "--data-dir", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=limit_files,
    )
    deadline = time.monotonic() + 60
    while True:
        api = daemon.access(data)
        if api is not None and daemon.ready(api, timeout=2):
            return proc, api
        assert proc.poll() is None and time.monotonic() < deadline, "the sandbox did not start"
        time.sleep(0.05)


def peak_rss(pid: int) -> int:
    """The most memory the process has held at once (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")
