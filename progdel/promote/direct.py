"""Direct promotion: set the image of the app's Deployment and wait until it runs, ready.

The change is a strategic-merge patch of one container's image, so nothing
else in the Deployment (replicas an autoscaler owns, other containers, env)
is touched. The wait ends in one of three ways:

- the new version is rolled out and ready: done;
- the Deployment reports ``ProgressDeadlineExceeded``: the version failed to
  roll out; progdel at once patches the previous image back (like
  ``helm --atomic``) so the environment is left as it was;
- ``--timeout`` passes first: the same rollback, with what was still missing.

Both failures end with ``ROLLOUT_FAILED`` (exit 7): the version did not become
ready within a deadline (the Deployment's own, or progdel's), and the
environment is back on its previous version. Exit 3 stays reserved for a
canary's analysis rolling back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from progdel.config.project import App
from progdel.errors import ExitCode, InvalidInput, ProgdelError
from progdel.kube.client import STRATEGIC_PATCH, Kube
from progdel.kube.errors import NotFound
from progdel.kube.readiness import Readiness, deployment_health
from progdel.kube.resources import DEPLOYMENTS
from progdel.promote.inventory import container_of, deployment_image
from progdel.promote.versions import image_tag, same_version, with_tag

ROLLOUT_FAILED = ExitCode.TIMEOUT
POLL_INTERVAL = 0.25
ROLLBACK_WAIT = 60.0

Notify = Callable[[str], None]


class RolloutFailed(ProgdelError):
    """The new version did not become ready; the Deployment was set back to its previous image."""

    exit_code = ROLLOUT_FAILED


@dataclass(frozen=True)
class ImageChange:
    namespace: str
    deployment: str
    container: str
    previous_image: str
    image: str
    generation: int

    @property
    def previous_version(self) -> str | None:
        return image_tag(self.previous_image)


def format_duration(seconds: float) -> str:
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return "".join(f"{n}{u}" for n, u in ((h, "h"), (m, "m"), (sec, "s")) if n) or "0s"


def get_deployment(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    try:
        return kube.get(DEPLOYMENTS, name, namespace)
    except NotFound:
        raise InvalidInput(
            f"deployment {namespace}/{name} not found: deploy the app there first "
            f"(progdel promote changes an existing Deployment's image)"
        ) from None


def set_image(kube: Kube, namespace: str, name: str, container: str | None, image: str) -> ImageChange:
    """Patch one container's image; what it was before and the generation to wait for."""
    dep = get_deployment(kube, namespace, name)
    c = container_of(dep, container)
    if c is None:
        what = f"no container {container!r}" if container else "no containers"
        raise InvalidInput(f"deployment {namespace}/{name} has {what}")
    patch = {"spec": {"template": {"spec": {"containers": [{"name": c["name"], "image": image}]}}}}
    updated = kube.patch(DEPLOYMENTS, name, patch, namespace, content_type=STRATEGIC_PATCH)
    generation = int((updated.get("metadata") or {}).get("generation") or 0)
    return ImageChange(namespace, name, str(c["name"]), str(c.get("image") or ""), image, generation)


def _new_ready(dep: dict[str, Any]) -> int:
    """Ready replicas of the newest revision (the old revision's are assumed ready while they run)."""
    status = dep.get("status") or {}
    ready = int(status.get("readyReplicas") or 0)
    old = int(status.get("replicas") or 0) - int(status.get("updatedReplicas") or 0)
    return max(0, min(ready - max(0, old), int(status.get("updatedReplicas") or 0)))


def wait_for_version(
    kube: Kube,
    namespace: str,
    name: str,
    container: str | None,
    version: str,
    *,
    timeout: float,
    generation: int = 0,
    label: str = "",
    notify: Notify | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll the Deployment until its container runs ``version``, rolled out and ready.

    Raises ``RolloutFailed`` (not rolled back here) when the Deployment reports
    ``ProgressDeadlineExceeded`` for that version and ``ProgdelError`` exit 7 when
    ``timeout`` passes; both name what is missing and where to look.
    """
    deadline = clock() + timeout
    started = clock()
    what = label or name
    last = ""
    hint = f"see kubectl -n {namespace} describe deploy {name}"
    while True:
        dep = kube.get_or_none(DEPLOYMENTS, name, namespace)
        if dep is None:
            state, message, done = "missing", f"deployment {namespace}/{name} not found yet", False
        else:
            image = deployment_image(dep, container)
            running = image_tag(image) if image else None
            observed = int((dep.get("status") or {}).get("observedGeneration") or 0)
            meta_gen = int((dep.get("metadata") or {}).get("generation") or 0)
            if running is None or not same_version(running, version):
                state, message, done = "other", f"{namespace}/{name} runs {running or 'no version'}", False
            elif observed < max(generation, meta_gen):
                state, message, done = "pending", f"waiting for {namespace}/{name} to see the change", False
            else:
                health = deployment_health(dep)
                if health.readiness is Readiness.DEADLINE_EXCEEDED:
                    ready = _new_ready(dep)
                    desired = int((dep.get("spec") or {}).get("replicas", 1))
                    raise RolloutFailed(
                        f"{what} {version} failed to roll out in {namespace}: {ready} of {desired} "
                        f"replicas ready when the Deployment's progress deadline passed; {hint}"
                    )
                done = health.readiness is Readiness.READY
                ready = _new_ready(dep)
                desired = int((dep.get("spec") or {}).get("replicas", 1))
                state, message = "rolling", f"{ready} of {desired} replicas of {what} {version} ready"
        if done:
            return dep  # type: ignore[return-value]
        if notify is not None and message != last:
            notify(message)
            last = message
        if clock() >= deadline:
            after = format_duration(clock() - started)
            if state == "rolling":
                raise ProgdelError(f"{message} after {after}; {hint}", ExitCode.TIMEOUT)
            raise ProgdelError(
                f"{what} {version} not running in {namespace} after {after}: {message}; {hint}",
                ExitCode.TIMEOUT,
            )
        sleep(min(POLL_INTERVAL, max(0.0, deadline - clock())))


def restore(kube: Kube, change: ImageChange, notify: Notify | None = None) -> str:
    """Put the previous image back and wait (briefly) for it; a sentence saying how it went."""
    patch = {
        "spec": {
            "template": {"spec": {"containers": [{"name": change.container, "image": change.previous_image}]}}
        }
    }
    kube.patch(DEPLOYMENTS, change.deployment, patch, change.namespace, content_type=STRATEGIC_PATCH)
    previous = change.previous_version or change.previous_image
    if notify is not None:
        notify(f"rolling {change.namespace}/{change.deployment} back to {previous}")
    try:
        wait_for_version(
            kube,
            change.namespace,
            change.deployment,
            change.container,
            previous,
            timeout=ROLLBACK_WAIT,
        )
    except ProgdelError:
        return f"rolled {change.deployment} back to {previous} (not ready yet)"
    return f"rolled {change.deployment} back to {previous}"


def promote_direct(
    kube: Kube,
    namespace: str,
    app: App,
    version: str,
    *,
    timeout: float,
    notify: Notify | None = None,
) -> ImageChange:
    """Set ``app``'s image to ``version`` in ``namespace`` and wait for it; undo it if it fails."""
    image = with_tag(app.image, version)
    change = set_image(kube, namespace, app.deployment_name, app.container, image)
    if notify is not None:
        was = change.previous_version or change.previous_image
        notify(f"set {namespace}/{app.deployment_name} image to {image} (was {was})")
    try:
        wait_for_version(
            kube,
            namespace,
            app.deployment_name,
            app.container,
            version,
            timeout=timeout,
            generation=change.generation,
            label=app.name,
            notify=notify,
        )
    except ProgdelError as err:
        if change.previous_image == change.image:
            raise
        undone = restore(kube, change, notify)
        raise RolloutFailed(f"{err.message}; {undone}") from None
    return change
