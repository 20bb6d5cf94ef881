"""Canaries written for Flagger 0.x, read with 0.x's meaning and written as ``v1beta1``.

Older tutorials and books still show Flagger 0.x Canaries: ``flagger.app/v1alpha1``, ``v1alpha2``
or ``v1alpha3``, the analysis under ``spec.canaryAnalysis``, and built-in metrics named after the
Istio metric they read. Flagger 1.x serves ``v1beta1`` only, and its CRD drops
``canaryAnalysis``, so such a file applied as it is loses its analysis. Following Flagger's
upgrade guide (``docs/gitbook/dev/upgrade-guide.md``):

- ``apiVersion`` becomes ``flagger.app/v1beta1``;
- ``spec.canaryAnalysis`` becomes ``spec.analysis``, with 0.x's defaults written out where
  ``v1beta1`` requires the field (``interval`` 60s, ``threshold`` 1);
- ``istio_requests_total`` becomes ``request-success-rate`` with ``threshold`` as
  ``thresholdRange.min`` (a minimum percentage), and ``istio_request_duration_seconds_bucket``
  becomes ``request-duration`` with ``threshold`` as ``thresholdRange.max`` (a P99 maximum in
  milliseconds); a metric with its own ``query`` keeps its name.

``convert`` is pure: it returns the ``v1beta1`` data, one line saying what changed (empty when
nothing did), and how the paths moved, so errors still name the line of the original file.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from progdel.errors import InvalidInput

API_VERSION = "flagger.app/v1beta1"
LEGACY_API_VERSIONS = ("flagger.app/v1alpha1", "flagger.app/v1alpha2", "flagger.app/v1alpha3")
#: 0.x built-in metric name -> (1.x name, which end of thresholdRange the old threshold is)
LEGACY_METRICS = {
    "istio_requests_total": ("request-success-rate", "min"),
    "istio_request_duration_seconds_bucket": ("request-duration", "max"),
}
#: what 0.x assumed when the analysis left them out, and v1beta1's CRD requires
LEGACY_DEFAULTS = {"interval": "60s", "threshold": 1}

Path = tuple[str | int, ...]


def _number(x: Any) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def convert(data: Any) -> tuple[Any, str, Callable[[Path], Path]]:
    """``(v1beta1 data, what was converted, new path -> old path)`` for a Canary's data.

    ``data`` is not modified. A document that is not a 0.x Canary comes back unchanged with an
    empty message. Raises ``InvalidInput`` when both ``analysis`` and ``canaryAnalysis`` are given
    (0.x's and 1.x's spelling at once: which one is meant cannot be told).
    """
    if not isinstance(data, dict) or data.get("kind") != "Canary":
        return data, "", lambda p: p
    api_version = str(data.get("apiVersion") or "")
    spec = data.get("spec")
    legacy_analysis = isinstance(spec, dict) and "canaryAnalysis" in spec
    if api_version not in LEGACY_API_VERSIONS and not legacy_analysis:
        return data, "", lambda p: p
    out = copy.deepcopy(data)
    changes: list[str] = []
    if api_version in LEGACY_API_VERSIONS:
        out["apiVersion"] = API_VERSION
        changes.append(f"apiVersion {api_version} -> {API_VERSION}")
    renamed = False
    spec = out.get("spec")
    if isinstance(spec, dict) and "canaryAnalysis" in spec:
        if "analysis" in spec:
            raise InvalidInput(
                "spec: both analysis and canaryAnalysis (Flagger 0.x's name for it) are given: keep one"
            )
        spec["analysis"] = spec.pop("canaryAnalysis")
        renamed = True
        changes.append("spec.canaryAnalysis -> spec.analysis")
    analysis = spec.get("analysis") if isinstance(spec, dict) else None
    if isinstance(analysis, dict):
        for key, value in LEGACY_DEFAULTS.items():
            if key not in analysis:
                analysis[key] = value
                changes.append(f"analysis.{key} {value} (0.x's default, required by v1beta1)")
        for metric in analysis.get("metrics") or []:
            if not isinstance(metric, dict) or metric.get("query") or metric.get("templateRef"):
                continue
            legacy = LEGACY_METRICS.get(str(metric.get("name")))
            if legacy is None:
                continue
            old = metric["name"]
            metric["name"], end = legacy
            text = f"metric {old} -> {metric['name']}"
            if "threshold" in metric and "thresholdRange" not in metric:
                threshold = metric.pop("threshold")
                metric["thresholdRange"] = {end: threshold}
                unit = "%" if end == "min" else "ms"
                text += (
                    f" (threshold {_number(threshold)} -> thresholdRange.{end} {_number(threshold)}{unit})"
                )
            changes.append(text)

    def back(path: Path) -> Path:
        if path[:3] == ("spec", "analysis", "metrics") and len(path) >= 5 and path[4] == "thresholdRange":
            path = (*path[:4], "threshold")
        if renamed and path[:2] == ("spec", "analysis"):
            path = ("spec", "canaryAnalysis", *path[2:])
        return path

    return out, "converted from Flagger 0.x: " + "; ".join(changes), back


__all__ = ["API_VERSION", "LEGACY_API_VERSIONS", "LEGACY_METRICS", "convert"]
