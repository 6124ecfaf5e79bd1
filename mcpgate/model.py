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
import posixpath
import re
from functools import cached_property
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import InventoryError
from .layout import (
    AGENTGATEWAY,
    AGENTGATEWAY_INTERNAL_PORTS,
    AUTH_PREFIX,
    AUTHELIA,
    MCP_PATH,
    network_slots,
)

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

# The OIDC endpoints a browser-based public client calls with fetch(): it exchanges and refreshes
# its code at the token endpoint, revokes on sign-out and may read userinfo. The authorization
# endpoint is a top-level navigation (no CORS), and introspection is for resource servers.
CORS_ENDPOINTS = ("token", "revocation", "userinfo")

# Names the stack's own containers answer to on the private network.
RESERVED_SERVICE_NAMES = frozenset({"redis", "authelia", "agentgateway", "ingress", "mcpgate"})

_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_SERVICE_NAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?$")
_SCOPE = re.compile(r"^[a-z][a-z0-9_.-]*(?::[a-z0-9_.-]+)*$")
_TOOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_USERNAME = re.compile(r"^[a-z][a-z0-9._-]{0,31}$")
_GROUP = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
# A client id also names the client's secret in the store (clients/<id>.secret), whose names are
# lower case: an id the store cannot hold would fail later, far from the inventory.
_CLIENT_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
_SECRET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_VOLUME_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_UID_GID = re.compile(r"^\d{1,10}:\d{1,10}$")
_MAX_ID = 4294967294  # 2**32 - 2: (uid_t)-1 means "no change" to chown
_MEMORY = re.compile(r"^[1-9]\d*[kmg]$")
_DIGEST_HEX = re.compile(r"^[0-9a-f]{64}$")
# Docker's reference grammar (distribution/reference): a tag, and the lower-case repository path.
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")

# Words that make an environment variable's name look like it holds a secret.
_SECRET_ENV_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY")

_psl = PublicSuffixList()


# --- durations -----------------------------------------------------------------------------------

# Authelia 4.39's duration syntax, copied from its configuration schema ("1h", "30d", "1 week",
# "1 hour and 30 minutes"; "M" is a month, "m" a minute). A bare whole number means seconds.
_DURATION_UNIT = r"(y|M|w|d|h|m|s|ms|((year|month|week|day|hour|minute|second|millisecond)s?))"
_DURATION = re.compile(rf"^\d+\s*{_DURATION_UNIT}(\s*(\s+and\s+)?\d+\s*{_DURATION_UNIT})*$")
_DURATION_TERM = re.compile(r"(\d+)\s*([A-Za-z]+)")
# Seconds per unit, to tell a duration of no time at all (a month taken as 30 days, a year as 365).
_UNIT_SECONDS = {
    "y": 365 * 86400,
    "year": 365 * 86400,
    "M": 30 * 86400,
    "month": 30 * 86400,
    "w": 7 * 86400,
    "week": 7 * 86400,
    "d": 86400,
    "day": 86400,
    "h": 3600,
    "hour": 3600,
    "m": 60,
    "minute": 60,
    "s": 1,
    "second": 1,
    "ms": 0.001,
    "millisecond": 0.001,
}
_DURATION_HELP = (
    'write a number and a unit as Authelia reads them, e.g. "1h", "30d", "1 week", "90 minutes", '
    '"1 hour and 30 minutes" (units y, M, w, d, h, m, s, ms or their names), or whole seconds (3600)'
)


def duration_seconds(value: int | str) -> float:
    """How long a duration Authelia accepts lasts, in seconds."""
    if isinstance(value, int):
        return value
    total = 0.0
    for number, unit in _DURATION_TERM.findall(value):
        total += int(number) * (_UNIT_SECONDS.get(unit) or _UNIT_SECONDS[unit[:-1]])
    return total


def _duration(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not a duration: {_DURATION_HELP}")
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[0-9]+", text):
            value = int(text)
        elif not _DURATION.match(text):
            raise ValueError(f"{value!r} is not a duration: {_DURATION_HELP}")
        elif duration_seconds(text) <= 0:
            raise ValueError(f'{value!r} lasts no time at all: give a duration longer than 0, e.g. "1h"')
        else:
            return text
    if value <= 0:
        raise ValueError(f"{value} seconds lasts no time at all: give a duration longer than 0, e.g. 3600")
    return value


# Authelia's duration syntax or whole seconds; rendered as given.
Duration = Annotated[int | str, PlainValidator(_duration)]


# --- paths ---------------------------------------------------------------------------------------


def _normalise(path: str) -> str:
    """The absolute path ``path`` names: '//etc/', '/etc/.' and '/etc/../etc' are all /etc."""
    return posixpath.normpath(re.sub(r"/+", "/", path))


def _at_or_under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _refuse_mount_syntax(value: str) -> None:
    bad = [c for c in ",=" if c in value]
    if bad:
        raise ValueError(
            f"{value!r} contains {' and '.join(repr(c) for c in bad)}: docker's --mount option string separates "
            "its fields with ',' and '=', so the path would be misread; use a path without them"
        )


def _refuse_dotdot(value: str, path: str) -> None:
    if ".." in value.split("/"):
        raise ValueError(f"{value!r} has a '..' component: write the path it means without it ({path})")


# Inside a container: what the runtime puts there itself, and the private tmpfs on /tmp.
_CONTAINER_RESERVED = {
    "/proc": "where the runtime mounts the kernel's process view",
    "/sys": "where the runtime mounts the kernel's sysfs",
    "/dev": "where the runtime sets up the container's devices",
    "/tmp": "the container's own small noexec tmpfs, which a mount there would collide with",
}


def _container_path(value: str) -> str:
    """An absolute, normalised path inside a container that the stack may mount something at."""
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute path inside the container, e.g. /data")
    _refuse_mount_syntax(value)
    path = _normalise(value)
    if path == "/":
        raise ValueError(f"{value!r} is the container's root: a mount there would cover its whole filesystem")
    for folder, why in _CONTAINER_RESERVED.items():
        if _at_or_under(path, folder):
            where = "is" if path == folder else "is under"
            raise ValueError(f"{value!r} {where} {folder}, {why}; choose another path, e.g. /data")
    _refuse_dotdot(value, path)
    return path


# An absolute path inside a backend container (volume targets, secret files), normalised.
ContainerPath = Annotated[str, AfterValidator(_container_path)]

# Host paths a backend must never see, nor a folder that holds one: each hands it the host.
_HOST_NEVER = {
    "/etc": "the host's configuration (accounts, password hashes, sudoers, cron)",
    "/root": "root's home (SSH keys, shell start-up files)",
    "/proc": "the kernel's view of every process on the host",
    "/sys": "the kernel's devices and settings",
    "/dev": "the host's devices (disks, memory)",
    "/boot": "the host's kernel and boot loader",
    "/run": "the host's runtime sockets, the Docker socket among them",
    "/var/run": "the host's runtime sockets, the Docker socket among them",
    "/var/lib/docker": "the Docker engine's data root (every container's files and volumes)",
    "/var/lib/containerd": "containerd's data root (every container's files)",
    "/usr": "the host's programs and libraries (a write there runs as root later)",
    "/bin": "the host's programs (a write there runs as root later)",
    "/sbin": "the host's programs (a write there runs as root later)",
    "/lib": "the host's libraries (a write there runs as root later)",
    "/lib32": "the host's libraries (a write there runs as root later)",
    "/lib64": "the host's libraries (a write there runs as root later)",
    "/libx32": "the host's libraries (a write there runs as root later)",
}


def host_path_danger(path: str) -> str | None:
    """Why mounting the normalised host ``path`` would hand a backend the host, or None (the
    stack's own base_dir is checked by Stack, which knows it)."""
    if path == "/":
        return "is the host's whole filesystem"
    if any(part.endswith("docker.sock") for part in path.split("/")):
        return "is the Docker socket (whoever can reach it is root on the host)"
    if ".ssh" in path.split("/"):
        return "holds SSH keys (whoever writes there can log in)"
    if path == "/home":
        return "holds every person's home (SSH keys, shell start-up files)"
    if posixpath.dirname(path) == "/home":
        return "is a person's whole home (SSH keys, shell start-up files)"
    for folder, what in _HOST_NEVER.items():
        if path == folder:
            return f"is {folder}, {what}"
        if _at_or_under(path, folder):
            return f"is under {folder}, {what}"
        if _at_or_under(folder, path):
            return f"holds {folder}, {what}"
    return None


# base_dir: the deploy makes it 0755 root:root and owns what is in it, so it must be a folder of its
# own. These may not be base_dir themselves...
_SYSTEM_DIRS = {
    "/": "the root of the filesystem",
    "/etc": "the host's configuration",
    "/var": "variable data of every program",
    "/var/lib": "every program's state",
    "/var/opt": "add-on packages' state",
    "/usr": "installed programs",
    "/usr/local": "locally installed programs",
    "/home": "the people's home folders",
    "/root": "root's home",
    "/srv": "the folder for served data, where your backends' data may live",
    "/opt": "the folder for add-on software",
    "/mnt": "the mount point for temporary file systems",
    "/media": "the mount point for removable media",
}
# ...and may not be inside these at all.
_SYSTEM_TREES = {
    "/proc": "the kernel's process view, not a real folder",
    "/sys": "the kernel's sysfs, not a real folder",
    "/dev": "the host's devices",
    "/run": "memory, emptied at every boot",
    "/var/run": "memory, emptied at every boot",
    "/tmp": "shared with every user and emptied at boot",
    "/var/tmp": "shared with every user and cleaned by systemd-tmpfiles",
    "/boot": "the kernel and boot loader",
    "/var/lib/docker": "the Docker engine's own data root",
    "/var/lib/containerd": "containerd's own data root",
    "/bin": "programs the package manager owns",
    "/sbin": "programs the package manager owns",
    "/lib": "libraries the package manager owns",
    "/lib32": "libraries the package manager owns",
    "/lib64": "libraries the package manager owns",
    "/libx32": "libraries the package manager owns",
    "/usr/bin": "programs the package manager owns",
    "/usr/sbin": "programs the package manager owns",
    "/usr/lib": "libraries the package manager owns",
    "/usr/share": "data the package manager owns",
}


def _base_dir(value: str) -> str:
    example = "give the stack a dedicated folder such as /opt/mcpgate"
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute path: {example}")
    if any(c.isspace() for c in value):
        raise ValueError(f"{value!r} contains white space: {example}")
    _refuse_mount_syntax(value)
    path = _normalise(value)
    owns = "the deploy makes base_dir 0755 root:root and its own folders root- or service-owned with tight modes"
    if path in _SYSTEM_DIRS:
        raise ValueError(f"{value!r} is a system folder ({_SYSTEM_DIRS[path]}); {owns}: {example}")
    for folder, what in _SYSTEM_TREES.items():
        if _at_or_under(path, folder):
            where = "is" if path == folder else "is under"
            raise ValueError(f"{value!r} {where} {folder} ({what}): {example}")
    _refuse_dotdot(value, path)
    return path


# --- names and ids -------------------------------------------------------------------------------


def _secret_name(value: str) -> str:
    if not _SECRET_NAME.match(value):
        raise ValueError(
            f"secret name {value!r} must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit "
            "(it names a file in the secrets store), e.g. 'calendar-api-key'"
        )
    return value


# A secret a person supplies with `mcpgate secrets set INVENTORY <name>`.
SecretName = Annotated[str, AfterValidator(_secret_name)]


def _secret_env_name(value: str) -> str:
    if not _SECRET_ENV_NAME.match(value):
        hint = re.sub(r"[^A-Z0-9_]", "_", value.upper())
        raise ValueError(f"environment variable name {value!r} must match [A-Z_][A-Z0-9_]* (upper case), e.g. {hint!r}")
    return value


EnvVarName = Annotated[str, AfterValidator(_secret_env_name)]


def _uid_gid(value: str) -> str:
    if not _UID_GID.match(value):
        raise ValueError(f"{value!r} must be a numeric uid:gid, e.g. 10001:10001")
    if max(split_uid(value)) > _MAX_ID:
        raise ValueError(f"{value!r}: a uid or gid is at most {_MAX_ID}")
    return value


def _service_uid_gid(value: str) -> str:
    _uid_gid(value)
    if 0 in split_uid(value):
        raise ValueError(
            f"{value!r} must be a numeric non-root uid:gid (neither 0: the service would own root's files), "
            "e.g. 10091:10091"
        )
    return value


UidGid = Annotated[str, AfterValidator(_uid_gid)]
ServiceUidGid = Annotated[str, AfterValidator(_service_uid_gid)]


# --- images --------------------------------------------------------------------------------------


def image_tag(image: str) -> str | None:
    """The tag of an image reference (``None`` when it has none), ignoring a registry port."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


_DIGEST_SOURCE = "copy the whole digest from `docker buildx imagetools inspect <image>`"


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


# --- hosts and URLs ------------------------------------------------------------------------------


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


def _url_as_hostname(value: str) -> str | None:
    """What to say when a hostname is written as a URL (scheme, port or path), else None."""
    if not any(c in value for c in "/:"):
        return None
    parts = urlsplit(value if "://" in value else f"//{value}")
    drop = []
    if "://" in value:
        drop.append(f"the scheme {parts.scheme + '://'!r}")
    try:
        if parts.port is not None:
            drop.append(f"the port ':{parts.port}'")
    except ValueError:
        drop.append("the port")
    if parts.path not in ("", "/"):
        drop.append(f"the path {parts.path!r}")
    elif parts.path == "/":
        drop.append("the trailing '/'")
    host = (parts.hostname or "").lower()
    return f"hostname {value!r} is a URL, not a name: drop {' and '.join(drop) or 'everything but the name'}" + (
        f" and write {host!r}" if host else ""
    )


def _settings_example(field: str, value: Any) -> str:
    """The dict a settings block should be, for someone who wrote a plain value."""
    if field == "tailscale" and isinstance(value, bool):
        return f'{{"enabled": {value}}}'
    if field == "docker" and isinstance(value, str):
        return f'{{"install": "{value}"}}'
    return {
        "tailscale": '{"enabled": False}',
        "docker": '{"install": "existing"}',
        "images": '{"redis": "redis:7.4.2-alpine"}',
        "uids": '{"redis": "10379:10379"}',
        "session": '{"remember_me": "1 day"}',
        "limits": '{"memory": "256m", "cpus": 0.5, "pids": 128}',
    }[field]


class _Strict(BaseModel):
    # Unknown keys are typos more often than not: refuse them.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    def _explicit(self, field: str) -> bool:
        """Set in the inventory to something other than its default. A default written out (as
        `mcpgate describe` writes every field, and the host tests load that back) changes nothing."""
        default = type(self).model_fields[field].get_default(call_default_factory=True)
        return field in self.model_fields_set and getattr(self, field) != default


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
    redirect_uris: list[str]
    # Claude.ai sends its pre-registered secret in the POST body (client_secret_post).
    auth_method: Literal["client_secret_post", "client_secret_basic", "none"] = "client_secret_post"
    # Scopes whose tools this client may use; None means every declared scope. The client may still
    # ask for and be granted any scope (clients ask for what the server advertises, and a refused
    # scope would fail the whole sign-in): the gateway allows a tool only to the clients listed here.
    scopes: list[str] | None = None
    # Default: "pre-configured" (the person's consent is remembered for consent_duration) for a
    # confidential client, whose identity its secret proves; "explicit" (asked every time) for a
    # public one, which any program can impersonate (RFC 8252 section 8.6). See _default_consent.
    consent: Literal["explicit", "implicit", "pre-configured"] = "pre-configured"
    consent_duration: Duration = "1 week"

    @model_validator(mode="before")
    @classmethod
    def _default_consent(cls, data: Any) -> Any:
        if isinstance(data, dict) and "consent" not in data:
            data = {**data, "consent": "explicit" if data.get("auth_method") == "none" else "pre-configured"}
        return data

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _CLIENT_ID.match(v):
            suggestion = re.sub(r"[^a-z0-9._-]+", "-", v.lower()).strip("-._")
            example = f"e.g. {suggestion!r}" if _CLIENT_ID.match(suggestion) else "e.g. 'claude-ai'"
            raise ValueError(
                f"client id {v!r} must be 3-64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter "
                f"or digit (it is the OAuth client_id and names the client's secret in the store): {example}"
            )
        return v

    @field_validator("redirect_uris")
    @classmethod
    def _redirects(cls, uris: list[str]) -> list[str]:
        if not uris:
            raise ValueError(
                "no redirect URI: list where this client receives the code, e.g. "
                '["https://claude.ai/api/mcp/auth_callback", "https://claude.com/api/mcp/auth_callback"]'
            )
        for uri in uris:
            parts = urlsplit(uri)
            if "*" in uri:
                raise ValueError(
                    f"redirect URI {uri!r} has a wildcard '*': Authelia compares redirect URIs exactly, and a "
                    "pattern would send codes wherever it matches; list each callback in full"
                )
            if "#" in uri:
                raise ValueError(f"redirect URI {uri!r} must not have a #fragment (RFC 6749 section 3.1.2)")
            if parts.username is not None or parts.password is not None:
                raise ValueError(f"redirect URI {uri!r} must not carry user:password@ before the host")
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
    def _client_rules(self) -> Client:
        problems: list[str] = []
        if any(u in CLAUDE_REDIRECT_URIS for u in self.redirect_uris) and self.auth_method != "client_secret_post":
            problems.append(
                f"client {self.id!r} redirects to Claude.ai, which sends its secret with client_secret_post; "
                f"set auth_method: client_secret_post (not {self.auth_method})"
            )
        if self.public and self.consent != "explicit":
            problems.append(
                f"client {self.id!r} is public (auth_method none): consent {self.consent!r} would hand tokens to "
                "any program that presents this client id and a loopback callback, without the person seeing a "
                "consent screen (RFC 8252 section 8.6: a public client's identity cannot be proven, so every "
                "request is asked); use consent: explicit (the default for public clients)"
            )
        if self._explicit("consent_duration") and self.consent != "pre-configured":
            problems.append(
                f"client {self.id!r}: consent_duration applies only with consent: pre-configured "
                f"(this client's consent is {self.consent!r}); remove it"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def public(self) -> bool:
        return self.auth_method == "none"


class Volume(_Strict):
    """A mount into a backend container: a host folder or a named volume."""

    source: str
    target: ContainerPath
    read_only: bool = False

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if v.startswith("/"):
            _refuse_mount_syntax(v)
            path = _normalise(v)
            danger = host_path_danger(path)
            if danger:
                raise ValueError(
                    f"{v!r} {danger}: mounting it would hand the backend the host; mount a folder of the "
                    "backend's own data instead, e.g. /srv/notes"
                )
            _refuse_dotdot(v, path)
            return path
        if not _VOLUME_NAME.match(v):
            raise ValueError(
                f"volume source {v!r} must be an absolute host path (e.g. /srv/notes) or a volume name "
                f"({_VOLUME_NAME.pattern})"
            )
        return v

    @property
    def is_host_path(self) -> bool:
        return self.source.startswith("/")


class BackendSecret(_Strict):
    """A secret from the store handed to a backend container, as a file or an environment variable.

    ``{"name": "calendar-api-key", "env": "CALENDAR_API_KEY"}`` or
    ``{"name": "calendar-api-key", "file": "/run/secrets/calendar-api-key"}``; the value is set with
    ``mcpgate secrets set INVENTORY calendar-api-key``.
    """

    name: SecretName
    # Mounted read-only at this path, mode 0400, owned by the backend's user.
    file: ContainerPath | None = None
    # Or passed in this variable, through --env-file from a 0600 file (never on a command line).
    env: EnvVarName | None = None

    @model_validator(mode="after")
    def _one_way(self) -> BackendSecret:
        if (self.file is None) == (self.env is None):
            has = "both" if self.file else "neither"
            env = re.sub(r"[^A-Z0-9_]", "_", self.name.upper())
            raise ValueError(
                f"secret {self.name!r} needs exactly one of file (a path inside the container, e.g. "
                f"/run/secrets/{self.name}) or env (a variable name, e.g. {env}); it has {has}"
            )
        return self


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


# Backend settings that only a container the stack runs can use: on a remote url they would be
# silently ignored, so they are refused there when set to anything but their default.
_CONTAINER_ONLY = (
    "port",
    "user",
    "base_image",
    "env",
    "volumes",
    "secrets",
    "limits",
    "read_only_rootfs",
    "path",
    "egress",
    "command",
)


class Backend(_Strict):
    """One MCP server behind the gateway: a container (``image`` or ``build``) or a remote ``url``."""

    name: str
    enabled: bool = True
    description: str = ""
    image: PinnedImage | None = None
    build: str | None = None  # a folder under files/ built into an image on the host
    base_image: PinnedImage | None = None  # BASE_IMAGE build argument for ``build``
    url: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    path: str = "/mcp"
    env: dict[str, str] = Field(default_factory=dict)  # not for secrets: see secrets
    volumes: list[Volume] = Field(default_factory=list)
    # Secrets from the store, each as a read-only file or an environment variable.
    secrets: list[BackendSecret] = Field(default_factory=list)
    # scope -> tools needing it; a tool not listed is denied.
    tools: dict[str, list[str]] | None = None
    # or one scope for every tool of the target
    scope: str | None = None
    token_secret: SecretName | None = None  # sent by the gateway as "Authorization: Bearer <token>"
    user: UidGid | None = None  # uid:gid the container runs as; None keeps the image's
    limits: Limits = Field(default_factory=Limits)
    read_only_rootfs: bool = True
    # Off: the backend's only network is the one it shares with agentgateway (no route out). On:
    # it also joins a network of its own with a route out (still shared with no other container).
    egress: bool = False
    # Arguments after the image's entrypoint, in place of its default command (e.g. a server that
    # speaks stdio by default and HTTP with ["http", "--port", "8082"]).
    command: list[str] | None = None

    @field_validator("command")
    @classmethod
    def _command(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (not v or any(not a or "\0" in a for a in v)):
            raise ValueError('command must be a non-empty list of non-empty arguments, e.g. ["http", "--port", "8082"]')
        return v

    @field_validator("volumes", "secrets", "limits", mode="before")
    @classmethod
    def _dict_shapes(cls, v: Any, info: ValidationInfo) -> Any:
        # docker -v habits ("/srv/notes:/vault") and bare names get the dict they should be.
        if info.field_name == "limits":
            if not isinstance(v, dict | BaseModel):
                raise ValueError(f"limits is a dict of settings, not {v!r}: write {_settings_example('limits', v)}")
            return v
        if not isinstance(v, list):
            return v
        for item in v:
            if isinstance(item, str):
                if info.field_name == "volumes":
                    source, _, rest = item.partition(":")
                    target = rest.split(":", 1)[0] or "/data"
                    example = f'{{"source": "{source}", "target": "{target}"}}'
                else:
                    example = f'{{"name": "{item}", "env": "{re.sub(r"[^A-Z0-9_]", "_", item.upper())}"}}'
                raise ValueError(f"each entry is a dict, not {item!r}: write {example}")
        return v

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
        problems = []
        for key in v:
            if not _ENV_NAME.match(key):
                problems.append(f"environment variable name {key!r} is invalid (letters, digits and '_')")
                continue
            words = [w for w in _SECRET_ENV_WORDS if w in key.upper()]
            # Where a secret file is (GITHUB_APP_PRIVATE_KEY_PATH=/run/secrets/app.pem) is no secret.
            names_a_path = key.upper().endswith(("_PATH", "_FILE")) and v[key].startswith("/")
            if words and not names_a_path:
                name = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") or "my-secret"
                problems.append(
                    f"{key!r} looks like a secret (its name contains {words[0]}): env values sit in the "
                    "container's spec for anyone who can run `docker inspect`; store it with `mcpgate secrets set "
                    f'INVENTORY {name}` and declare it under secrets: [{{"name": "{name}", "env": "{key.upper()}"}}]'
                )
        if problems:
            raise ValueError("\n".join(problems))
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

    @model_validator(mode="after")
    def _shape(self) -> Backend:
        problems: list[str] = []
        kinds = [k for k in ("image", "build", "url") if getattr(self, k) is not None]
        if len(kinds) != 1:
            problems.append(f"backend {self.name!r} needs exactly one of image, build or url (has: {kinds or 'none'})")
        if (self.tools is None) == (self.scope is None):
            problems.append(
                f"backend {self.name!r} needs exactly one of tools (scope -> tool names) or scope (one for all tools)"
            )
        if self.url is not None:
            extra = [k for k in _CONTAINER_ONLY if self._explicit(k)]
            if extra:
                problems.append(
                    f"backend {self.name!r} is a remote url; {', '.join(extra)} "
                    f"{'applies' if len(extra) == 1 else 'apply'} only to containers the stack runs and would be "
                    f"ignored: remove {'it' if len(extra) == 1 else 'them'}"
                )
        else:
            if self.port is None:
                problems.append(
                    f"backend {self.name!r} runs a container: set port (the port its MCP server listens on)"
                )
            problems += self._mount_problems()
            if self.user is None and any(s.file for s in self.secrets):
                problems.append(
                    f"backend {self.name!r} mounts a secret file, which must belong to the user the container "
                    'runs as: set user (uid:gid, e.g. "10002:10002")'
                )
        if self.base_image is not None and self.build is None:
            problems.append(f"backend {self.name!r}: base_image applies only with build")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _mount_problems(self) -> list[str]:
        """Two things mounted at one path, or one inside the other, and secrets given twice."""
        problems: list[str] = []
        targets = [v.target for v in self.volumes]
        if len(set(targets)) != len(targets):
            problems.append(f"backend {self.name!r} mounts two volumes at the same target")
        files = [s.file for s in self.secrets if s.file]
        for f in sorted({f for f in files if files.count(f) > 1}):
            problems.append(f"backend {self.name!r}: two secrets are mounted at the same file {f}")
        envs = [s.env for s in self.secrets if s.env]
        for e in sorted({e for e in envs if envs.count(e) > 1}):
            problems.append(f"backend {self.name!r}: two secrets set the same variable {e}")
        for e in envs:
            if e in self.env:
                problems.append(
                    f"backend {self.name!r}: {e} is set both in env and by secrets; keep it in secrets only"
                )
        for f in files:
            for t in targets:
                if _at_or_under(f, t) or _at_or_under(t, f):
                    how = "is the target of" if f == t else "is inside" if _at_or_under(f, t) else "holds"
                    problems.append(
                        f"backend {self.name!r}: secret file {f} {how} volume target {t}: a secret mounted into a "
                        "volume would leave its mount point in your host folder (or be hidden by it); put the "
                        "secret file elsewhere, e.g. /run/secrets/<name>"
                    )
        return problems

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
    def secret_names(self) -> list[str]:
        """Store secrets handed to the container (``secrets``; not the gateway's ``token_secret``)."""
        return [s.name for s in self.secrets]

    @property
    def target_url(self) -> str:
        """Where the gateway reaches this backend."""
        if self.url:
            return self.url
        return f"http://{self.name}:{self.port}{self.path}"


class Images(_Strict):
    """Pinned images for the stack's own services."""

    redis: PinnedImage = "redis:7.4.2-alpine"
    authelia: PinnedImage = f"authelia/authelia:{AUTHELIA_VERSION}"
    agentgateway: PinnedImage = "cr.agentgateway.dev/agentgateway:v1.4.1"
    ingress: PinnedImage = "caddy:2.8.4-alpine"

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
    auth_key_secret: SecretName = "tailscale-auth-key"
    funnel: bool = True


class ServiceUids(_Strict):
    """uid:gid each stack service runs as; config and secret files on the host are owned by it."""

    redis: ServiceUidGid = "10379:10379"
    authelia: ServiceUidGid = "10091:10091"
    agentgateway: ServiceUidGid = "10300:10300"
    ingress: ServiceUidGid = "10080:10080"

    @model_validator(mode="after")
    def _one_uid_each(self) -> ServiceUids:
        # Each service's secrets are 0600 files owned by its uid: a shared uid lets one read the other's.
        problems = []
        for uid, fields in self.by_uid().items():
            if len(fields) > 1:
                problems.append(
                    f"{' and '.join(f'uids.{f}' for f in fields)} are both uid {uid}: each service's secret "
                    "files are readable by its uid alone, so a shared uid lets one read the other's "
                    "(e.g. Authelia's signing key); give each service its own uid"
                )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def by_uid(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for field in ServiceUids.model_fields:
            out.setdefault(split_uid(getattr(self, field))[0], []).append(field)
        return out


class Session(_Strict):
    """Authelia's sign-in session: the cookie that keeps a browser signed in on the sign-in pages."""

    # How long "remember me" keeps a browser signed in (Authelia's own default is a month). People
    # sign in here only to connect a client or when a refresh token runs out, so a long cookie buys
    # little, while anyone at that browser could approve a new client without password and TOTP for
    # as long as it lasts. A day covers an afternoon of connecting clients.
    remember_me: Duration = "1 day"


class RateLimits(_Strict):
    """How much one client may ask for. The ingress hands Authelia each Funnel client's own address
    (trusting X-Forwarded-For only from tailscaled's side of the published port), so these count
    per client address, except the MCP bucket."""

    # Authelia's regulation, per client address (not per user: one address could otherwise keep a
    # user locked out): this many failed sign-ins within sign_in_window ban the address for
    # sign_in_ban. TOTP codes have Authelia's own per-address limit besides.
    sign_in_failures: int = Field(default=5, ge=1, le=100)
    sign_in_window: Duration = "10 minutes"
    sign_in_ban: Duration = "15 minutes"
    # agentgateway's token bucket for /mcp. agentgateway 1.4 keeps local buckets per route, not per
    # client, so this caps all clients together: a flood cannot reach the backends.
    mcp_requests_per_second: int = Field(default=20, ge=1, le=100000)
    mcp_burst: int = Field(default=200, ge=1, le=1000000)


# What an empty list should have had, with a tiny example.
_EMPTY_HINTS = {
    "users": 'add who may sign in, e.g. [{"name": "alice", "display_name": "Alice", "email": "alice@example.org"}]',
    "scopes": 'declare the scopes your tools need, e.g. {"notes:read": "Search and read notes"}',
    "backends": (
        "add the MCP server to put behind the gateway, e.g. "
        '[{"name": "notes", "image": "ghcr.io/example/notes-mcp:1.0.0", "port": 8080, "scope": "notes:read"}]'
    ),
    "clients": (
        "register the OAuth client that connects, e.g. Claude.ai: "
        '[{"id": "claude-ai", "name": "Claude.ai", "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"]}]'
    ),
}


class Stack(_Strict):
    """One host's whole stack."""

    hostname: str
    # Prefix of every container, network and volume the stack owns on the host's engine; two
    # stacks with different names never touch each other's (the tests deploy under their own).
    name: str = "mcpgate"
    # The stack's own folder on the host; normalised ("/opt/mcpgate/" is "/opt/mcpgate").
    base_dir: Annotated[str, AfterValidator(_base_dir)] = "/opt/mcpgate"
    ingress_port: int = Field(default=8088, ge=1024, le=65535)
    gateway_port: int = Field(default=AGENTGATEWAY.port, ge=1024, le=65535)
    # The private IPv4 range the stack's Docker networks are carved from (a /28 each: the edge
    # network, Redis/Authelia's, the gateway's, and one per backend). Change it only if it clashes
    # with a network the host already has.
    network_pool: str = "172.31.252.0/22"
    images: Images = Field(default_factory=Images)
    docker: Docker = Field(default_factory=Docker)
    tailscale: Tailscale = Field(default_factory=Tailscale)
    uids: ServiceUids = Field(default_factory=ServiceUids)
    session: Session = Field(default_factory=Session)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    users: list[User]
    scopes: dict[str, str]
    # group -> scopes its members may use. With no groups here and no user's own scopes, every
    # person may use every scope; once either is given, a person may use only what is granted.
    groups: dict[str, list[str]] = Field(default_factory=dict)
    backends: list[Backend]
    clients: list[Client]
    access_token_lifespan: Duration = "1h"
    refresh_token_lifespan: Duration = "30d"

    @field_validator(*_EMPTY_HINTS)
    @classmethod
    def _not_empty(cls, v: Any, info: ValidationInfo) -> Any:
        if not v:
            raise ValueError(f"is empty: {_EMPTY_HINTS[info.field_name or '']}")
        return v

    @field_validator("tailscale", "docker", "images", "uids", "session", mode="before")
    @classmethod
    def _settings_are_dicts(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, dict | BaseModel):
            return v
        field = info.field_name or ""
        raise ValueError(f'is a dict of settings, not {v!r}: write "{field}": {_settings_example(field, v)}')

    @property
    def edge_gateway_address(self) -> str:
        """The edge network's bridge address (its subnet is the pool's first slot): the peer of every
        connection through the published port (docker-proxy connects from it), i.e. tailscaled's."""
        return str(next(network_slots(self.network_pool)[0].hosts()))

    @field_validator("network_pool")
    @classmethod
    def _network_pool(cls, v: str) -> str:
        try:
            pool = ipaddress.IPv4Network(v)
        except ValueError as err:
            raise ValueError(
                f"network_pool {v!r} is not an IPv4 network with its host bits zero ({err}); e.g. 172.31.252.0/22"
            ) from None
        if not pool.is_private or pool.is_loopback or pool.is_link_local:
            raise ValueError(f"network_pool {v} is not a private range; use one in 10/8, 172.16/12 or 192.168/16")
        if not 16 <= pool.prefixlen <= 26:
            raise ValueError(
                f"network_pool {v}: the prefix must be /16 to /26 (each network takes a /28), e.g. 172.31.252.0/22"
            )
        return str(pool)

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, v: str) -> str:
        as_url = _url_as_hostname(v)
        if as_url:
            raise ValueError(as_url)
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

        if not problems:
            # The layout (containers.py) needs a slot of the pool per network.
            from .container_specs import assign_subnets, stack_networks

            try:
                assign_subnets(self.network_pool, stack_networks(self), {})
            except ValueError as err:
                problems.append(str(err))

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

        problems += self._backend_host_problems()
        problems += self._secret_name_problems()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _backend_host_problems(self) -> list[str]:
        """Backends reaching into the stack's own folder, or running as one of its services."""
        problems: list[str] = []
        service_uids = self.uids.by_uid()
        for i, b in enumerate(self.backends):
            for j, v in enumerate(b.volumes):
                if not v.is_host_path:
                    continue
                if _at_or_under(v.source, self.base_dir) or _at_or_under(self.base_dir, v.source):
                    how = (
                        "is"
                        if v.source == self.base_dir
                        else "is inside"
                        if _at_or_under(v.source, self.base_dir)
                        else "holds"
                    )
                    problems.append(
                        f"backends[{i}] ({b.name}).volumes[{j}].source: {v.source!r} {how} the stack's own folder "
                        f"base_dir ({self.base_dir}: Authelia's secrets, the token-signing key, the Redis password); "
                        "mounting it would hand the backend the whole stack; mount a folder outside it, e.g. /srv/notes"
                    )
            if b.user is not None:
                uid = split_uid(b.user)[0]
                for service in service_uids.get(uid, []):
                    problems.append(
                        f"backends[{i}] ({b.name}).user: uid {uid} is also uids.{service}, which owns that service's "
                        "secret files on the host; give the backend a uid of its own (e.g. the owner of its data)"
                    )
        return problems

    def _secret_name_problems(self) -> list[str]:
        """Each secret a person supplies goes to exactly one place."""
        places: dict[str, list[str]] = {}
        for i, b in enumerate(self.backends):
            if b.token_secret:
                places.setdefault(b.token_secret, []).append(f"backends[{i}] ({b.name}).token_secret")
            for j, s in enumerate(b.secrets):
                places.setdefault(s.name, []).append(f"backends[{i}] ({b.name}).secrets[{j}].name")
        if self.tailscale.enabled:
            places.setdefault(self.tailscale.auth_key_secret, []).append("tailscale.auth_key_secret")
        problems = []
        for name, where in places.items():
            if len(where) > 1:
                why = (
                    "the Tailscale auth key must never reach a backend or the gateway"
                    if "tailscale.auth_key_secret" in where
                    else "each secret goes to one place, so rotating or revoking it touches one place only"
                )
                problems.append(
                    f"{where[0]}: secret {name!r} is also {' and '.join(where[1:])}; {why}: give each its own name "
                    "(store the value twice if both really need it)"
                )
        return problems

    # --- derived, once -------------------------------------------------------------------------

    @property
    def public_url(self) -> str:
        return f"https://{self.hostname}"

    @property
    def issuer(self) -> str:
        return f"{self.public_url}{AUTH_PREFIX}"

    @property
    def resource(self) -> str:
        """The MCP endpoint and the access tokens' audience (RFC 8707 resource)."""
        return f"{self.public_url}{MCP_PATH}"

    @property
    def resource_metadata_url(self) -> str:
        """Where the MCP endpoint's protected-resource metadata is (RFC 9728, path-inserted)."""
        return f"{self.public_url}/.well-known/oauth-protected-resource{MCP_PATH}"

    @property
    def authelia_port(self) -> int:
        return AUTHELIA.port

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
    def cors_origins(self) -> list[str]:
        """Origins that may call Authelia's OIDC endpoints from a browser: the pages of browser-based
        public clients, i.e. their non-loopback https redirect URIs' origins. Confidential clients
        (Claude.ai) call the token endpoint from their servers, and native clients from no page at
        all: with no browser-based public client there is no CORS."""
        origins: list[str] = []
        for c in self.clients:
            if not c.public:
                continue
            for uri in c.redirect_uris:
                parts = urlsplit(uri)
                host = parts.hostname or ""
                if parts.scheme != "https" or not host or _is_loopback_host(host):
                    continue
                host = f"[{host}]" if ":" in host else host
                origin = f"https://{host}" + (f":{parts.port}" if parts.port not in (None, 443) else "")
                if origin not in origins:
                    origins.append(origin)
        return origins

    @property
    def cors_endpoints(self) -> list[str]:
        """The endpoints Authelia answers CORS on (none without a browser-based public client)."""
        return list(CORS_ENDPOINTS) if self.cors_origins else []

    @property
    def token_secrets(self) -> list[str]:
        """User-supplied secrets the gateway sends to enabled backends (``token_secret``)."""
        return [b.token_secret for b in self.enabled_backends if b.token_secret]

    @property
    def backend_secrets(self) -> list[str]:
        """User-supplied secrets handed to enabled backends' containers (``secrets``)."""
        return [name for b in self.enabled_backends for name in b.secret_names]

    @property
    def required_secrets(self) -> list[str]:
        """Every secret a person must have set for this deploy: the enabled backends' tokens and
        secrets, and the Tailscale auth key when Tailscale is on."""
        names = [*self.token_secrets, *self.backend_secrets]
        if self.tailscale.enabled:
            names.append(self.tailscale.auth_key_secret)
        return names

    @property
    def settable_secrets(self) -> list[str]:
        """Every secret name the inventory mentions (disabled backends too, so it can be set first)."""
        names = [n for b in self.backends for n in ([b.token_secret] if b.token_secret else []) + b.secret_names]
        if self.tailscale.enabled:
            names.append(self.tailscale.auth_key_secret)
        return names


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
