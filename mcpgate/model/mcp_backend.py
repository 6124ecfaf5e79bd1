"""One MCP server behind the gateway (:class:`Backend`) and what its container is given: volumes,
secrets from the store, resource limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, model_validator

from .addresses import EgressDestination, RemoteUrl
from .fields import (
    BackendName,
    BuildFolder,
    Command,
    EnvVarName,
    EnvVars,
    Memory,
    SecretName,
    Tools,
    UidGid,
    UrlPath,
    env_var_for,
)
from .image_refs import PinnedImage
from .mount_paths import ContainerPath, VolumeSource, at_or_under
from .settings import settings_example
from .strict import Strict, raise_all


class Volume(Strict):
    """A mount into a backend container: a host folder or a named volume."""

    # A host folder (an absolute path) or a volume's name, mounted at target in the container;
    # read_only mounts it read-only.
    source: VolumeSource
    target: ContainerPath
    read_only: bool = False
    # In the stack's backups (when the inventory sets backup); false for data not worth keeping,
    # e.g. a cache the backend fills again.
    backup: bool = True

    @property
    def is_host_path(self) -> bool:
        return self.source.startswith("/")


class BackendSecret(Strict):
    """A secret from the store handed to a backend container, as a file or an environment variable.

    ``{"name": "calendar-api-key", "env": "CALENDAR_API_KEY"}`` or
    ``{"name": "calendar-api-key", "file": "/run/secrets/calendar-api-key"}``; the value is set with
    ``mcpgate secrets set INVENTORY calendar-api-key``.
    """

    # The store's secret (mcpgate secrets set INVENTORY <name>).
    name: SecretName
    # Mounted read-only at this path, mode 0400, owned by the backend's user.
    file: ContainerPath | None = None
    # Or passed in this variable, through --env-file from a 0600 file (never on a command line).
    env: EnvVarName | None = None

    @model_validator(mode="after")
    def _one_way(self) -> BackendSecret:
        if (self.file is None) == (self.env is None):
            has = "both" if self.file else "neither"
            raise ValueError(
                f"secret {self.name!r} needs exactly one of file (a path inside the container, e.g. "
                f"/run/secrets/{self.name}) or env (a variable name, e.g. {env_var_for(self.name)}); it has {has}"
            )
        return self


class Limits(Strict):
    """Resource limits for a backend container."""

    # memory (Docker's --memory), cpus (--cpus) and pids (--pids-limit) of the container.
    memory: Memory = "512m"
    cpus: float = Field(default=1.0, gt=0, le=64)
    pids: int = Field(default=256, ge=16, le=65536)


# docker -v habits ("/srv/notes:/vault") and bare names get the dict they should be.


def _volume_example(item: str) -> str:
    source, _, rest = item.partition(":")
    target = rest.split(":", 1)[0] or "/data"
    return f'{{"source": "{source}", "target": "{target}"}}'


def _secret_example(item: str) -> str:
    return f'{{"name": "{item}", "env": "{env_var_for(item)}"}}'


def _entries_are_dicts(example: Callable[[str], str]) -> BeforeValidator:
    def check(value: Any) -> Any:
        for item in value if isinstance(value, list) else []:
            if isinstance(item, str):
                raise ValueError(f"each entry is a dict, not {item!r}: write {example(item)}")
        return value

    return BeforeValidator(check)


def _limits_are_a_dict(value: Any) -> Any:
    if not isinstance(value, dict | BaseModel):
        raise ValueError(f"limits is a dict of settings, not {value!r}: write {settings_example('limits', value)}")
    return value


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
    "egress_allow",
    "command",
)


class Backend(Strict):
    """One MCP server behind the gateway: a container (``image`` or ``build``) or a remote ``url``."""

    # The backend's name: its container's, and its tools' target (notes/search).
    name: BackendName
    # False keeps it in the inventory but out of the stack (its data is kept).
    enabled: bool = True
    # What it is, for people reading the inventory.
    description: str = ""
    # An image to run, pinned to a version (or build, or url).
    image: PinnedImage | None = None
    build: BuildFolder | None = None  # a folder under files/ built into an image on the host
    base_image: PinnedImage | None = None  # BASE_IMAGE build argument for ``build``
    # A remote MCP server the gateway forwards to, in place of a container.
    url: RemoteUrl | None = None
    # The port the container's MCP server listens on, and its endpoint's path.
    port: int | None = Field(default=None, ge=1, le=65535)
    path: UrlPath = "/mcp"
    env: EnvVars = Field(default_factory=dict)  # not for secrets: see secrets
    volumes: Annotated[list[Volume], _entries_are_dicts(_volume_example)] = Field(default_factory=list)
    # Secrets from the store, each as a read-only file or an environment variable.
    secrets: Annotated[list[BackendSecret], _entries_are_dicts(_secret_example)] = Field(default_factory=list)
    # scope -> tools needing it; a tool not listed is denied.
    tools: Tools | None = None
    # or one scope for every tool of the target
    scope: str | None = None
    token_secret: SecretName | None = None  # sent by the gateway as "Authorization: Bearer <token>"
    # A remote http:// url with a token_secret sends the token in clear over the LAN: only when the
    # inventory says so (True), e.g. Home Assistant without TLS on a network you trust.
    allow_plain_http: bool = False
    user: UidGid | None = None  # uid:gid the container runs as; None keeps the image's
    limits: Annotated[Limits, BeforeValidator(_limits_are_a_dict)] = Field(default_factory=Limits)
    # The container's root filesystem read-only (it writes to its volumes and /tmp).
    read_only_rootfs: bool = True
    # Off: the backend's only network is the one it shares with agentgateway (no route out). On:
    # it also joins a network of its own with a route out (still shared with no other container).
    egress: bool = False
    # With egress: the private destinations ("192.168.1.50:8123", TCP) it may reach besides the
    # internet. Everything else private (LAN, tailnet, link-local) and the host itself are refused
    # by the firewall the deploy keeps (mcpgate.egress).
    egress_allow: list[EgressDestination] = Field(default_factory=list)
    # Arguments after the image's entrypoint, in place of its default command (e.g. a server that
    # speaks stdio by default and HTTP with ["http", "--port", "8082"]).
    command: Command | None = None

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
        if self.url is not None and self.url.startswith("http://") and self.token_secret and not self.allow_plain_http:
            problems.append(
                f"backend {self.name!r}: url is plain http:// and token_secret is set, so the gateway would send "
                "the token in clear over your network to anyone on it who listens; use https://, or, on a network "
                'you trust, opt in with "allow_plain_http": True'
            )
        if self.allow_plain_http and self.url is None:
            problems.append(
                f"backend {self.name!r}: allow_plain_http applies only to a remote url (the gateway reaches the "
                "containers the stack runs on their own private network); remove it"
            )
        if self.egress_allow and not self.egress:
            problems.append(
                f"backend {self.name!r}: egress_allow names destinations beyond its own network, which only a "
                'backend with "egress": true has; set egress or remove egress_allow'
            )
        dup = sorted({d for d in self.egress_allow if self.egress_allow.count(d) > 1})
        if dup:
            problems.append(f"backend {self.name!r}: egress_allow lists {', '.join(dup)} twice")
        if self.base_image is not None and self.build is None:
            problems.append(f"backend {self.name!r}: base_image applies only with build")
        raise_all(problems)
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
                if at_or_under(f, t) or at_or_under(t, f):
                    how = "is the target of" if f == t else "is inside" if at_or_under(f, t) else "holds"
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
