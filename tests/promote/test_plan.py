from pathlib import Path

import pytest

from progdel.config.project import Project, project_from_document
from progdel.config.yamlfile import parse_documents
from progdel.errors import ExitCode, InvalidInput, ProgdelError
from progdel.promote.plan import plan_promotion

PROJECT = """\
environments:
  - {name: production, namespace: prod, order: 300, promotionStrategy: Manual}
  - {name: dev, namespace: dev, order: 100, promotionStrategy: Auto}
  - {name: staging, namespace: staging, order: 200, promotionStrategy: Auto}
  - {name: qa, namespace: qa, order: 250, promotionStrategy: Never}
  - {name: perf, namespace: perf, order: 400, promotionStrategy: Auto}
apps:
  - {name: web, image: registry.example.com/web}
"""


@pytest.fixture
def project() -> Project:
    return project_from_document(parse_documents(PROJECT, "progdel.yaml")[0], Path("/tmp"))


def plan(project, env, version=None, **kw):
    kw.setdefault("versions_by_env", {})
    kw.setdefault("healthy_by_env", {})
    return plan_promotion(project, project.app("web"), env, version, **kw)


def test_never_is_refused_even_by_name_and_with_force(project):
    with pytest.raises(InvalidInput, match=r"qa has promotionStrategy Never") as err:
        plan(
            project,
            "qa",
            "1.0.0",
            force=True,
            versions_by_env={"staging": "1.0.0"},
            healthy_by_env={"staging": True},
        )
    assert err.value.exit_code == ExitCode.INVALID_INPUT


def test_manual_needs_confirmation_unless_batch(project):
    ok = {"versions_by_env": {"qa": "1.2.0"}, "healthy_by_env": {"qa": True}}
    p = plan(project, "production", "1.2.0", **ok)
    assert p.needs_confirmation and p.steps[0].needs_confirmation
    assert not plan(project, "production", "1.2.0", batch=True, **ok).needs_confirmation
    assert not plan(
        project, "staging", "1.2.0", versions_by_env={"dev": "1.2.0"}, healthy_by_env={"dev": True}
    ).needs_confirmation


def test_version_must_run_in_previous_environment(project):
    with pytest.raises(InvalidInput) as err:
        plan(project, "staging", "1.2.0", versions_by_env={"dev": "1.1.0"}, healthy_by_env={"dev": True})
    msg = str(err.value)
    assert "web 1.2.0 does not run in dev (it runs 1.1.0)" in msg and "--force" in msg


def test_previous_environment_follows_order_not_file_position(project):
    # production's predecessor by order is qa (250), though staging comes later in the file.
    with pytest.raises(InvalidInput, match=r"does not run in qa"):
        plan(
            project,
            "production",
            "1.2.0",
            versions_by_env={"staging": "1.2.0"},
            healthy_by_env={"staging": True},
        )


def test_unhealthy_previous_is_waiting(project):
    with pytest.raises(ProgdelError, match=r"runs in dev but is not healthy") as err:
        plan(
            project,
            "staging",
            "1.2.0",
            versions_by_env={"dev": ["1.1.0", "1.2.0"]},
            healthy_by_env={"dev": False},
        )
    assert err.value.exit_code == ExitCode.WAITING


def test_force_skips_the_gate_with_a_warning(project):
    p = plan(project, "staging", "1.2.0", force=True, versions_by_env={"dev": "1.1.0"})
    assert p.steps[0].gate == "forced: web 1.2.0 does not run in dev (it runs 1.1.0)"
    assert any("--force" in w for w in p.warnings)


VERIFIED_DEV = PROJECT.replace(
    "{name: dev, namespace: dev, order: 100, promotionStrategy: Auto}",
    "{name: dev, namespace: dev, order: 100, promotionStrategy: Auto, verify: {soak: 5m, metrics: "
    "[{name: request-success-rate, thresholdRange: {min: 99}}]}}",
)


@pytest.fixture
def verified_dev() -> Project:
    return project_from_document(parse_documents(VERIFIED_DEV, "progdel.yaml")[0], Path("/tmp"))


def test_gate_asks_for_verified_where_the_previous_environment_verifies(verified_dev):
    running = {"versions_by_env": {"dev": "1.2.0"}, "healthy_by_env": {"dev": True}}
    p = plan(verified_dev, "staging", "1.2.0", verification_by_env={"dev": "verified"}, **running)
    assert p.steps[0].gate == "verified"
    for state in ("pending", "unverified"):
        with pytest.raises(ProgdelError, match=rf"not verified there \({state}\)") as waiting:
            plan(verified_dev, "staging", "1.2.0", verification_by_env={"dev": state}, **running)
        assert waiting.value.exit_code == ExitCode.WAITING
        assert "progdel promote verify web --env dev" in waiting.value.message
    with pytest.raises(InvalidInput, match=r"web 1\.2\.0 failed verification in dev"):
        plan(verified_dev, "staging", "1.2.0", verification_by_env={"dev": "failed-verification"}, **running)
    forced = plan(
        verified_dev,
        "staging",
        "1.2.0",
        force=True,
        verification_by_env={"dev": "failed-verification"},
        **running,
    )
    assert forced.steps[0].gate == "forced: web 1.2.0 failed verification in dev"


def test_gate_without_verify_needs_only_running_and_ready(project):
    p = plan(project, "staging", "1.2.0", versions_by_env={"dev": "1.2.0"}, healthy_by_env={"dev": True})
    assert p.steps[0].gate == "checked"


def test_without_version_the_newest_in_previous_is_chosen(project):
    p = plan(
        project,
        "staging",
        versions_by_env={"dev": ["1.9.0", "1.10.0"]},
        healthy_by_env={"dev": False},
        force=True,
    )
    assert p.version == "1.10.0" and p.version_source == "newest in dev"
    p = plan(project, "staging", versions_by_env={"dev": "v2.0.0"}, healthy_by_env={"dev": True})
    assert p.version == "v2.0.0" and p.steps[0].gate == "checked"


def test_first_environment_needs_a_version(project):
    with pytest.raises(InvalidInput, match=r"dev is the first environment .*--version"):
        plan(project, "dev")
    assert plan(project, "dev", "1.0.0").steps[0].gate == "first"


def test_nothing_in_previous_without_version(project):
    with pytest.raises(InvalidInput, match=r"no version of web runs in dev"):
        plan(project, "staging")


def test_all_auto_in_order_and_later_steps_gated_by_earlier_ones(project):
    p = plan(
        project,
        None,
        "1.3.0",
        all_auto=True,
        versions_by_env={"production": "1.3.0"},
        healthy_by_env={"production": True},
    )
    assert [s.environment.name for s in p.steps] == ["dev", "staging", "perf"]
    assert [s.gate for s in p.steps] == ["first", "previous-step", "checked"]
    assert not p.needs_confirmation
    # perf's predecessor (production) is not in the plan: its gate is checked now.
    with pytest.raises(InvalidInput, match=r"does not run in production"):
        plan(
            project,
            None,
            "1.3.0",
            all_auto=True,
            versions_by_env={"production": "1.2.0"},
            healthy_by_env={"production": True},
        )


def test_env_and_all_auto_are_exclusive(project):
    with pytest.raises(InvalidInput, match=r"not both"):
        plan(project, "staging", "1.0.0", all_auto=True)
    with pytest.raises(InvalidInput, match=r"--env"):
        plan(project, None, "1.0.0")


def test_unknown_environment_lists_known(project):
    with pytest.raises(
        InvalidInput, match=r"unknown environment 'prod' .*dev, staging, qa, production, perf"
    ):
        plan(project, "prod", "1.0.0")


def test_downgrade_warns_and_up_to_date_is_reported(project):
    p = plan(
        project,
        "staging",
        "1.2.0",
        versions_by_env={"dev": "1.2.0", "staging": "1.3.0"},
        healthy_by_env={"dev": True},
    )
    assert any("downgrade" in w for w in p.warnings)
    p = plan(
        project,
        "staging",
        "1.2.0",
        versions_by_env={"dev": "1.2.0", "staging": "1.2.0"},
        healthy_by_env={"dev": True},
    )
    assert p.steps[0].up_to_date
