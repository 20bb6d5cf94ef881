"""The kubeconfig the sandbox writes, so kubectl and the kubernetes client find it."""

from __future__ import annotations

import os
from pathlib import Path

NAME = "progdel-sandbox"


def kubeconfig_text(url: str, namespace: str = "default") -> str:
    """A kubeconfig whose cluster, context and user are all named ``progdel-sandbox``."""
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        f"- name: {NAME}\n"
        "  cluster:\n"
        f"    server: {url}\n"
        "contexts:\n"
        f"- name: {NAME}\n"
        "  context:\n"
        f"    cluster: {NAME}\n"
        f"    user: {NAME}\n"
        f"    namespace: {namespace}\n"
        f"current-context: {NAME}\n"
        "users:\n"
        f"- name: {NAME}\n"
        "  user:\n"
        "    token: progdel-sandbox\n"
        "preferences: {}\n"
    )


def write_kubeconfig(path: Path, url: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(kubeconfig_text(url))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path
