import pytest

from progdel.errors import InvalidInput
from progdel.promote.versions import (
    compare_versions,
    image_repository,
    image_tag,
    newest,
    parse_semver,
    same_version,
    sort_versions,
    split_image,
    with_tag,
)


def test_newest_picks_the_highest_not_the_lowest():
    # The case a max-keeping loop with an inverted comparison gets wrong.
    assert newest(["1.0.0", "1.2.0", "1.1.0"]) == "1.2.0"
    assert newest(["1.2.0", "1.0.0"]) == "1.2.0"
    assert newest(["1.0.0", "1.2.0"]) == "1.2.0"


def test_numeric_not_lexical_order():
    assert compare_versions("1.10.0", "1.9.0") == 1
    assert newest(["1.9.0", "1.10.0", "1.2.0"]) == "1.10.0"
    assert compare_versions("2.0.0", "10.0.0") == -1


def test_prereleases_rank_below_release_and_by_semver_rules():
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
    ]
    assert sort_versions(reversed(ordered)) == ordered
    assert newest(["1.0.0-rc.1", "1.0.0"]) == "1.0.0"
    assert newest(["1.0.0-rc.1", "0.9.9"]) == "1.0.0-rc.1"


def test_leading_v_and_build_metadata():
    assert parse_semver("v1.2.3") == parse_semver("1.2.3")
    assert parse_semver("1.2.3+build.5") == parse_semver("1.2.3")
    assert str(parse_semver("v1.2.3-rc.1+b7")) == "1.2.3-rc.1+b7"
    assert same_version("v1.2.3", "1.2.3")
    assert not same_version("1.2.3", "1.2.4")


def test_non_semver_sorts_below_semver_and_by_text():
    assert parse_semver("latest") is None
    assert parse_semver("1.2") is None
    assert parse_semver("01.2.3") is None
    assert sort_versions(["1.0.0", "main-abc", "latest", "0.0.1"]) == ["latest", "main-abc", "0.0.1", "1.0.0"]
    assert newest(["latest", "0.1.0"]) == "0.1.0"
    assert newest(["latest"]) == "latest"
    assert newest([]) is None
    assert newest([None, ""]) is None


@pytest.mark.parametrize(
    ("ref", "repo", "tag", "digest"),
    [
        ("nginx", "nginx", None, None),
        ("web:1.2.3", "web", "1.2.3", None),
        ("localhost:5000/app:1.2.3", "localhost:5000/app", "1.2.3", None),
        ("localhost:5000/app", "localhost:5000/app", None, None),
        ("ghcr.io/o/app@sha256:" + "a" * 64, "ghcr.io/o/app", None, "sha256:" + "a" * 64),
        ("r:5000/o/app:v2@sha256:" + "b" * 64, "r:5000/o/app", "v2", "sha256:" + "b" * 64),
    ],
)
def test_split_image(ref, repo, tag, digest):
    assert split_image(ref) == (repo, tag, digest)
    assert image_repository(ref) == repo


def test_image_tag_and_with_tag():
    assert image_tag("localhost:5000/app:1.2.3") == "1.2.3"
    assert image_tag("localhost:5000/app") is None
    assert image_tag("app@sha256:" + "c" * 64) == "sha256:" + "c" * 64
    assert with_tag("localhost:5000/app", "1.2.3") == "localhost:5000/app:1.2.3"
    assert with_tag("localhost:5000/app:1.0.0", "1.2.3") == "localhost:5000/app:1.2.3"
    assert with_tag("app", "sha256:" + "d" * 64) == "app@sha256:" + "d" * 64
    with pytest.raises(InvalidInput, match="is not a valid image tag"):
        with_tag("app", "1.2.3+build")
