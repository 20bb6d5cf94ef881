"""User YAML as an attacker or a careless hand writes it: alias bombs, huge documents, keys given
twice, values out of the ranges Kubernetes and Flagger's CRD allow. Each is one line, exit 2."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from progdel.config.canary import load_canary, load_metric_templates, parse_canary
from progdel.config.project import load_project
from progdel.config.yamlfile import MAX_DOCUMENT_BYTES, load_yaml, parse_documents
from progdel.errors import ExitCode, InvalidInput
from progdel.promote.yamledit import set_value


def alias_bomb(levels: int = 9) -> str:
    """About 400 bytes that expand to 9**levels strings (387 million for 9 levels)."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


CANARY = """\
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis:
    interval: 1m
    threshold: 5
    maxWeight: 50
    stepWeight: 10
    metrics:
      - name: request-success-rate
        thresholdRange: {min: 99}
"""

PROJECT = """\
environments:
  - {name: dev, namespace: dev, order: 1, promotionStrategy: Auto}
apps:
  - {name: web, image: registry.example.com/web}
"""


def test_an_alias_bomb_is_refused_at_once_not_expanded(tmp_path: Path) -> None:
    bomb = alias_bomb()
    assert len(bomb) < 500
    path = tmp_path / "canary.yaml"
    path.write_text(CANARY + bomb)
    with pytest.raises(InvalidInput) as err:  # refused while counting, never built (gigabytes)
        load_canary(path)
    assert err.value.exit_code is ExitCode.INVALID_INPUT
    assert str(err.value).startswith(f"{path}:")
    assert "YAML aliases expand this document by more than 100000 nodes" in str(err.value)


@pytest.mark.parametrize(
    "loader",
    [
        lambda p: load_project(str(p), p.parent),
        load_metric_templates,
        lambda p: set_value(p.read_text(), "apps.web.version", "1.0.0", source=str(p)),
    ],
    ids=["progdel.yaml", "templates", "gitops file"],
)
def test_every_user_file_refuses_an_alias_bomb(tmp_path: Path, loader: Any) -> None:
    path = tmp_path / "file.yaml"
    path.write_text(PROJECT + alias_bomb())
    with pytest.raises(InvalidInput, match="YAML aliases expand"):
        loader(path)


def test_an_alias_to_itself_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"x.yaml:1: a YAML alias refers to itself"):
        load_yaml("a: &a [1, *a]\n", "x.yaml")


def test_modest_aliases_and_merge_keys_still_work() -> None:
    text = "base: &b {port: 80, name: web}\none: {<<: *b, name: one}\ntwo: [*b, *b]\n"
    assert load_yaml(text, "x.yaml") == {
        "base": {"port": 80, "name": "web"},
        "one": {"port": 80, "name": "one"},
        "two": [{"port": 80, "name": "web"}, {"port": 80, "name": "web"}],
    }


def test_a_document_over_the_api_request_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "canary.yaml"
    path.write_text(CANARY + "# " + "x" * MAX_DOCUMENT_BYTES + "\n")
    with pytest.raises(InvalidInput, match=r"larger than the 3 MiB progdel reads"):
        load_canary(path)


def test_nesting_too_deep_is_one_line() -> None:
    with pytest.raises(InvalidInput) as err:
        load_yaml("[" * 100_000 + "]" * 100_000, "deep.yaml")
    assert str(err.value).startswith("deep.yaml") and "\n" not in str(err.value)


def test_a_key_given_twice_names_the_key_and_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "canary.yaml"
    path.write_text(CANARY.replace("    stepWeight: 10\n", "    stepWeight: 10\n    threshold: 1\n"))
    with pytest.raises(InvalidInput) as err:
        load_canary(path)
    assert str(err.value) == f"{path}:14: duplicate key 'threshold' (first at line 11)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (PROJECT + "apps: []\n", "progdel.yaml:5: duplicate key 'apps' (first at line 3)"),
        ("environments: []\napps:\n  - {name: a, name: b}\n", "progdel.yaml:3: duplicate key 'name'"),
    ],
)
def test_progdel_yaml_refuses_duplicate_keys(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "progdel.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as err:
        load_project(None, tmp_path)
    assert str(err.value).startswith(message)


def test_a_gitops_file_with_a_key_twice_is_not_edited() -> None:
    with pytest.raises(InvalidInput, match=r"values.yaml:3: duplicate key 'version'"):
        set_value(
            "apps:\n  web: {version: 1.0.0,\n    version: 2.0.0}\n",
            "apps.web.version",
            "3.0.0",
            source="values.yaml",
        )


def _canary(**analysis: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {
                "interval": "1m",
                "threshold": 5,
                "stepWeight": 10,
                "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
            },
        },
    }
    doc["spec"]["analysis"].update(analysis)
    return doc


def _with(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    doc = _canary()
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("spec", "analysis", "maxWeight"),
            150,
            "spec.analysis.maxWeight: Input should be less than or equal to 100",
        ),
        (
            ("spec", "analysis", "maxWeight"),
            -10,
            "spec.analysis.maxWeight: Input should be greater than or equal to 0",
        ),
        (
            ("spec", "analysis", "stepWeight"),
            101,
            "spec.analysis.stepWeight: Input should be less than or equal to 100",
        ),
        (
            ("spec", "analysis", "stepWeights"),
            [10, 150],
            "spec.analysis.stepWeights[1]: Input should be less than",
        ),
        (
            ("spec", "analysis", "stepWeightPromotion"),
            200,
            "spec.analysis.stepWeightPromotion: Input should be less",
        ),
        (
            ("spec", "analysis", "mirrorWeight"),
            500,
            "spec.analysis.mirrorWeight: Input should be less than or equal",
        ),
        (
            ("spec", "analysis", "iterations"),
            10**30,
            "spec.analysis.iterations: Input should be less than or equal",
        ),
        (
            ("spec", "analysis", "threshold"),
            10**30,
            "spec.analysis.threshold: Input should be less than or equal",
        ),
        (
            ("spec", "analysis", "primaryReadyThreshold"),
            101,
            "spec.analysis.primaryReadyThreshold: Input should",
        ),
        (
            ("spec", "progressDeadlineSeconds"),
            -1,
            "spec.progressDeadlineSeconds: Input should be greater than",
        ),
        (
            ("spec", "progressDeadlineSeconds"),
            2**31,
            "spec.progressDeadlineSeconds: Input should be less than",
        ),
        (
            ("spec", "service", "port"),
            99999,
            "spec.service.port: Input should be less than or equal to 65535",
        ),
        (("spec", "service", "port"), 0, "spec.service.port: Input should be greater than or equal to 1"),
        (("spec", "service", "targetPort"), 70000, "spec.service.targetPort"),
        (
            ("spec", "analysis", "metrics", 0, "thresholdRange"),
            {"min": 99, "max": 1},
            "spec.analysis.metrics[0].thresholdRange: Value error, min 99 is above max 1",
        ),
        (("spec", "analysis", "metrics", 0, "thresholdRange"), {"min": float("nan")}, "thresholdRange.min"),
        (("spec", "analysis", "webhooks"), [{"name": "h", "url": "http://h", "retries": -1}], "retries"),
    ],
)
def test_values_outside_their_range_are_refused(path: tuple[Any, ...], value: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_canary(_with(path, value), "canary.yaml")
    assert message in str(err.value)
    assert err.value.exit_code is ExitCode.INVALID_INPUT


def test_the_edges_of_the_ranges_are_accepted() -> None:
    doc = _canary(maxWeight=100, stepWeight=100, mirrorWeight=100, stepWeightPromotion=100, iterations=0)
    doc["spec"]["service"].update(port=65535, targetPort=1)
    doc["spec"]["progressDeadlineSeconds"] = 0
    doc["spec"]["analysis"]["metrics"][0]["thresholdRange"] = {"min": 5, "max": 5}
    canary = parse_canary(copy.deepcopy(doc), "canary.yaml").model
    assert canary.analysis.effective_max_weight == 100 and canary.spec.service.port == 65535


def test_max_weight_150_without_metrics_cannot_promote_without_traffic() -> None:
    """With maxWeight above 100 the canary's weight could never reach it, and the run would go
    straight to promotion: with no metrics nothing would stop it. It never gets that far."""
    with pytest.raises(InvalidInput, match="maxWeight"):
        parse_canary(_canary(maxWeight=150, metrics=[]), "canary.yaml")


@pytest.mark.parametrize("word", ["history", "verify"])
def test_an_app_named_as_a_promote_subcommand_is_refused(tmp_path: Path, word: str) -> None:
    (tmp_path / "progdel.yaml").write_text(PROJECT.replace("name: web", f"name: {word}"))
    with pytest.raises(InvalidInput, match=rf"apps\[0\].name: '{word}' is reserved"):
        load_project(None, tmp_path)


def test_an_app_name_must_be_a_dns_label(tmp_path: Path) -> None:
    (tmp_path / "progdel.yaml").write_text(PROJECT.replace("name: web", 'name: "we b"'))
    with pytest.raises(InvalidInput, match=r"apps\[0\].name: must be a DNS-1123 label"):
        load_project(None, tmp_path)


def test_documents_still_carry_their_lines() -> None:
    (doc,) = parse_documents(CANARY, "c.yaml")
    assert doc.line_of(("spec", "analysis", "metrics", 0, "thresholdRange", "min")) == 16
    assert doc.line_of(("spec", "service", "port")) == 8


def test_a_chart_repository_index_that_is_an_alias_bomb_is_one_line(httpx_mock: Any) -> None:
    from progdel.addons.charts import ChartRepository
    from progdel.errors import Unreachable

    httpx_mock.add_response(url="https://charts.example.org/index.yaml", text="entries: {}\n" + alias_bomb())
    with pytest.raises(Unreachable) as err:
        ChartRepository("https://charts.example.org").index()
    assert str(err.value).startswith("https://charts.example.org/index.yaml is not a chart repository index:")
    assert "YAML aliases expand" in str(err.value) and "\n" not in str(err.value)


def test_a_set_value_is_bounded_too_without_helm_sdk() -> None:
    """Without Helm's SDK, --set values are read as YAML: an alias bomb fits in one (block style)."""
    from progdel.addons.render import _parse_set_simple

    lines = ["l0: &l0 [lol]"] + [
        f"l{i}: &l{i}\n" + "".join(f" - *l{i - 1}\n" for _ in range(9)) for i in range(1, 9)
    ]
    with pytest.raises(InvalidInput, match=r"--set a:.*YAML aliases expand"):
        _parse_set_simple("a=" + "\n".join(lines))
