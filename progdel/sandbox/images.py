"""Which container images the sandbox runs as local processes, and how.

In mesh mode a replica of a Deployment whose first container uses one of these images is a
process on the user's machine:

==========================================  ==============================================
image                                       program
==========================================  ==============================================
``progdel/demo-app:V``                      ``progdel.sandbox.demoapp`` (version V)
``ghcr.io/stefanprodan/podinfo:V``,         ``progdel.sandbox.podinfo``: podinfo's HTTP API,
``stefanprodan/podinfo:V``                  configured by the container's command/args
``ghcr.io/fluxcd/flagger-loadtester:V``     ``progdel.sandbox.loadtester``: Flagger's load
                                            tester webhook API
==========================================  ==============================================

A process listens on loopback ports of its own; ``Program.ports`` says which local port
stands for which port inside the container, so a Service's ``targetPort`` (a number, or a
name declared in the container's ``ports``) reaches the right one. Container env is passed
on, except ``PROGDEL_*`` variables: those carry the sandbox's own settings to the process.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from progdel.sandbox import demoapp, podinfo
from progdel.sandbox.httpapp import image_tag
from progdel.sandbox.loadtester import go_flags

LOADTESTER_REPOSITORY = "fluxcd/flagger-loadtester"
LOADTESTER_DEFAULT_PORT = 9090  # the load tester's -port default


@dataclass(frozen=True)
class LaunchContext:
    """What the sandbox tells the programs it starts."""

    python: str
    mesh_proxy: str | None = None  # http://127.0.0.1:MESH_PORT, the in-cluster network
    allow_commands: bool = False  # may the load tester run commands from Canary webhooks
    work_dir: Path | None = None  # where such commands run (one folder per pod below it)


@dataclass(frozen=True)
class Program:
    """One replica's process: its command line, environment and ports."""

    kind: str
    argv: list[str]
    env: dict[str, str]
    ports: dict[int, int]  # container port -> local port
    catch_all: int | None  # local port that also serves every other container port
    probe: tuple[int, str]  # readiness: local port and path answering 200


@dataclass(frozen=True)
class ContainerView:
    """The parts of a pod template's first container a program is configured from."""

    image: str
    command: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port_names: dict[str, int] = field(default_factory=dict)
    port_numbers: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, template: Mapping[str, Any]) -> ContainerView:
        containers = ((template.get("spec") or {}).get("containers")) or [{}]
        first = containers[0] if isinstance(containers[0], Mapping) else {}
        env: dict[str, str] = {}
        for item in first.get("env") or []:
            if isinstance(item, Mapping) and isinstance(item.get("name"), str) and "value" in item:
                env[item["name"]] = "" if item["value"] is None else str(item["value"])
        names: dict[str, int] = {}
        numbers: list[int] = []
        for p in first.get("ports") or []:
            if isinstance(p, Mapping) and isinstance(p.get("containerPort"), int):
                numbers.append(int(p["containerPort"]))
                if p.get("name"):
                    names[str(p["name"])] = int(p["containerPort"])
        return cls(
            image=str(first.get("image") or ""),
            command=[str(a) for a in first.get("command") or []],
            args=[str(a) for a in first.get("args") or []],
            env=env,
            port_names=names,
            port_numbers=numbers,
        )

    @property
    def argv(self) -> list[str]:
        return self.command + self.args


def loadtester_version(image: str) -> str | None:
    return image_tag(image, LOADTESTER_REPOSITORY)


def kind_of(image: str) -> str | None:
    """``demo-app``, ``podinfo`` or ``flagger-loadtester`` for an image the sandbox runs, else None."""
    if demoapp.version_from_image(image) is not None:
        return "demo-app"
    if podinfo.version_from_image(image) is not None:
        return "podinfo"
    if loadtester_version(image) is not None:
        return "flagger-loadtester"
    return None


def _base_env(container: ContainerView, pod: str) -> dict[str, str]:
    env = {k: v for k, v in container.env.items() if not k.startswith("PROGDEL_")}
    env["PATH"] = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["HOSTNAME"] = pod
    return env


def _module(ctx: LaunchContext, name: str) -> list[str]:
    return [ctx.python, "-I", "-m", f"progdel.sandbox.{name}"]


def plan(
    container: ContainerView,
    *,
    pod: str,
    namespace: str,
    ctx: LaunchContext,
    allocate: Callable[[], int],
) -> Program | None:
    """The process for one replica of ``container``, or None when its image is not one we run."""
    kind = kind_of(container.image)
    env = _base_env(container, pod)
    if kind == "demo-app":
        http, metrics = allocate(), allocate()
        metrics_port = int(env.get("DEMO_METRICS_PORT", "9797") or 9797)
        ports = {p: http for p in container.port_numbers if p != metrics_port}
        ports[metrics_port] = metrics
        env.update({"DEMO_POD_NAME": env.get("DEMO_POD_NAME", pod), "DEMO_IMAGE": container.image})
        argv = [
            *_module(ctx, "demoapp"),
            "--port",
            str(http),
            "--metrics-port",
            str(metrics),
            "--image",
            container.image,
            "--pod",
            pod,
        ]
        return Program(kind, argv, env, ports, http, (http, "/healthz"))
    if kind == "podinfo":
        settings = podinfo.parse_args(container.argv, container.env)
        roles = podinfo.listen_ports(settings)
        local = {role: allocate() for role in roles}
        ports = {roles[role]: port for role, port in local.items()}
        env["PROGDEL_IMAGE"] = container.image
        env["PROGDEL_LISTEN"] = ",".join(f"{c}={p}" for c, p in ports.items())
        probe = (local["http"], "/readyz") if "http" in local else (local.get("metrics", 0), "/healthz")
        return Program(kind, [*_module(ctx, "podinfo"), *container.argv], env, ports, None, probe)
    if kind == "flagger-loadtester":
        flags = go_flags(container.argv)
        try:
            inner = int(flags.get("port", LOADTESTER_DEFAULT_PORT))
        except ValueError:
            inner = LOADTESTER_DEFAULT_PORT
        port = allocate()
        env["PROGDEL_LISTEN"] = f"{inner}={port}"
        env["PROGDEL_IMAGE"] = container.image
        env["PROGDEL_ALLOW_COMMANDS"] = "1" if ctx.allow_commands else "0"
        if ctx.mesh_proxy:
            env["PROGDEL_MESH_PROXY"] = ctx.mesh_proxy
        if ctx.work_dir is not None:
            env["PROGDEL_WORKDIR"] = str(ctx.work_dir / f"{namespace}_{_safe(pod)}")
        return Program(
            kind, [*_module(ctx, "loadtester"), *container.argv], env, {inner: port}, None, (port, "/healthz")
        )
    return None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)
