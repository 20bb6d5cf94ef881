"""The Flagger Canary most canary tests start from, built in one place."""

from __future__ import annotations

from typing import Any


def podinfo_canary(
    namespace: str,
    metrics: list[dict[str, Any]],
    *,
    annotations: dict[str, str] | None = None,
    spec: dict[str, Any] | None = None,
    **analysis: Any,
) -> dict[str, Any]:
    """A Canary of the Deployment ``podinfo`` on port 9898, analysed every 10 s with ``metrics``,
    rolled back after two failed checks, 20% more traffic a step; ``analysis`` overrides or adds
    analysis fields, ``spec`` adds fields beside the analysis."""
    metadata: dict[str, Any] = {"name": "podinfo", "namespace": namespace}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": metadata,
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "10s", "threshold": 2, "stepWeight": 20, **analysis, "metrics": metrics},
            **(spec or {}),
        },
    }
