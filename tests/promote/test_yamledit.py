import difflib

import pytest
import yaml

from progdel.errors import InvalidInput
from progdel.promote.yamledit import get_value, parse_key, set_value

ENV_FILE = """\
# Production environment: edited by progdel promote.
apps:
  # the shop front
  web:
    image: registry.example.com/shop/web
    version: "1.1.0"   # pinned by release
  api:
    version: '2.0.0'
  worker: {version: 3.1.0, replicas: 2}

releases:
  - name: web
    chart: shop/web
    version: 1.1.0 # plain
  - name: api
    version: 2.0.0
"""


def changed_lines(old: str, new: str) -> list[str]:
    return [
        ln
        for ln in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
        if ln[:1] in "+-" and not ln.startswith(("+++", "---"))
    ]


def test_double_quoted_value_keeps_quotes_and_comment():
    edit = set_value(ENV_FILE, "apps.{app}.version", "1.2.0", app="web")
    assert edit.changed and edit.previous == "1.1.0"
    assert changed_lines(ENV_FILE, edit.text) == [
        '-    version: "1.1.0"   # pinned by release',
        '+    version: "1.2.0"   # pinned by release',
    ]


def test_single_quoted_value_keeps_single_quotes():
    edit = set_value(ENV_FILE, "apps.api.version", "2.1.0")
    assert changed_lines(ENV_FILE, edit.text) == ["-    version: '2.0.0'", "+    version: '2.1.0'"]


def test_list_selector_and_plain_value():
    edit = set_value(ENV_FILE, "releases[name={app}].version", "1.2.0", app="web")
    assert changed_lines(ENV_FILE, edit.text) == [
        "-    version: 1.1.0 # plain",
        "+    version: 1.2.0 # plain",
    ]
    assert yaml.safe_load(edit.text)["releases"][1]["version"] == "2.0.0"


def test_index_and_flow_mapping():
    edit = set_value(ENV_FILE, "releases[1].version", "2.2.0")
    assert changed_lines(ENV_FILE, edit.text) == ["-    version: 2.0.0", "+    version: 2.2.0"]
    edit = set_value(ENV_FILE, "apps.worker.version", "3.2.0")
    assert changed_lines(ENV_FILE, edit.text) == [
        "-  worker: {version: 3.1.0, replicas: 2}",
        "+  worker: {version: 3.2.0, replicas: 2}",
    ]


def test_plain_value_that_would_change_type_is_quoted():
    edit = set_value("version: 1.1.0\n", "version", "1.2")
    assert edit.text == 'version: "1.2"\n'
    assert yaml.safe_load(edit.text) == {"version": "1.2"}


def test_same_value_is_unchanged():
    edit = set_value(ENV_FILE, "apps.web.version", "1.1.0")
    assert not edit.changed and edit.text == ENV_FILE


def test_missing_last_key_is_added_with_the_mapping_indentation():
    edit = set_value(ENV_FILE, "apps.api.image", "registry.example.com/shop/api")
    assert changed_lines(ENV_FILE, edit.text) == ["+    image: registry.example.com/shop/api"]
    assert yaml.safe_load(edit.text)["apps"]["api"] == {
        "image": "registry.example.com/shop/api",
        "version": "2.0.0",
    }
    edit = set_value(ENV_FILE, "releases[name=api].chart", "shop/api")
    assert yaml.safe_load(edit.text)["releases"][1] == {
        "name": "api",
        "chart": "shop/api",
        "version": "2.0.0",
    }
    assert len(changed_lines(ENV_FILE, edit.text)) == 1


def test_missing_intermediate_key_is_a_clear_error():
    with pytest.raises(
        InvalidInput, match=r"env/values.yaml: apps.cart.version: not found \(apps.cart does not"
    ):
        set_value(ENV_FILE, "apps.{app}.version", "1.0.0", app="cart", source="env/values.yaml")


def test_non_scalar_target_and_alias_are_refused():
    with pytest.raises(InvalidInput, match=r"apps.web: is a mapping"):
        set_value(ENV_FILE, "apps.web", "1.0.0")
    text = "base: &v 1.0.0\nweb:\n  version: *v\n"
    with pytest.raises(InvalidInput, match=r"web.version"):
        set_value(text, "web.version", "2.0.0")


def test_get_value_and_key_parsing():
    assert get_value(ENV_FILE, "releases[name=web].version") == "1.1.0"
    assert get_value(ENV_FILE, "apps.cart.version") is None
    assert parse_key("releases[name={app}].version", "web") == ["releases", ("name", "web"), "version"]
    assert parse_key("a[2].b") == ["a", 2, "b"]
    for bad in ("", "a..b", "a.", "a[x"):
        with pytest.raises(ValueError):
            parse_key(bad)
