"""Flagger's hashes (``pkg/canary/spec.go`` ComputeHash, ``config_tracker.go``,
``pkg/controller/webhook.go`` canaryChecksum), against vectors computed by Go itself.

``data/flagger-hash-vectors.json`` was derived once from Flagger 1.44's hashing of the pod
template (go-spew at the commit Flagger 1.44 pins, over the ``PodTemplateSpec`` of k8s.io/api
v0.36.2, the Kubernetes API version Flagger 1.44 pins), run in Go: hand-written templates
(Flagger's podinfo tutorial as a server stores it, configs, probes, volumes, scheduling,
quantities on both of ``ParseQuantity``'s paths, strings to escape) and a fuzzed sample that sets
fields all over the layout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from progdel.canary.engine import revision_changed, tick
from progdel.canary.flaggerhash import (
    Unsupported,
    config_checksum,
    looks_like_flagger_hash,
    pod_template_hash,
    webhook_checksum,
)
from progdel.canary.observation import Observation, Weights
from progdel.canary.revision import ConfigRef, legacy_revision_hash, revision_of, tracked_configs
from progdel.canary.status import CanaryStatus, Phase
from progdel.config.canary import parse_canary

VECTORS = json.loads((Path(__file__).parent / "data" / "flagger-hash-vectors.json").read_text())


@pytest.mark.parametrize("vector", VECTORS["templates"], ids=lambda v: v["about"])
def test_pod_template_hash_is_flaggers(vector: dict[str, Any]) -> None:
    assert pod_template_hash(vector["template"]) == vector["hash"]
    assert looks_like_flagger_hash(vector["hash"])


@pytest.mark.parametrize("case", VECTORS["checksums"], ids=lambda c: c["mode"])
def test_checksums_are_flaggers(case: dict[str, Any]) -> None:
    if case["mode"] == "checksum":
        assert webhook_checksum(case["tracked"], case["spec"]) == case["expected"]
    elif case["mode"] == "configmap":
        assert config_checksum(case["data"]) == case["expected"]
    else:
        assert config_checksum(case["secret"]) == case["expected"]


def test_canary_checksum() -> None:
    """TestCanaryChecksum (webhook_test.go): the checksum follows trackedConfigs and
    lastAppliedSpec, and an absent trackedConfigs differs from any map."""
    c1 = webhook_checksum({"test-config-map": "484637c76acaa7c6"}, "5f56684589")
    c2 = webhook_checksum({"test-config-map": "9fc3a7c76acaa7c6"}, "5f56684589")
    c3 = webhook_checksum({"test-config-map": "484637c76acaa7c6"}, "4cb74184589")
    c4 = webhook_checksum(None, "4cb74184589")
    assert c1 == webhook_checksum({"test-config-map": "484637c76acaa7c6"}, "5f56684589")
    assert len({c1, c2, c3, c4}) == 4


def test_a_set_creation_timestamp_is_not_imitated() -> None:
    """Go decodes a set timestamp into the Flagger process' time zone, which cannot be known:
    progdel falls back to its own hash rather than guessing."""
    template = {"metadata": {"creationTimestamp": "2024-01-01T00:00:00Z"}, "spec": {"containers": []}}
    with pytest.raises(Unsupported):
        pod_template_hash(template)
    revision = revision_of(template, {})
    assert revision.spec == revision.legacy == legacy_revision_hash(template, {})
    assert not looks_like_flagger_hash(revision.spec)


_HUGE_PROBE = """
import json, sys
from progdel.canary.flaggerhash import Unsupported, pod_template_hash
out = {}
for cpu in json.loads(sys.argv[1]):
    container = {"name": "app", "image": "nginx", "resources": {"requests": {"cpu": cpu}}}
    try:
        out[cpu] = pod_template_hash({"spec": {"containers": [container]}})
    except Unsupported:
        out[cpu] = None
print(json.dumps(out))
"""


def test_a_quantity_too_large_to_expand_is_not_hashed_and_never_expanded() -> None:
    """Go would hold ``1234567890123456789e99999999`` as a big.Int of 10^8 digits: progdel falls
    back to its own hash instead of expanding it. Values the int64 fast path holds (``1e99999999``,
    one digit and a scale) and those under a nano are hashed. In a child process with a deadline,
    so that a regression fails here rather than hanging the suite."""
    cpus = ["1234567890123456789e99999999", "1e99999999", "1234567890123456789e-99999999", "1.5e-2147483648"]
    done = subprocess.run(
        [sys.executable, "-c", _HUGE_PROBE, json.dumps(cpus)],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    out = json.loads(done.stdout)
    assert out[cpus[0]] is None
    assert all(looks_like_flagger_hash(out[cpu]) for cpu in cpus[1:])


def test_tracked_configs_are_flaggers() -> None:
    """TestConfigTracker_ConfigMaps / _Secrets (config_tracker_test.go): keys ``configmap/NAME``
    and ``secret/NAME``, the checksum of ``data``; opted-out objects, Secrets of other types and
    missing objects are not tracked."""
    cm = {"data": {"color": "blue"}}
    configs = {
        ConfigRef("ConfigMap", "app"): cm,
        ConfigRef("ConfigMap", "off"): {
            "metadata": {"annotations": {"flagger.app/config-tracking": "disabled"}}
        },
        ConfigRef("ConfigMap", "gone"): None,
        ConfigRef("Secret", "creds"): {"type": "Opaque", "data": {"password": "czNjcjN0"}},
        ConfigRef("Secret", "registry"): {"type": "kubernetes.io/dockerconfigjson", "data": {"x": "eA=="}},
        ConfigRef("Secret", "tls"): {"type": "kubernetes.io/tls", "data": {"tls.crt": "Yw=="}},
    }
    assert tracked_configs(configs) == {
        "configmap/app": config_checksum({"color": "blue"}),
        "secret/creds": config_checksum({"password": "czNjcjN0"}),
        "secret/tls": config_checksum({"tls.crt": "Yw=="}),
    }


def test_a_status_flagger_wrote_is_not_a_new_revision() -> None:
    """The canary Flagger initialized or promoted: progdel computes the same hash and stays put;
    a changed template or config is a new revision, a revert to the promoted template is not."""
    tutorial = next(v for v in VECTORS["templates"] if v["about"].startswith("Flagger's kustomize"))
    changed = next(v for v in VECTORS["templates"] if v["about"] == "image change")
    flagger_wrote = CanaryStatus(
        phase=Phase.SUCCEEDED,
        last_applied_spec=tutorial["hash"],
        last_promoted_spec=tutorial["hash"],
        tracked_configs={},
    )
    now = revision_of(tutorial["template"], {})
    assert now.spec == tutorial["hash"]
    assert not revision_changed(flagger_wrote, now.spec, now.configs, now.legacy)
    canary = parse_canary(
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898},
                "analysis": {"interval": "1m", "threshold": 5, "stepWeight": 10},
            },
        },
        "test",
    ).model
    obs = Observation(
        now=datetime(2024, 1, 1, tzinfo=UTC),
        revision=now.spec,
        tracked_configs=now.configs,
        legacy_revision=now.legacy,
        weights=Weights(100, 0),
    )
    r = tick(canary, flagger_wrote, obs)
    assert r.settled and r.actions == [] and r.note == "no new revision"
    new = revision_of(changed["template"], {})
    assert revision_changed(flagger_wrote, new.spec, new.configs, new.legacy)
    with_config = {ConfigRef("ConfigMap", "x"): {"data": {"a": "1"}}}
    assert revision_changed(flagger_wrote, now.spec, tracked_configs(with_config), now.legacy)
    reverted = CanaryStatus(
        phase=Phase.SUCCEEDED,
        last_applied_spec=new.spec,
        last_promoted_spec=tutorial["hash"],
        tracked_configs={},
    )
    assert not revision_changed(reverted, now.spec, now.configs, now.legacy)


def test_a_status_an_older_progdel_wrote_is_compared_in_its_own_form() -> None:
    template = VECTORS["templates"][0]["template"]
    old = legacy_revision_hash(template, {})
    status = CanaryStatus(phase=Phase.SUCCEEDED, last_applied_spec=old, last_promoted_spec=old)
    now = revision_of(template, {})
    assert now.spec != old and not revision_changed(status, now.spec, now.configs, now.legacy)
