"""Image references: pinned to a version tag, a digest or both, never ``latest``; Authelia's exact release.

Example::

    image_tag("registry:5000/team/app:1.2@sha256:...")   # "1.2"
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

# The Authelia release this project proves end to end (4.39.21-22 break MCP clients; see pins.py).
AUTHELIA_VERSION = "4.39.20"

_DIGEST_HEX = re.compile(r"^[0-9a-f]{64}$")
# Docker's reference grammar (distribution/reference): a tag, and the lower-case repository path.
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_DIGEST_SOURCE = "copy the whole digest from `docker buildx imagetools inspect <image>`"


def image_tag(image: str) -> str | None:
    """The tag of an image reference (``None`` when it has none), ignoring a registry port."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def _check_digest(image: str, digest: str) -> None:
    algorithm, _, hexdigits = digest.partition(":")
    if algorithm != "sha256" or not hexdigits:
        raise ValueError(f"image {image!r}: a digest is written @sha256:<64 hex characters>; {_DIGEST_SOURCE}")
    if not re.fullmatch(r"[0-9a-fA-F]+", hexdigits):
        raise ValueError(f"image {image!r}: a sha256 digest is 64 hex characters (0-9, a-f); {_DIGEST_SOURCE}")
    if len(hexdigits) != 64:
        raise ValueError(
            f"image {image!r}: a sha256 digest is 64 hex characters, this one has {len(hexdigits)} "
            f"(cut short?); {_DIGEST_SOURCE}"
        )
    if not _DIGEST_HEX.match(hexdigits):
        raise ValueError(f"image {image!r}: write the digest in lower case (@sha256:{hexdigits.lower()})")


def _check_pinned_image(image: str) -> str:
    """A tag (``redis:7.4.2-alpine``), a tag and its digest (``...:7.4.2-alpine@sha256:<64 hex>``), or
    a digest alone; never ``latest`` or no pin at all."""
    image = image.strip()
    if not image or any(c.isspace() for c in image):
        raise ValueError(f"{image!r} is not an image reference")
    if image.count("@") > 1:
        raise ValueError(f"image {image!r} has more than one digest")
    name, _, digest = image.partition("@")
    if digest:
        _check_digest(image, digest)
    tag = image_tag(name)
    repository = name[: len(name) - len(tag) - 1] if tag is not None else name
    if tag is not None and tag.startswith("sha256:"):
        raise ValueError(
            f"image {image!r}: a digest follows '@', not ':': write {repository}@{tag} "
            f"(or {repository}:<tag>@{tag} to keep the version in sight)"
        )
    if tag is not None and not _TAG.match(tag):
        raise ValueError(
            f"image {image!r}: tag {tag!r} must be 1-128 characters of A-Z a-z 0-9 _ . - (not starting with . or -)"
        )
    parts = repository.split("/")
    # The first part is a registry when it looks like a host (a dot, a port, or localhost).
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    if not all(_PATH_COMPONENT.match(p) for p in parts):
        raise ValueError(
            f"image {image!r}: the repository {'/'.join(parts)!r} must be lower case a-z 0-9 separated by "
            "'/', '.', '_' or '-', as the registry spells it"
        )
    if digest:
        if tag == "latest":
            raise ValueError(f"image {image!r}: pin a version tag next to the digest, not 'latest'")
        return image
    if tag is None:
        raise ValueError(f"image {image!r} has no tag: pin an exact version, e.g. {image}:1.2.3")
    if tag == "latest":
        raise ValueError(f"image {image!r} uses 'latest': pin an exact version tag or a @sha256 digest")
    return image


PinnedImage = Annotated[str, AfterValidator(_check_pinned_image)]
