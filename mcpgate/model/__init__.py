"""The validated model of one host's stack: the single source every config is derived from.

The inventory gives, per host, a plain ``mcpgate`` dict. :func:`load_stack` turns it into a
:class:`Stack` or raises :class:`~mcpgate.errors.InventoryError` listing every problem with the
field it sits in and how to fix it. Everything else (issuer, audience, routes, rules, container
names) is a property of the model, computed here once.

Example::

    stack = load_stack("gateway.lan", host.data.mcpgate)
    stack.issuer      # "https://mcp-gateway.example-tailnet.ts.net/auth"
    stack.resource    # "https://mcp-gateway.example-tailnet.ts.net/mcp"

The package, by concern:

- :mod:`.stack_model`: :class:`Stack` and what it derives;
- :mod:`.stack_checks`: the checks across the whole stack (names, scopes, ports, host paths, secrets);
- :mod:`.loading`: :func:`load_stack`, the fields' checks then the whole stack's;
- :mod:`.network_plan`: the stack's networks and the subnets carved for them from the pool;
- :mod:`.people`: :class:`User` and :class:`Client`;
- :mod:`.mcp_backend`: :class:`Backend` and its :class:`Volume`, :class:`BackendSecret`, :class:`Limits`;
- :mod:`.settings`: the stack's settings blocks (images, Docker, Tailscale, uids, session, rate limits);
- field types, each with its validator and message: :mod:`.fields` (names, ids, uid:gid, a
  backend's env and tools), :mod:`.durations`, :mod:`.mount_paths`, :mod:`.image_refs`, :mod:`.pins` (the proven and the
  known-bad image versions),
  :mod:`.addresses` (hostname, URLs, network pool);
- :mod:`.strict`: the base model every one of them derives from.
"""

from .durations import DURATION as _DURATION  # the tests match against the pattern itself
from .durations import Duration, duration_seconds
from .fields import (
    RESERVED_SERVICE_NAMES,
    STANDARD_SCOPES,
    EnvVarName,
    SecretName,
    ServiceUidGid,
    UidGid,
    split_uid,
)
from .image_refs import AUTHELIA_VERSION, PinnedImage, image_tag
from .loading import load_stack
from .mcp_backend import Backend, BackendSecret, Limits, Volume
from .mount_paths import ContainerPath, host_path_danger
from .people import CLAUDE_ACCESS_TOKEN_LIFESPAN, CLAUDE_REDIRECT_URIS, Client, User
from .pins import KNOWN_BAD_AUTHELIA, PROVEN_IMAGES, pin_warnings
from .settings import Audit, Backup, Docker, Images, RateLimits, Retention, ServiceUids, Session, Tailscale
from .stack_model import AUTHELIA_DISCOVERY_SCOPES, CORS_ENDPOINTS, Stack

__all__ = [
    "AUTHELIA_DISCOVERY_SCOPES",
    "AUTHELIA_VERSION",
    "CLAUDE_ACCESS_TOKEN_LIFESPAN",
    "CLAUDE_REDIRECT_URIS",
    "CORS_ENDPOINTS",
    "KNOWN_BAD_AUTHELIA",
    "PROVEN_IMAGES",
    "RESERVED_SERVICE_NAMES",
    "STANDARD_SCOPES",
    "_DURATION",
    "Audit",
    "Backend",
    "BackendSecret",
    "Backup",
    "Client",
    "ContainerPath",
    "Docker",
    "Duration",
    "EnvVarName",
    "Images",
    "Limits",
    "PinnedImage",
    "RateLimits",
    "Retention",
    "SecretName",
    "ServiceUidGid",
    "ServiceUids",
    "Session",
    "Stack",
    "Tailscale",
    "UidGid",
    "User",
    "Volume",
    "duration_seconds",
    "host_path_danger",
    "image_tag",
    "load_stack",
    "pin_warnings",
    "split_uid",
]
