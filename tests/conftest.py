"""Shared fixtures: one sandbox cluster per test session, reached over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from progdel.sandbox.server import SandboxServer


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """A started sandbox cluster; ``.url`` and ``.kubeconfig`` (the written file) are set."""
    data_dir: Path = tmp_path_factory.mktemp("sandbox")
    server = SandboxServer(data_dir)
    server.start()
    server.write_kubeconfig()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def api_client(sandbox: SandboxServer) -> Iterator[Any]:
    """A ``kubernetes.client.ApiClient`` configured from the sandbox's kubeconfig."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(sandbox.kubeconfig))
    yield client
    client.close()


@pytest.fixture
def namespace(api_client: Any) -> Iterator[str]:
    """A fresh namespace, created through the API and deleted afterwards."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    try:
        core.delete_namespace(name)
    except client.ApiException as err:
        if err.status != 404:
            raise


@pytest.fixture
def nothing_to_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    """progdel (run in this process or as a subprocess) does not wait for the mesh before scaling
    pods away: the sandbox without its data plane carries no traffic, so there is nothing to
    drain (the wait itself is tested where traffic flows, in ``tests/dataplane``)."""
    from progdel.canary.workloads import DRAIN_SECONDS_ENV

    monkeypatch.setenv(DRAIN_SECONDS_ENV, "0")
