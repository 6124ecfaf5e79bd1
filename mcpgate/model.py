"""The validated model of one host's stack: the single source every config is derived from.

The inventory gives, per host, a plain ``mcpgate`` dict. :func:`load_stack` turns it into a
:class:`Stack` or raises :class:`~mcpgate.errors.InventoryError` listing every problem with the
field it sits in and how to fix it. Everything else (issuer, audience, routes, rules, container
names) is a property of the model, computed here once.

Example::

    stack = load_stack("gateway.lan", host.data.mcpgate)
    stack.issuer      # "https://mcp-gateway.example-tailnet.ts.net/auth"
    stack.resource    # "https://mcp-gateway.example-tailnet.ts.net/mcp"
"""

from __future__ import annotations

import ipaddress
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import InventoryError

# Authelia 4.39.20 is the release known to work with MCP clients (4.39.21-22 break them); the
# rendered configuration follows its schema, so the image must be exactly this version.
AUTHELIA_VERSION = "4.39.20"

CLAUDE_REDIRECT_URIS = (
    "https://claude.ai/api/mcp/auth_callback",
    "https://claude.com/api/mcp/auth_callback",
)

# Scopes Authelia defines itself; an inventory may not redeclare them as custom scopes.
STANDARD_SCOPES = frozenset(
    {"openid", "offline_access", "profile", "email", "address", "phone", "groups", "authelia.bearer.authz"}
)
# What Authelia 4.39's discovery advertises as scopes_supported (a fixed list, internal/oidc/discovery.go):
# a client that asks for "every scope the authorization server supports" asks for these.
AUTHELIA_DISCOVERY_SCOPES = ("offline_access", "openid", "profile", "email", "address", "phone", "groups")

# Names the stack's own containers answer to on the private network.
RESERVED_SERVICE_NAMES = frozenset({"redis", "authelia", "agentgateway", "ingress", "mcpgate"})

# Ports agentgateway keeps for itself inside its container (admin, metrics, readiness).
AGENTGATEWAY_INTERNAL_PORTS = {15000: "admin", 15020: "metrics", 15021: "readiness"}

_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_SERVICE_NAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?$")
_SCOPE = re.compile(r"^[a-z][a-z0-9_.-]*(?::[a-z0-9_.-]+)*$")
_TOOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_USERNAME = re.compile(r"^[a-z][a-z0-9._-]{0,31}$")
_GROUP = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{2,63}$")
_SECRET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VOLUME_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_UID_GID = re.compile(r"^\d{1,10}:\d{1,10}$")
_MEMORY = re.compile(r"^[1-9]\d*[kmg]$")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")

_psl = PublicSuffixList()


def image_tag(image: str) -> str | None:
    """The tag of an image reference (``None`` when it has none), ignoring a registry port."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def _check_pinned_image(image: str) -> str:
    """A tag (``redis:7.4.2-alpine``), a tag and its digest (``...:7.4.2-alpine@sha256:<64 hex>``), or
    a digest alone; never ``latest`` or no pin at all."""
    image = image.strip()
    if not image or any(c.isspace() for c in image):
        raise ValueError(f"{image!r} is not an image reference")
    if "@" in image and not _DIGEST.search(image):
        raise ValueError(f"image {image!r}: a digest is written @sha256:<64 lower-case hex digits>")
    if image.count("@") > 1:
        raise ValueError(f"image {image!r} has more than one digest")
    if _DIGEST.search(image):
        if image_tag(image) == "latest":
            raise ValueError(f"image {image!r}: pin a version tag next to the digest, not 'latest'")
        return image
    tag = image_tag(image)
    if tag is None:
        raise ValueError(f"image {image!r} has no tag: pin an exact version, e.g. {image}:1.2.3")
    if tag == "latest":
        raise ValueError(f"image {image!r} uses 'latest': pin an exact version tag or a @sha256 digest")
    return image


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_dns_name(value: str, what: str) -> str:
    if value != value.lower():
        raise ValueError(f"{what} {value!r} must be lower case")
    if len(value) > 253 or "." not in value:
        raise ValueError(f"{what} {value!r} is not a fully qualified DNS name (e.g. node.tailnet.ts.net)")
    for label in value.split("."):
        if not _DNS_LABEL.match(label):
            raise ValueError(
                f"{what} {value!r} is not a valid DNS name: label {label!r} must be 1-63 characters "
                "of a-z, 0-9 and '-', not starting or ending with '-'"
            )
    return value


class _Strict(BaseModel):
    # Unknown keys are typos more often than not: refuse them.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class User(_Strict):
    """A person who may sign in (password + TOTP)."""

    name: str
    display_name: str = Field(min_length=1)
    email: str
    groups: list[str] = Field(default_factory=list)
    # Scopes this person may use besides those their groups grant (see Stack.groups).
    scopes: list[str] | None = None

    @field_validator("groups")
    @classmethod
    def _groups(cls, v: list[str]) -> list[str]:
        for g in v:
            if not _GROUP.match(g):
                raise ValueError(f"group name {g!r} must match {_GROUP.pattern}")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _USERNAME.match(v):
            raise ValueError(f"user name {v!r} must match {_USERNAME.pattern} (lower case, starts with a letter)")
        return v

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        if not _EMAIL.match(v):
            raise ValueError(f"{v!r} is not an e-mail address")
        return v


class Client(_Strict):
    """An OAuth client registered in Authelia (Claude.ai, Claude Code, MCP Inspector...)."""

    id: str
    name: str = Field(min_length=1)
    redirect_uris: list[str] = Field(min_length=1)
    # Claude.ai sends its pre-registered secret in the POST body (client_secret_post).
    auth_method: Literal["client_secret_post", "client_secret_basic", "none"] = "client_secret_post"
    # Scopes whose tools this client may use; None means every declared scope. The client may still
    # ask for and be granted any scope (clients ask for what the server advertises, and a refused
    # scope would fail the whole sign-in): the gateway allows a tool only to the clients listed here.
    scopes: list[str] | None = None
    consent: Literal["explicit", "implicit", "pre-configured"] = "pre-configured"
    consent_duration: str = "1 week"

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _CLIENT_ID.match(v):
            raise ValueError(f"client id {v!r} must be 3-64 characters of A-Z a-z 0-9 . _ ~ -")
        return v

    @field_validator("redirect_uris")
    @classmethod
    def _redirects(cls, uris: list[str]) -> list[str]:
        for uri in uris:
            parts = urlsplit(uri)
            if parts.fragment:
                raise ValueError(f"redirect URI {uri!r} must not have a #fragment")
            if parts.scheme == "https" and parts.hostname:
                continue
            if parts.scheme == "http" and parts.hostname and _is_loopback_host(parts.hostname):
                continue
            raise ValueError(
                f"redirect URI {uri!r} must be an absolute https:// URL "
                "(plain http:// is allowed only for loopback: 127.0.0.1, [::1], localhost)"
            )
        if len(set(uris)) != len(uris):
            raise ValueError("redirect URIs are listed twice")
        return uris

    @model_validator(mode="after")
    def _claude_needs_post(self) -> Client:
        if any(u in CLAUDE_REDIRECT_URIS for u in self.redirect_uris) and self.auth_method != "client_secret_post":
            raise ValueError(
                f"client {self.id!r} redirects to Claude.ai, which sends its secret with client_secret_post; "
                f"set auth_method: client_secret_post (not {self.auth_method})"
            )
        return self

    @property
    def public(self) -> bool:
        return self.auth_method == "none"


class Volume(_Strict):
    """A mount into a backend container: a host folder or a named volume."""

    source: str
    target: str
    read_only: bool = False

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if v.startswith("/"):
            if v.rstrip("/") in ("", "/proc", "/sys", "/dev", "/etc", "/var/run", "/run") or "docker.sock" in v:
                raise ValueError(f"mounting {v!r} into a backend would hand it the host; mount a data folder")
            if ".." in Path(v).parts:
                raise ValueError(f"host path {v!r} must not contain '..'")
            return v
        if not _VOLUME_NAME.match(v):
            raise ValueError(
                f"volume source {v!r} must be an absolute host path or a volume name ({_VOLUME_NAME.pattern})"
            )
        return v

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        if not v.startswith("/") or v == "/" or ".." in Path(v).parts:
            raise ValueError(f"volume target {v!r} must be an absolute path inside the container (not '/')")
        return v

    @property
    def is_host_path(self) -> bool:
        return self.source.startswith("/")


class Limits(_Strict):
    """Resource limits for a backend container."""

    memory: str = "512m"
    cpus: float = Field(default=1.0, gt=0, le=64)
    pids: int = Field(default=256, ge=16, le=65536)

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str) -> str:
        if not _MEMORY.match(v):
            raise ValueError(f"memory limit {v!r} must look like 256m or 2g")
        return v


class Backend(_Strict):
    """One MCP server behind the gateway: a container (``image`` or ``build``) or a remote ``url``."""

    name: str
    enabled: bool = True
    description: str = ""
    image: str | None = None
    build: str | None = None  # a folder under files/ built into an image on the host
    base_image: str | None = None  # BASE_IMAGE build argument for ``build``
    url: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    path: str = "/mcp"
    env: dict[str, str] = Field(default_factory=dict)
    volumes: list[Volume] = Field(default_factory=list)
    # scope -> tools needing it; a tool not listed is denied.
    tools: dict[str, list[str]] | None = None
    # or one scope for every tool of the target
    scope: str | None = None
    token_secret: str | None = None  # sent by the gateway as "Authorization: Bearer <token>"
    user: str | None = None  # uid:gid the container runs as; None keeps the image's
    limits: Limits = Field(default_factory=Limits)
    read_only_rootfs: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if "_" in v:
            raise ValueError(
                f"backend name {v!r} contains '_': agentgateway exposes tools as <target>_<tool> and splits "
                "at the first '_'; use '-' instead"
            )
        if not _SERVICE_NAME.match(v):
            raise ValueError(f"backend name {v!r} must match {_SERVICE_NAME.pattern} (a DNS label, lower case)")
        if v in RESERVED_SERVICE_NAMES:
            raise ValueError(f"backend name {v!r} is taken by the stack itself; choose another name")
        return v

    @field_validator("image", "base_image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        return None if v is None else _check_pinned_image(v)

    @field_validator("build")
    @classmethod
    def _build(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[a-z0-9][a-z0-9_.-]*$", v):
            raise ValueError(f"build {v!r} must be the name of a folder under files/, e.g. notes-vault")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url {v!r} must be an absolute http(s) URL, e.g. http://homeassistant.lan:8123/api/mcp")
        return v

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/") or any(c.isspace() for c in v):
            raise ValueError(f"path {v!r} must start with '/'")
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not _ENV_NAME.match(key):
                raise ValueError(f"environment variable name {key!r} is invalid")
        return v

    @field_validator("tools")
    @classmethod
    def _tools(cls, v: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("tools is empty: list each tool under the scope it needs, or set scope")
        seen: dict[str, str] = {}
        for scope, names in v.items():
            if not names:
                raise ValueError(f"scope {scope!r} lists no tools")
            for tool in names:
                if not _TOOL.match(tool):
                    raise ValueError(f"tool name {tool!r} is invalid")
                if tool in seen:
                    where = "twice" if seen[tool] == scope else f"under both {seen[tool]!r} and {scope!r}"
                    raise ValueError(f"tool {tool!r} is listed {where}; give each tool one scope")
                seen[tool] = scope
        return v

    @field_validator("token_secret")
    @classmethod
    def _token(cls, v: str | None) -> str | None:
        if v is not None and not _SECRET_NAME.match(v):
            raise ValueError(f"token_secret {v!r} must match {_SECRET_NAME.pattern}")
        return v

    @field_validator("user")
    @classmethod
    def _user(cls, v: str | None) -> str | None:
        if v is not None and not _UID_GID.match(v):
            raise ValueError(f"user {v!r} must be numeric uid:gid, e.g. 10001:10001")
        return v

    @model_validator(mode="after")
    def _shape(self) -> Backend:
        kinds = [k for k in ("image", "build", "url") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"backend {self.name!r} needs exactly one of image, build or url (has: {kinds or 'none'})")
        if (self.tools is None) == (self.scope is None):
            raise ValueError(
                f"backend {self.name!r} needs exactly one of tools (scope -> tool names) or scope (one for all tools)"
            )
        if self.url is not None:
            extra = [k for k in ("port", "user", "base_image") if getattr(self, k) is not None] + [
                k for k in ("env", "volumes") if getattr(self, k)
            ]
            if extra:
                raise ValueError(f"backend {self.name!r} is a remote url; {', '.join(extra)} apply only to containers")
        else:
            if self.port is None:
                raise ValueError(
                    f"backend {self.name!r} runs a container: set port (the port its MCP server listens on)"
                )
            targets = [v.target for v in self.volumes]
            if len(set(targets)) != len(targets):
                raise ValueError(f"backend {self.name!r} mounts two volumes at the same target")
        if self.base_image is not None and self.build is None:
            raise ValueError(f"backend {self.name!r}: base_image applies only with build")
        return self

    @property
    def kind(self) -> Literal["image", "build", "url"]:
        return "url" if self.url else "build" if self.build else "image"

    @property
    def scopes(self) -> list[str]:
        """Scopes this backend's tools need, in declaration order."""
        return [self.scope] if self.scope else list(self.tools or {})

    @property
    def tool_scopes(self) -> dict[str, str]:
        """tool -> scope (empty for a whole-target scope)."""
        return {tool: scope for scope, names in (self.tools or {}).items() for tool in names}

    @property
    def target_url(self) -> str:
        """Where the gateway reaches this backend."""
        if self.url:
            return self.url
        return f"http://{self.name}:{self.port}{self.path}"


class Images(_Strict):
    """Pinned images for the stack's own services."""

    redis: str = "redis:7.4.2-alpine"
    authelia: str = f"authelia/authelia:{AUTHELIA_VERSION}"
    agentgateway: str = "cr.agentgateway.dev/agentgateway:v1.4.1"
    ingress: str = "caddy:2.8.4-alpine"

    @field_validator("redis", "authelia", "agentgateway", "ingress")
    @classmethod
    def _pinned(cls, v: str) -> str:
        return _check_pinned_image(v)

    @field_validator("authelia")
    @classmethod
    def _authelia_version(cls, v: str) -> str:
        # With or without a digest, the tag says which release it is: the configuration is
        # written for exactly one.
        if (image_tag(v) or "").lstrip("v") != AUTHELIA_VERSION:
            raise ValueError(
                f"authelia image {v!r}: the configuration is written for Authelia {AUTHELIA_VERSION} "
                f"(4.39.21-22 break MCP clients); use the {AUTHELIA_VERSION} tag (a @sha256 digest may follow it)"
            )
        return v


class Docker(_Strict):
    """Where the Docker engine comes from."""

    # docker-ce: Docker's apt repository; debian: the distribution's docker.io;
    # existing: a working engine is already there and is left alone.
    install: Literal["docker-ce", "debian", "existing"] = "docker-ce"


class Tailscale(_Strict):
    """Tailscale node and Funnel. Off for the local demo and CI."""

    enabled: bool = True
    auth_key_secret: str = "tailscale-auth-key"
    funnel: bool = True

    @field_validator("auth_key_secret")
    @classmethod
    def _secret(cls, v: str) -> str:
        if not _SECRET_NAME.match(v):
            raise ValueError(f"auth_key_secret {v!r} must match {_SECRET_NAME.pattern}")
        return v


class ServiceUids(_Strict):
    """uid:gid each stack service runs as; config and secret files on the host are owned by it."""

    redis: str = "10379:10379"
    authelia: str = "10091:10091"
    agentgateway: str = "10300:10300"
    ingress: str = "10080:10080"

    @field_validator("redis", "authelia", "agentgateway", "ingress")
    @classmethod
    def _uid(cls, v: str) -> str:
        if not _UID_GID.match(v) or v.startswith("0:"):
            raise ValueError(f"{v!r} must be a numeric non-root uid:gid, e.g. 10091:10091")
        return v


class Stack(_Strict):
    """One host's whole stack."""

    hostname: str
    # Prefix of every container, network and volume the stack owns on the host's engine; two
    # stacks with different names never touch each other's (the tests deploy under their own).
    name: str = "mcpgate"
    base_dir: str = "/opt/mcpgate"
    ingress_port: int = Field(default=8088, ge=1024, le=65535)
    gateway_port: int = Field(default=3000, ge=1024, le=65535)
    images: Images = Field(default_factory=Images)
    docker: Docker = Field(default_factory=Docker)
    tailscale: Tailscale = Field(default_factory=Tailscale)
    uids: ServiceUids = Field(default_factory=ServiceUids)
    users: list[User] = Field(min_length=1)
    scopes: dict[str, str] = Field(min_length=1)
    # group -> scopes its members may use. With no groups here and no user's own scopes, every
    # person may use every scope; once either is given, a person may use only what is granted.
    groups: dict[str, list[str]] = Field(default_factory=dict)
    backends: list[Backend] = Field(min_length=1)
    clients: list[Client] = Field(min_length=1)
    access_token_lifespan: str = "1h"
    refresh_token_lifespan: str = "30d"

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, v: str) -> str:
        _check_dns_name(v, "hostname")
        if _psl.is_public(v) or _psl.privatesuffix(v) is None:
            raise ValueError(
                f"hostname {v!r} is a public suffix; browsers and Authelia refuse cookies for it. "
                "Use the full node name, e.g. mcp-gateway.example-tailnet.ts.net"
            )
        return v

    @field_validator("name")
    @classmethod
    def _stack_name(cls, v: str) -> str:
        if not _SERVICE_NAME.match(v):
            raise ValueError(
                f"name {v!r} must match {_SERVICE_NAME.pattern}: it prefixes container, network and volume names"
            )
        return v

    @field_validator("base_dir")
    @classmethod
    def _base_dir(cls, v: str) -> str:
        p = Path(v)
        if not p.is_absolute() or str(p) != v or v == "/" or ".." in p.parts or any(c.isspace() for c in v):
            raise ValueError(f"base_dir {v!r} must be a normalised absolute path other than '/', e.g. /opt/mcpgate")
        return v

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: dict[str, str]) -> dict[str, str]:
        for name, description in v.items():
            if name in STANDARD_SCOPES:
                raise ValueError(f"scope {name!r} is a standard OpenID scope; custom scopes need their own name")
            if not _SCOPE.match(name):
                raise ValueError(f"scope {name!r} must look like 'notes:read' ({_SCOPE.pattern})")
            if not description.strip():
                raise ValueError(f"scope {name!r} needs a description (users see it on the consent screen)")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> Stack:
        problems: list[str] = []

        def dupes(field: str, kind: str, names: list[str]) -> None:
            seen: set[str] = set()
            for n in names:
                if n in seen:
                    problems.append(f"{field}: {kind} {n!r} is declared twice; names must be unique")
                seen.add(n)

        dupes("users", "user", [u.name for u in self.users])
        dupes("backends", "backend", [b.name for b in self.backends])
        dupes("clients", "client", [c.id for c in self.clients])

        declared = set(self.scopes)
        hint = ", ".join(sorted(declared))
        for i, b in enumerate(self.backends):
            for scope in b.scopes:
                if scope not in declared:
                    where = "scope" if b.scope else f"tools[{scope!r}]"
                    problems.append(
                        f"backends[{i}] ({b.name}).{where}: unknown scope {scope!r}; "
                        f"declare it under scopes or use one of: {hint}"
                    )
        used = {s for b in self.backends for s in b.scopes}
        for scope in self.scopes:
            if scope not in used:
                problems.append(f"scopes: {scope!r} is declared but no backend's tools need it; remove it")
        for i, c in enumerate(self.clients):
            for scope in c.scopes or []:
                if scope not in declared:
                    problems.append(f"clients[{i}] ({c.id}).scopes: unknown scope {scope!r}; use one of: {hint}")
        for group, granted in self.groups.items():
            if not _GROUP.match(group):
                problems.append(f"groups: group name {group!r} must match {_GROUP.pattern}")
            for scope in granted:
                if scope not in declared:
                    problems.append(f"groups[{group!r}]: unknown scope {scope!r}; use one of: {hint}")
        for i, u in enumerate(self.users):
            for scope in u.scopes or []:
                if scope not in declared:
                    problems.append(f"users[{i}] ({u.name}).scopes: unknown scope {scope!r}; use one of: {hint}")
            if self.groups and u.scopes is None and not any(g in self.groups for g in u.groups):
                problems.append(
                    f"users[{i}] ({u.name}): is in no group that groups grants scopes to, so could use no tool; "
                    f"add the user to one of: {', '.join(self.groups)}, or give the user scopes"
                )

        if not any(b.enabled for b in self.backends):
            problems.append("backends: none is enabled; enable at least one")

        if self.gateway_port in AGENTGATEWAY_INTERNAL_PORTS:
            role = AGENTGATEWAY_INTERNAL_PORTS[self.gateway_port]
            problems.append(
                f"gateway_port: {self.gateway_port} clashes with agentgateway's own {role} port; choose another"
            )
        if self.tailscale.enabled and self.ingress_port in (41641,):
            problems.append("ingress_port: 41641 is Tailscale's own port; choose another")

        if self.tailscale.enabled:
            labels = self.hostname.split(".")
            if self.hostname.endswith(".ts.net") and len(labels) != 4:
                problems.append(f"hostname: {self.hostname!r} must be the node's MagicDNS name <node>.<tailnet>.ts.net")
            elif not self.hostname.endswith(".ts.net"):
                problems.append(
                    f"hostname: with Tailscale Funnel the public name is <node>.<tailnet>.ts.net, "
                    f"not {self.hostname!r}; or set tailscale.enabled = False"
                )

        secret_names = [b.token_secret for b in self.backends if b.token_secret]
        if self.tailscale.enabled:
            secret_names.append(self.tailscale.auth_key_secret)
        dupes("token_secret", "secret", secret_names)

        if problems:
            raise ValueError("\n".join(problems))
        return self

    # --- derived, once -------------------------------------------------------------------------

    @property
    def public_url(self) -> str:
        return f"https://{self.hostname}"

    @property
    def issuer(self) -> str:
        return f"{self.public_url}/auth"

    @property
    def resource(self) -> str:
        """The MCP endpoint and the access tokens' audience (RFC 8707 resource)."""
        return f"{self.public_url}/mcp"

    @property
    def resource_metadata_url(self) -> str:
        """Where the MCP endpoint's protected-resource metadata is (RFC 9728, path-inserted)."""
        return f"{self.public_url}/.well-known/oauth-protected-resource/mcp"

    @property
    def authelia_port(self) -> int:
        return 9091

    @property
    def enabled_backends(self) -> list[Backend]:
        return [b for b in self.backends if b.enabled]

    @cached_property
    def tool_scopes_in_use(self) -> list[str]:
        """The scopes the enabled backends' tools need, in inventory order."""
        seen: list[str] = []
        for b in self.enabled_backends:
            for s in b.scopes:
                if s not in seen:
                    seen.append(s)
        return seen

    @property
    def scopes_supported(self) -> list[str]:
        """Scopes an MCP client should ask for: those of enabled backends, then offline_access."""
        return [*self.tool_scopes_in_use, "offline_access"]

    @property
    def registered_scopes(self) -> list[str]:
        """What every client may ask Authelia for: the standard OIDC scopes (what discovery
        advertises) and every declared scope. Narrower per-client lists would fail a client's whole
        sign-in with invalid_scope; the limits are enforced at the gateway instead."""
        return ["openid", *(s for s in AUTHELIA_DISCOVERY_SCOPES if s != "openid"), *self.scopes]

    def client_tool_scopes(self, client: Client) -> list[str]:
        """Scopes whose tools the client may use."""
        return list(client.scopes) if client.scopes is not None else list(self.scopes)

    @property
    def limits_people(self) -> bool:
        return bool(self.groups) or any(u.scopes is not None for u in self.users)

    def user_tool_scopes(self, user: User) -> list[str]:
        """Scopes whose tools the person may use: every scope, or their own and their groups' grants."""
        if not self.limits_people:
            return list(self.scopes)
        granted = set(user.scopes or [])
        for group in user.groups:
            granted.update(self.groups.get(group, []))
        return [s for s in self.scopes if s in granted]

    def consent_name(self, client: Client) -> str:
        """The client's name on Authelia's consent screen, which also says what it is limited to."""
        if client.scopes is None:
            return client.name
        return f"{client.name} (tools limited to: {', '.join(client.scopes) or 'none'})"

    @property
    def token_secrets(self) -> list[str]:
        """User-supplied secrets the enabled backends need."""
        return [b.token_secret for b in self.enabled_backends if b.token_secret]


def _format_errors(err: ValidationError) -> list[str]:
    problems: list[str] = []
    for e in err.errors():
        loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in e["loc"]).replace(".[", "[")
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if e["type"] == "extra_forbidden":
            msg = "unknown field (a typo?); remove it"
        elif e["type"] == "missing":
            msg = "is required"
        for line in msg.split("\n"):
            problems.append(f"{loc}: {line}" if loc else line)
    return problems


def load_stack(host: str, data: Any) -> Stack:
    """Validate one host's ``mcpgate`` inventory data; raise InventoryError naming every problem."""
    if data is None:
        raise InventoryError(host, ["no 'mcpgate' data: give the host an mcpgate = {...} dict in the inventory"])
    if isinstance(data, Stack):
        return data
    if not isinstance(data, dict):
        raise InventoryError(host, [f"'mcpgate' must be a dict, not {type(data).__name__}"])
    try:
        return Stack.model_validate(data)
    except ValidationError as err:
        raise InventoryError(host, _format_errors(err)) from None


def split_uid(spec: str) -> tuple[int, int]:
    uid, gid = spec.split(":")
    return int(uid), int(gid)
