"""Versions and image references.

Versions are ordered by Semantic Versioning 2.0 precedence, so that "the newest
version" really is the highest one: ``1.10.0`` is newer than ``1.9.0`` and a
release is newer than its pre-releases (``1.0.0-rc.1 < 1.0.0``).

Rules beyond semver, so that every list of strings has one order:

- a leading ``v`` is accepted (``v1.2.3`` is ``1.2.3``);
- build metadata (``+build.5``) does not change precedence; versions that differ
  only there are ordered by their text, to stay deterministic;
- strings that are not semver (``latest``, ``main-3f2a``, ``1.2``) sort **below**
  every semver version, and among themselves by their text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import total_ordering

from progdel.config.images import split_image
from progdel.errors import InvalidInput, printable

_NUMBER = r"0|[1-9][0-9]*"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_SEMVER = re.compile(
    rf"^v?(?P<major>{_NUMBER})\.(?P<minor>{_NUMBER})\.(?P<patch>{_NUMBER})"
    rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
# What a container registry accepts as a tag (the OCI distribution spec's grammar).
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,128}")
_MAX_VERSION = 256


@total_ordering
@dataclass(frozen=True, eq=False)
class SemVer:
    """A parsed semantic version; compares by semver precedence."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()
    build: str = ""

    def _key(self) -> tuple[object, ...]:
        # A release ranks above any of its pre-releases; within pre-releases,
        # numeric identifiers rank below alphanumeric ones and compare as numbers,
        # and a shorter list of identifiers ranks below a longer one sharing its prefix
        # (tuple comparison gives exactly that).
        if not self.prerelease:
            pre: tuple[object, ...] = (1,)
        else:
            pre = (0, tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.prerelease))
        return (self.major, self.minor, self.patch, pre)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: SemVer) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(str(p) for p in self.prerelease)
        if self.build:
            text += "+" + self.build
        return text


def parse_semver(text: str) -> SemVer | None:
    """The semantic version in ``text`` (a leading ``v`` allowed), or None if it is not one."""
    if len(text) > _MAX_VERSION:  # no tag is longer, and int() refuses numbers of over 4300 digits
        return None
    m = _SEMVER.match(text.strip())
    if m is None:
        return None
    pre: tuple[int | str, ...] = ()
    if m["pre"]:
        pre = tuple(int(p) if p.isdigit() else p for p in m["pre"].split("."))
    return SemVer(int(m["major"]), int(m["minor"]), int(m["patch"]), pre, m["build"] or "")


def version_key(text: str) -> tuple[object, ...]:
    """A sort key: semver precedence, non-semver strings below all semver ones."""
    sv = parse_semver(text)
    if sv is None:
        return (0, text)
    return (1, sv._key(), text)


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` ranks below, equal to or above ``b``."""
    ka, kb = version_key(a), version_key(b)
    return (ka > kb) - (ka < kb)


def sort_versions(versions: Iterable[str]) -> list[str]:
    """``versions`` from oldest to newest."""
    return sorted(versions, key=version_key)


def newest(versions: Iterable[str | None]) -> str | None:
    """The highest version in ``versions`` (None entries skipped), or None if there is none."""
    present = [v for v in versions if v]
    if not present:
        return None
    return max(present, key=version_key)


def same_version(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` name the same artifact: equal text, up to a leading ``v``."""
    return _strip_v(a) == _strip_v(b)


def _strip_v(text: str) -> str:
    text = text.strip()
    if text[:1] in ("v", "V") and parse_semver(text) is not None:
        return text[1:]
    return text


# -- image references -------------------------------------------------------------


def image_repository(image_ref: str) -> str:
    """The image reference without tag or digest."""
    return split_image(image_ref)[0]


def image_tag(image_ref: str) -> str | None:
    """The version an image reference runs: its tag, else its digest, else None.

    ``registry:5000/app:1.2.3`` gives ``1.2.3``; ``app@sha256:..`` gives the digest
    ``sha256:..`` (the only name it has); ``app`` (implicitly ``latest``) gives None,
    because "latest" says nothing about what actually runs.
    """
    _, tag, digest = split_image(image_ref)
    return tag or digest


def with_tag(image_repo: str, version: str) -> str:
    """The image reference for ``version`` of ``image_repo``.

    A version that looks like a digest (``sha256:...``) gives ``repo@sha256:...``.
    Any tag or digest already on ``image_repo`` is replaced. A version that is not a
    valid image tag (semver build metadata's ``+``, spaces...) is refused rather than
    silently rewritten.
    """
    repo = image_repository(image_repo)
    if not repo:
        raise InvalidInput(f"image {image_repo!r}: no repository")
    version = check_version(version.strip())
    if _DIGEST.fullmatch(version):
        return f"{repo}@{version}"
    return f"{repo}:{version}"


def is_version(text: str) -> bool:
    """True for an image tag (``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``) or a digest (``sha256:...``)."""
    return bool(_TAG.fullmatch(text) or _DIGEST.fullmatch(text))


def check_version(version: str, source: str = "version") -> str:
    """``version`` if it can name an image (a tag, or a digest); else ``InvalidInput`` naming
    ``source`` (``--version``, ``the newest version in staging``). Checked before anything is
    done: a version becomes an image reference, a git branch, a commit message and a record, and
    ``1.4.0;id``, ``-f`` or an escape sequence must be none of those."""
    if is_version(version):
        return version
    shown = printable(version if len(version) <= 40 else version[:40] + "...")
    raise InvalidInput(
        f"{source} '{shown}' is not a valid image tag: letters, digits, '_', '.' and '-', at most 128 "
        "characters, not starting with '.' or '-'"
    )
