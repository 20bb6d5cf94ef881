"""Flagger's load tester in the sandbox: its webhook API, run as a local process.

A replica of ``ghcr.io/fluxcd/flagger-loadtester:TAG`` in ``progdel sandbox up --mesh`` is one
process of this module. It answers as Flagger's load tester does (``pkg/loadtester``):

- ``POST /`` (any path not below) with a Canary webhook payload (``name``, ``namespace``,
  ``metadata``): ``metadata.type`` ``cmd`` (the default) starts ``sh -c CMD`` in the
  background and answers 202 at once; the same command for the same canary is not started
  again while it runs. ``type: bash`` runs ``bash -c CMD``, waits, and answers 200 (with
  the output when ``returnCmdOutput: "true"``) or 500 with ``command CMD failed: OUTPUT:
  ERROR``. No metadata: 400 ``metadata not found in payload``; no ``cmd``: 400; types the
  sandbox cannot run (``helm``, ``helmv3``, ``kubectl``, ``concord``, ``ngrinder``) and
  unknown ones: 400 with the reason.
- ``/gate/check`` 200 ``Approved`` once ``/gate/open`` was called for the canary
  (``name.namespace``), else 403 ``Forbidden``; ``/gate/close``; ``/rollback/check``,
  ``/rollback/open``, ``/rollback/close`` likewise (key ``rollback.name.namespace``);
  ``/gate/approve`` always 200, ``/gate/halt`` always 403. Gates live in memory.
- ``/healthz`` 200 ``OK``; ``/metrics``.
- Flags as in the image's command: ``-port`` (9090), ``-timeout`` (1h: a command's time
  limit), ``-namespace-regexp`` (only canaries in matching namespaces); log flags ignored.

Running commands taken from Canary specs on the user's machine is opt-in: unless the
sandbox was started with ``--allow-commands`` (``PROGDEL_ALLOW_COMMANDS=1``), ``cmd`` and
``bash`` tasks are refused with 403 and a message saying how to allow them. Allowed
commands run in a working directory of their own inside the sandbox's data directory
(``PROGDEL_WORKDIR``, also ``HOME`` and ``TMPDIR``), with a bounded environment (``PATH``,
the container's ``env``, the proxy settings below; nothing else of the user's), the
``-timeout`` limit (the whole process group is killed) and at most 1 MiB of output kept.

Commands reach in-cluster names (``http://podinfo-canary.test:9898/``) through the sandbox
mesh: ``http_proxy``/``HTTP_PROXY`` point at the mesh listener (``PROGDEL_MESH_PROXY``), which
``curl``, ``wget`` and most HTTP clients honour; ``hey`` ignores them, so a ``hey`` first on
the commands' ``PATH`` runs the real one with ``-x`` set to the mesh.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from progdel.sandbox.httpapp import Request, Response, die_on_parent_exit, listen_map, serve

DEFAULT_PORT = 9090
DEFAULT_TIMEOUT = 3600.0
MAX_OUTPUT = 1024 * 1024
UNSUPPORTED = ("helm", "helmv3", "kubectl", "concord", "ngrinder")
REFUSAL = (
    "commands are disabled: this sandbox runs the commands of Canary webhooks only when it is "
    "started with `progdel sandbox up --mesh --allow-commands`"
)
_TEXT = "text/plain; charset=utf-8"

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(text: str) -> float:
    """Seconds in a Go duration (``1h``, ``1m30s``, ``500ms``); ValueError when it is not one."""
    text = text.strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r}")
    return total


def go_flags(argv: Sequence[str]) -> dict[str, str]:
    """Go ``flag`` package syntax (``-port=8080``, ``--port 8080``, ``-flag``) as a dict."""
    args = list(argv)
    while args and not args[0].startswith("-"):
        args.pop(0)
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            break  # Go stops parsing at the first non-flag
        name, sep, value = arg.lstrip("-").partition("=")
        if not sep and i < len(args) and not args[i].startswith("-") and name not in ("zap-replace-globals",):
            value = args[i]
            i += 1
        elif not sep:
            value = "true"
        out[name] = value
    return out


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    die_on_parent_exit(signal.SIGKILL)


class Payload:
    """Flagger's ``CanaryWebhookPayload``, decoded as strictly as Go's ``json.Unmarshal`` does."""

    def __init__(self, body: bytes) -> None:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("payload is not an object")
        self.name = data.get("name") or ""
        self.namespace = data.get("namespace") or ""
        metadata = data.get("metadata") or {}
        if not isinstance(self.name, str) or not isinstance(self.namespace, str):
            raise ValueError("name and namespace must be strings")
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise ValueError("metadata must map strings to strings")
        self.metadata: dict[str, str] = metadata

    @property
    def canary(self) -> str:
        return f"{self.name}.{self.namespace}"


class LoadTester:
    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        namespace_regexp: str = "",
        allow_commands: bool = False,
        work_dir: Path | None = None,
        mesh_proxy: str | None = None,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.timeout = timeout
        self.namespaces = re.compile(namespace_regexp) if namespace_regexp else None
        self.allow_commands = allow_commands
        self.work_dir = work_dir
        self.mesh_proxy = mesh_proxy
        self.base_env = dict(base_env or {})
        self.gates: dict[str, bool] = {}
        self.running: dict[str, asyncio.Task[None]] = {}
        self.total_execs = 0
        self.groups: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        if allow_commands and work_dir is not None:
            work_dir.mkdir(parents=True, exist_ok=True)
            (work_dir / "tmp").mkdir(exist_ok=True)
            self._write_hey_shim()

    # HTTP -------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        path = request.path
        if path == "/healthz":
            return Response(200, b"OK", _TEXT)
        if path == "/metrics":
            body = (
                "# HELP flagger_loadtester_execs_total Commands started.\n"
                "# TYPE flagger_loadtester_execs_total counter\n"
                f"flagger_loadtester_execs_total {self.total_execs}\n"
            )
            return Response(200, body.encode(), "text/plain; version=0.0.4; charset=utf-8")
        if path == "/gate/approve":
            return Response(200, b"OK", _TEXT)
        if path == "/gate/halt":
            return Response(403, b"Forbidden", _TEXT)
        gates = {
            "/gate/check": ("", "check"),
            "/gate/open": ("", "open"),
            "/gate/close": ("", "close"),
            "/rollback/check": ("rollback.", "check"),
            "/rollback/open": ("rollback.", "open"),
            "/rollback/close": ("rollback.", "close"),
        }
        try:
            payload = Payload(request.body)
        except ValueError:
            return Response(400, b"", "")
        if self.namespaces is not None and not self.namespaces.search(payload.namespace):
            return Response(403, b"Forbidden", _TEXT)
        if path in gates:
            prefix, action = gates[path]
            key = prefix + payload.canary
            if action == "open":
                self.gates[key] = True
                return Response(202, b"", "")
            if action == "close":
                self.gates[key] = False
                return Response(202, b"", "")
            if self.gates.setdefault(key, False):
                return Response(200, b"Approved", _TEXT)
            return Response(403, b"Forbidden", _TEXT)
        return await self.new_task(payload)

    async def new_task(self, payload: Payload) -> Response:
        metadata = payload.metadata
        if not metadata:
            return Response(400, b"metadata not found in payload", _TEXT)
        kind = metadata.get("type", "cmd")
        if kind in UNSUPPORTED:
            reason = f"task type {kind} is not supported by the sandbox load tester (only cmd and bash are)"
            return Response(400, reason.encode(), _TEXT)
        if kind not in ("cmd", "bash"):
            return Response(400, f"unknown task type {kind}".encode(), _TEXT)
        command = metadata.get("cmd")
        if command is None:
            return Response(400, b"cmd not found in metadata", _TEXT)
        if not self.allow_commands:
            self.log(payload.canary, f"refused {kind} command {command!r}: commands are disabled")
            return Response(403, REFUSAL.encode(), _TEXT)
        if kind == "bash":
            ok, out, error = await self.run(["bash", "-c", command], payload.canary, command)
            if not ok:
                return Response(
                    500, f"command {command} failed: {out.decode(errors='replace')}: {error}".encode(), _TEXT
                )
            self.log(payload.canary, f"command finished {command}")
            return Response(200, out if _true(metadata.get("returnCmdOutput")) else b"", _TEXT)
        key = hashlib.sha256(f"{payload.canary}{command}".encode()).hexdigest()
        if key in self.running:
            self.log(payload.canary, f"command skipped {command} is already running")
        else:
            task = asyncio.get_running_loop().create_task(
                self._background(key, payload.canary, command, _true(metadata.get("logCmdOutput")))
            )
            self.running[key] = task
        return Response(202, b"", "")

    async def _background(self, key: str, canary: str, command: str, log_output: bool) -> None:
        try:
            self.log(canary, f"task starting {command}")
            ok, out, error = await self.run(["sh", "-c", command], canary, command)
            if not ok:
                self.log(canary, f"command failed {command} {error} {out.decode(errors='replace')}")
            else:
                if log_output:
                    self.log(canary, out.decode(errors="replace"))
                self.log(canary, f"command finished {command}")
        finally:
            self.running.pop(key, None)

    # Commands ---------------------------------------------------------------------------

    def command_env(self) -> dict[str, str]:
        assert self.work_dir is not None
        env = dict(self.base_env)
        system_path = env.get("PATH") or "/usr/local/bin:/usr/bin:/bin"
        env.update(
            {
                "PATH": f"{self.work_dir / 'bin'}:{system_path}",
                "HOME": str(self.work_dir),
                "TMPDIR": str(self.work_dir / "tmp"),
                "LANG": env.get("LANG", "C.UTF-8"),
            }
        )
        if self.mesh_proxy:
            for name in ("http_proxy", "HTTP_PROXY"):
                env[name] = self.mesh_proxy
            for name in ("no_proxy", "NO_PROXY"):
                env[name] = "localhost,127.0.0.1"
        return env

    async def run(self, argv: list[str], canary: str, command: str) -> tuple[bool, bytes, str]:
        """Run one command to its end or its time limit: (succeeded, output, error)."""
        assert self.work_dir is not None
        self.total_execs += 1
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=self.work_dir,
                env=self.command_env(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as err:
            return False, b"", str(err)
        self.groups.add(proc.pid)
        out = bytearray()
        truncated = False

        async def read() -> None:
            nonlocal truncated
            assert proc.stdout is not None
            while chunk := await proc.stdout.read(65536):
                if len(out) < MAX_OUTPUT:
                    out.extend(chunk[: MAX_OUTPUT - len(out)])
                else:
                    truncated = True

        timed_out = False
        try:
            await asyncio.wait_for(asyncio.gather(read(), proc.wait()), self.timeout or None)
        except TimeoutError:
            timed_out = True
            self._kill_group(proc.pid)
            await proc.wait()
        finally:
            self.groups.discard(proc.pid)
        if truncated:
            out.extend(b"\n[output truncated at 1 MiB]")
        if timed_out:
            return False, bytes(out), f"timed out after {self.timeout:g}s: signal: killed"
        if proc.returncode != 0:
            code = proc.returncode or 0
            return (
                False,
                bytes(out),
                f"signal: {signal.Signals(-code).name}" if code < 0 else f"exit status {code}",
            )
        return True, bytes(out), ""

    @staticmethod
    def _kill_group(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Kill every command still running (the load tester is going away)."""
        for pid in list(self.groups):
            self._kill_group(pid)

    def _write_hey_shim(self) -> None:
        """``hey`` ignores proxy variables: give commands one that goes through the mesh."""
        assert self.work_dir is not None
        real = shutil.which("hey", path=self.base_env.get("PATH") or "/usr/local/bin:/usr/bin:/bin")
        shim = self.work_dir / "bin" / "hey"
        if real is None or not self.mesh_proxy:
            shim.unlink(missing_ok=True)
            return
        shim.parent.mkdir(parents=True, exist_ok=True)
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(real)} -x {shlex.quote(self.mesh_proxy)} "$@"\n')
        shim.chmod(0o755)

    def log(self, canary: str, message: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        print(json.dumps({"ts": stamp, "canary": canary, "msg": message}), flush=True)


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "t", "true")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    die_on_parent_exit(signal.SIGTERM)  # so that commands are killed with the load tester
    flags = go_flags(args)
    try:
        port = int(flags.get("port", DEFAULT_PORT))
        timeout = go_duration(flags["timeout"]) if "timeout" in flags else DEFAULT_TIMEOUT
    except ValueError as err:
        raise SystemExit(f"loadtester: {err}") from None
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROGDEL_") and k != "HOSTNAME"}
    work = os.environ.get("PROGDEL_WORKDIR")
    tester = LoadTester(
        timeout=timeout,
        namespace_regexp=flags.get("namespace-regexp", ""),
        allow_commands=os.environ.get("PROGDEL_ALLOW_COMMANDS") == "1" and bool(work),
        work_dir=Path(work) if work else None,
        mesh_proxy=os.environ.get("PROGDEL_MESH_PROXY"),
        base_env=env,
    )
    local = listen_map().get(port, port)

    async def serve_then_stop() -> None:
        try:
            await serve([(local, tester.handle)])
        finally:
            tester.stop()  # before the event loop cancels the tasks that track the commands

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_then_stop())


if __name__ == "__main__":
    main()
