"""The deployment controller fills status from the replica backend."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes import client

from tests.sandbox.test_api import deployment


def wait_for(read: Callable[[], Any], ok: Callable[[Any], bool], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"condition not met; last value: {value}"
        time.sleep(0.05)


def conditions(dep: Any) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in dep.status.conditions or []}


def test_status_filled_after_create(api_client: Any, namespace: str) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, deployment("web", replicas=3))
    dep = wait_for(
        lambda: apps.read_namespaced_deployment("web", namespace),
        lambda d: d.status is not None and d.status.ready_replicas == 3,
    )
    s = dep.status
    assert (s.observed_generation, s.replicas, s.updated_replicas, s.available_replicas) == (1, 3, 3, 3)
    assert s.unavailable_replicas is None
    assert conditions(dep) == {
        "Available": ("True", "MinimumReplicasAvailable"),
        "Progressing": ("True", "NewReplicaSetAvailable"),
    }


def test_scale_to_zero(api_client: Any, namespace: str) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, deployment("web", replicas=2))
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 0}})
    dep = wait_for(
        lambda: apps.read_namespaced_deployment("web", namespace),
        lambda d: (
            d.status is not None
            and d.status.observed_generation == d.metadata.generation
            and d.status.replicas == 0
        ),
    )
    assert dep.status.ready_replicas == 0
    assert conditions(dep)["Available"] == ("True", "MinimumReplicasAvailable")


def test_unpullable_image_never_ready_and_deadline_exceeded(api_client: Any, namespace: str) -> None:
    apps = client.AppsV1Api(api_client)
    body = deployment("web", image="registry.invalid/app:1.0", replicas=1)
    body["spec"]["progressDeadlineSeconds"] = 3600  # no busy machine reaches it before it is read
    apps.create_namespaced_deployment(namespace, body)
    dep = wait_for(
        lambda: apps.read_namespaced_deployment("web", namespace),
        lambda d: d.status is not None and d.status.conditions is not None,
    )
    assert dep.status.ready_replicas == 0 and dep.status.unavailable_replicas == 1
    assert conditions(dep)["Progressing"] == ("True", "ReplicaSetUpdated")
    # a shorter deadline counts from the last progress, as the real controller's does
    apps.patch_namespaced_deployment("web", namespace, {"spec": {"progressDeadlineSeconds": 1}})
    dep = wait_for(
        lambda: apps.read_namespaced_deployment("web", namespace),
        lambda d: conditions(d)["Progressing"][1] == "ProgressDeadlineExceeded",
    )
    assert conditions(dep) == {
        "Available": ("False", "MinimumReplicasUnavailable"),
        "Progressing": ("False", "ProgressDeadlineExceeded"),
    }
    assert dep.status.ready_replicas == 0


def test_rollout_to_bad_image_keeps_old_replicas(api_client: Any, namespace: str) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, deployment("web", replicas=2))
    wait_for(
        lambda: apps.read_namespaced_deployment("web", namespace),
        lambda d: d.status is not None and d.status.ready_replicas == 2,
    )
    apps.patch_namespaced_deployment(
        "web",
        namespace,
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "app", "image": "registry.invalid/app:2.0"}]}}
            }
        },
    )
    dep = wait_for(
        lambda: apps.read_namespaced_deployment("web", namespace), lambda d: d.status.observed_generation == 2
    )
    assert dep.status.updated_replicas == 2 and dep.status.ready_replicas == 2
    assert conditions(dep)["Progressing"] == ("True", "ReplicaSetUpdated")
