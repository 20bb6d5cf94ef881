"""progdel.yaml: loading, validation errors with file:line:field, helpers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from progdel.config.project import load_project, normalize_git_url, parse_duration
from progdel.errors import InvalidInput

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "progdel.yaml"

MINIMAL = """\
environments:
  - name: dev
    namespace: dev
    order: 1
    promotionStrategy: Auto
  - name: prod
    namespace: prod
    order: 2
    promotionStrategy: Manual
apps:
  - name: web
    image: registry.example.com/web
"""


def write(tmp_path: Path, text: str, name: str = "progdel.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_example_loads(tmp_path):
    project = load_project(str(EXAMPLE), tmp_path)
    assert [e.name for e in project.ordered_environments()] == ["dev", "staging", "production", "sandbox"]
    assert {e.kind for e in project.environments} == {"direct", "gitops"}
    staging = project.environment("staging")
    assert staging.gitops is not None and staging.gitops.key == "apps.{app}.version"
    production = project.environment("production")
    assert production.promotion_strategy == "Manual"
    assert production.canary is not None
    assert Path(production.canary.spec) == EXAMPLE.parent / "canary.yaml"
    assert (production.context, project.environment("dev").context) == ("prod-cluster", None)
    dev_verify = project.environment("dev").verify
    assert dev_verify is not None and (dev_verify.soak_seconds, dev_verify.checks) == (600, 10)
    assert project.app("api").deployment_name == "shop-api"
    assert project.app("web").deployment_name == "web"
    assert project.defaults.timeout_seconds == 3600
    assert [e.name for e in project.auto_environments()] == ["dev", "staging"]
    assert project.previous_environment("production").name == "staging"  # type: ignore[union-attr]
    assert project.previous_environment("dev") is None


def test_found_in_cwd_and_missing_file_message(tmp_path):
    with pytest.raises(InvalidInput, match=r"no progdel.yaml in .*--config"):
        load_project(None, tmp_path)
    write(tmp_path, MINIMAL)
    assert load_project(None, tmp_path).app("web").image == "registry.example.com/web"
    with pytest.raises(InvalidInput, match=r"other.yaml: no such file"):
        load_project("other.yaml", tmp_path)


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        (
            "    order: 2\n",
            "    order: 2\n    colour: blue\n",
            r"progdel.yaml:9: environments\[1\].colour: unknown field",
        ),
        (
            "    namespace: prod\n",
            "    namespace: Prod_1\n",
            r"progdel.yaml:7: environments\[1\].namespace: must be a DNS-1123",
        ),
        (
            "order: 2",
            "order: 1",
            r"progdel.yaml:8: environments\[1\].order: duplicate order 1 \(also environments\[0\].order\)",
        ),
        ("name: prod", "name: dev", r"progdel.yaml:6: environments\[1\].name: duplicate name 'dev'"),
        (
            "Manual",
            "Sometimes",
            r"progdel.yaml:9: environments\[1\].promotionStrategy: Input should be 'Auto', 'Manual' or",
        ),
        (
            "    promotionStrategy: Manual\n",
            "    promotionStrategy: Manual\n    kind: gitops\n",
            r"progdel.yaml:10: environments\[1\].kind: kind gitops needs a gitops block",
        ),
        (
            "image: registry.example.com/web",
            "image: registry.example.com/web:1.0",
            r"progdel.yaml:12: apps\[0\].image: must be the image repository without tag",
        ),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, old, new, error):
    assert old in MINIMAL
    write(tmp_path, MINIMAL.replace(old, new, 1))
    with pytest.raises(InvalidInput, match=error):
        load_project(None, tmp_path)


def test_gitops_block_is_validated(tmp_path):
    text = MINIMAL.replace(
        "    promotionStrategy: Manual\n",
        "    promotionStrategy: Manual\n    kind: gitops\n    gitops:\n      repository: ../env\n"
        "      file: values.yaml\n      key: apps..version\n",
    )
    write(tmp_path, text)
    with pytest.raises(
        InvalidInput, match=r"progdel.yaml:14: environments\[1\].gitops.key: cannot parse key"
    ):
        load_project(None, tmp_path)
    write(tmp_path, text.replace("apps..version", "releases[name={app}].version"))
    gitops = load_project(None, tmp_path).environment("prod").gitops
    assert gitops is not None and gitops.branch == "main"
    assert gitops.repository == str((tmp_path.parent / "env").resolve())


def test_unknown_names_list_the_known_ones(tmp_path):
    write(tmp_path, MINIMAL)
    project = load_project(None, tmp_path)
    with pytest.raises(
        InvalidInput, match=r"unknown environment 'staging' \(known in progdel.yaml: dev, prod\)"
    ):
        project.environment("staging")
    with pytest.raises(InvalidInput, match=r"unknown app 'api' \(known in progdel.yaml: web\)"):
        project.app("api")


def test_resolve_app_by_git_origin_or_directory(tmp_path):
    text = MINIMAL + (
        "  - name: api\n    image: r/api\n    repository: https://github.com/shop/api.git\n"
        "  - name: cart\n    image: r/cart\n    repository: src/cart\n"
    )
    conf = tmp_path / "conf"
    conf.mkdir()
    write(conf, text)
    project = load_project(None, conf)
    checkout = tmp_path / "api"
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    subprocess.run(
        ["git", "-C", str(checkout), "remote", "add", "origin", "git@github.com:shop/api.git"], check=True
    )
    assert project.resolve_app(None, checkout).name == "api"
    cart = conf / "src" / "cart" / "lib"
    cart.mkdir(parents=True)
    assert project.resolve_app(None, cart).name == "cart"
    assert project.resolve_app("web", checkout).name == "web"
    with pytest.raises(InvalidInput, match=r"which app.*name one of: web, api, cart"):
        project.resolve_app(None, tmp_path)


def test_only_app_needs_no_name(tmp_path):
    write(tmp_path, MINIMAL)
    assert load_project(None, tmp_path).resolve_app(None, Path("/")).name == "web"


def test_helpers():
    assert normalize_git_url("git@github.com:Shop/api.git") == normalize_git_url(
        "https://github.com/Shop/api"
    )
    assert normalize_git_url("ssh://git@GitHub.com/Shop/api.git") == "github.com/Shop/api"
    assert parse_duration("1h30m") == 5400
    assert parse_duration("90s") == 90
    with pytest.raises(ValueError):
        parse_duration("soon")


VERIFIED = MINIMAL.replace(
    """    order: 1
    promotionStrategy: Auto
""",
    """    order: 1
    promotionStrategy: Auto
    context: dev-cluster
    verify:
      soak: 10m
      noData: request-duration=hold
      metrics:
        - {name: request-success-rate, thresholdRange: {min: 99}, interval: 1m}
        - {name: request-duration, thresholdRange: {max: 500}, interval: 30s}
        - name: errors
          templateRef: {name: error-rate, namespace: istio-system}
          thresholdRange: {max: 1}
""",
)


def test_context_and_verify_are_read_as_a_canary_reads_its_metrics(tmp_path):
    project = load_project(str(write(tmp_path, VERIFIED)), tmp_path)
    dev, prod = project.environment("dev"), project.environment("prod")
    assert (dev.context, prod.context, prod.verify) == ("dev-cluster", None, None)
    verify = dev.verify
    assert verify is not None
    # checks every 30s (the shortest metric interval) for 10m: 20 passing checks in a row
    assert (verify.soak_seconds, verify.interval_seconds, verify.checks) == (600, 30, 20)
    canary = verify.canary(name="web", namespace="shop-dev", target="web")
    assert [m.name for m in canary.analysis.metrics] == ["request-success-rate", "request-duration", "errors"]
    assert canary.target_name == "web" and canary.namespace == "shop-dev"
    assert canary.settings.no_data_policy("request-duration").value == "hold"
    assert canary.settings.no_data_policy("request-success-rate").value == "fail"
    assert canary.settings.max_infra_errors == 5


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ("soak: 10m", "soak: soon", r"progdel.yaml:\d+: environments\[0\].verify.soak: invalid duration"),
        (
            "- {name: request-duration, thresholdRange: {max: 500}, interval: 30s}",
            "- {name: latency, thresholdRange: {max: 500}, interval: 30s}",
            r"progdel.yaml:12: environments\[0\].verify.metrics\[1\].name: metric 'latency' is not built in",
        ),
        (
            "thresholdRange: {max: 1}",
            "thresholdRange: {max: 1}\n          query: sum(up)",
            r"environments\[0\].verify.metrics\[2\]: metric 'errors' has both templateRef and query",
        ),
        (
            "noData: request-duration=hold",
            "noData: request-duration=later",
            r"environments\[0\].verify.noData: noData: unknown policy 'later'",
        ),
        (
            "interval: 1m}",
            "interval: 1m, thresholdRnage: {}}",
            r"verify.metrics\[0\].thresholdRnage: unknown field",
        ),
        (
            "soak: 10m",
            "soak: 10m\n      maxInfraErrors: 0",
            r"verify.maxInfraErrors: Input should be greater",
        ),
        ("context: dev-cluster", "context: ''", r"environments\[0\].context: must name a kubeconfig context"),
    ],
)
def test_verify_and_context_errors_name_the_line_and_field(tmp_path, old, new, error):
    assert old in VERIFIED
    with pytest.raises(InvalidInput, match=error):
        load_project(str(write(tmp_path, VERIFIED.replace(old, new))), tmp_path)
