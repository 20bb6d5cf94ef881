"""Container image references: repository, tag and digest."""

from __future__ import annotations


def split_image(image_ref: str) -> tuple[str, str | None, str | None]:
    """``(repository, tag, digest)`` of an image reference.

    ``localhost:5000/team/app:1.2.3@sha256:ab..`` gives
    ``("localhost:5000/team/app", "1.2.3", "sha256:ab..")``: a colon in the first
    path component is a registry port, not a tag.
    """
    ref = image_ref.strip()
    digest: str | None = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    slash = ref.rfind("/")
    last = ref[slash + 1 :]
    tag: str | None = None
    if ":" in last:
        name, tag = last.split(":", 1)
        ref = ref[: slash + 1] + name
    return ref, tag or None, digest or None
