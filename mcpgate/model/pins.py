"""The pin policy of the stack's own images: the proven versions by default, others with a warning,
the releases known to break this stack refused.

"Proven" means this project's end-to-end suite (with the test harness) and the day-one test passed
with that version. Another pin is the inventory's choice: the deploy uses it and ``mcpgate check``
says it is unproven, and what upstream changed that the stack relies on.

Example::

    pin_warnings(Images(agentgateway="cr.agentgateway.dev/agentgateway:v1.6.0"))
    # ["images.agentgateway: ... v1.6.0 is not the version this project proves (v1.4.1) ..."]
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel

from .image_refs import AUTHELIA_VERSION, PinnedImage, image_tag

# The defaults of `images`, each the version proven end to end here.
PROVEN_IMAGES = {
    "redis": "redis:7.4.2-alpine",
    "authelia": f"authelia/authelia:{AUTHELIA_VERSION}",
    "agentgateway": "cr.agentgateway.dev/agentgateway:v1.4.1",
    "ingress": "caddy:2.8.4-alpine",
}

# Authelia releases that break exactly this stack, with why (both regressions are in both).
_AUTHELIA_412X = (
    "it rejects every RFC 8707 resource at the token exchange, so no MCP client gets a token "
    "(authelia#12970, fixed in 4.39.23 by authelia#12973), and it matches path-based audiences as "
    "exact strings (authelia#12984, fixed by authelia#12992)"
)
KNOWN_BAD_AUTHELIA = {"4.39.21": _AUTHELIA_412X, "4.39.22": _AUTHELIA_412X}

# What a move away from the proven version must re-check, by release (upstream's changes that touch
# what this stack relies on). Shown by `mcpgate check` for a pin at or beyond that release.
_AGENTGATEWAY_CHANGES = (
    (
        (1, 5),
        "v1.5 requires the iss and aud claims whenever issuer and audiences are configured "
        "(agentgateway#2993; Authelia's tokens carry both, and this stack already requires them)",
    ),
    (
        (1, 6),
        "v1.6 enforces nbf with 60 s of clock skew (a host whose clock runs behind Authelia's refuses fresh tokens)",
    ),
)
_AUTHELIA_CHANGES = (
    (
        (4, 39, 23),
        "4.39.21-22 changed how RFC 8707 resources and path-based audiences are matched (authelia#12970, "
        "#12984); the fixes (#12973, #12992) must hold for resource=https://<host>/mcp",
    ),
)
_RERUN = "re-run the e2e suite with the test harness and the day-one test before relying on it (README: Moving a pin)"

_AUTHELIA_439 = re.compile(r"^4\.39\.(\d+)$")


def _version(tag: str | None) -> tuple[int, ...] | None:
    """The numeric release of a tag: "v1.4.1" and "1.4.1-alpine" are (1, 4, 1); None if it has none."""
    m = re.match(r"^v?(\d+(?:\.\d+)*)", tag or "")
    return tuple(int(p) for p in m.group(1).split(".")) if m else None


def _authelia_release(image: str) -> str:
    # The configuration follows Authelia 4.39's schema: any 4.39 patch release but the known-bad
    # ones, named by its tag (a @sha256 digest may follow it).
    tag = (image_tag(image) or "").lstrip("v")
    if tag in KNOWN_BAD_AUTHELIA:
        raise ValueError(
            f"authelia image {image!r}: Authelia {tag} breaks this stack: {KNOWN_BAD_AUTHELIA[tag]}; "
            f"use {AUTHELIA_VERSION} (proven here) or 4.39.23 or later"
        )
    if not _AUTHELIA_439.match(tag):
        raise ValueError(
            f"authelia image {image!r}: the configuration is written for Authelia 4.39; pin a 4.39 patch "
            f"release by its tag, e.g. authelia/authelia:{AUTHELIA_VERSION} (proven here; a @sha256 digest may "
            "follow the tag)"
        )
    return image


# A pinned image of an Authelia 4.39 release that is not known to break this stack.
AutheliaImage = Annotated[PinnedImage, AfterValidator(_authelia_release)]


def pin_warnings(images: BaseModel) -> list[str]:
    """One line per image pinned to another version than the proven one: that it is unproven, what
    upstream changed since that the stack relies on, and what to re-run. ``images`` is the stack's
    :class:`~mcpgate.model.Images` (read by the field names of :data:`PROVEN_IMAGES`; not imported,
    since Images takes its defaults from here)."""
    warnings = []
    for field, proven in PROVEN_IMAGES.items():
        pinned = getattr(images, field)
        tag, proven_tag = image_tag(pinned), image_tag(proven)
        if tag == proven_tag:
            continue
        changes: tuple[tuple[tuple[int, ...], str], ...] = ()
        if field == "agentgateway":
            changes = _AGENTGATEWAY_CHANGES
        elif field == "authelia":
            changes = _AUTHELIA_CHANGES
        version = _version(tag)
        to_check = [note for since, note in changes if version is not None and version >= since]
        warnings.append(
            f"images.{field}: {pinned} is not the version this project proves ({proven_tag}): unproven"
            + (f"; re-check: {'; '.join(to_check)}" if to_check else "")
            + f"; {_RERUN}"
        )
    return warnings
