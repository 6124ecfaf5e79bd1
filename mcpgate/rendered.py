"""What a render produces, and what each renderer is given and writes into.

A :class:`Rendered` holds every folder and file the deploy places under the stack's base folder
(:class:`HostDir`, :class:`HostFile`), the backends' build contexts and the backup's systemd units.
The renderers (:mod:`mcpgate.render` and the ``render_*`` modules) each read a
:class:`RenderInput` (the stack, its secrets, the templates) and add to one :class:`RenderOutput`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shlex
from dataclasses import dataclass, field

import jinja2
import jinja2.bccache

from . import layout
from .checkout import TEMPLATES
from .errors import MCPGateError
from .layout import AUTHELIA, AUTHELIA_TOTP, SERVICES, ServiceLayout
from .model import Stack
from .secrets import StackSecrets


@dataclass(frozen=True)
class HostDir:
    path: str
    mode: int
    owner: str  # uid:gid


@dataclass(frozen=True)
class HostFile:
    path: str
    content: bytes = field(repr=False)
    mode: int
    owner: str
    # The container to restart when this file changes ("" when none reads it at runtime).
    service: str
    secret: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class BuildContext:
    backend: str
    dir: str  # relative to base_dir
    image: str  # content-addressed tag
    base_image: str | None


@dataclass
class Rendered:
    stack: Stack
    dirs: list[HostDir]
    files: list[HostFile]
    builds: list[BuildContext]
    # user -> their entry in Authelia's users database, which the deploy merges into the file on the
    # host (mcpgate.users_db): Authelia's state, never rendered whole.
    authelia_users: dict[str, dict[str, object]] = field(default_factory=dict)
    # systemd units, by absolute path (outside base_dir): the backup's service and timer.
    units: list[HostFile] = field(default_factory=list)
    # The host journald's drop-in (absolute path), where the containers log to the journal.
    journal: HostFile | None = None

    def file(self, path: str) -> HostFile:
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)

    def config(self, service: str) -> HostFile:
        """The config file a service starts from (``layout.SERVICES[service].config``)."""
        layout = SERVICES[service]
        return self.file(layout.host_file("config", layout.config))

    @property
    def authelia_totp(self) -> HostFile:
        """The users' TOTP seeds, which the deploy imports with Authelia's storage CLI."""
        return self.file(AUTHELIA.host_file("identity", AUTHELIA_TOTP))

    def build_of(self, image: str) -> BuildContext | None:
        """The build context an image is built from on the host, or None for a pulled image."""
        return next((b for b in self.builds if b.image == image), None)

    def for_service(self, service: str) -> list[HostFile]:
        return [f for f in self.files if f.service == service]

    def config_digest(self, service: str) -> str:
        """One hash over every file a service reads: it changes exactly when one of them does."""
        h = hashlib.sha256()
        for f in sorted(self.for_service(service), key=lambda f: f.path):
            h.update(f"{f.path}\0{f.mode:o}\0{f.owner}\0".encode())
            h.update(f.sha256.encode())
        return h.hexdigest()


class _QuietBytecodeCache(jinja2.FileSystemBytecodeCache):
    """Jinja's per-user cache (a 0700 folder of the user's own in the temp folder, which Jinja checks)
    of compiled templates: compiling them was a fifth of ``mcpgate render``. A cache that cannot be
    read or written is only slower, never an error."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except (OSError, ValueError, EOFError):  # unreadable or damaged: compiled again
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    try:
        return _QuietBytecodeCache()
    except (OSError, RuntimeError):  # no temp folder of the user's own: no cache
        return None


def template_environment() -> jinja2.Environment:
    if not TEMPLATES.is_dir():
        raise MCPGateError(f"templates folder {TEMPLATES} is missing: run mcpgate from a checkout (pip install -e .)")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    # A JSON string or list is valid YAML; it quotes every value the same way every time.
    env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
    env.filters["shquote"] = lambda v: shlex.quote(str(v))
    return env


class RenderOutput:
    """The folders and files rendered so far, in the order the deploy writes them."""

    def __init__(self) -> None:
        self.dirs: list[HostDir] = []
        self.files: list[HostFile] = []

    def dir(self, path: str, mode: int = 0o755, owner: str = "0:0") -> None:
        if not any(d.path == path for d in self.dirs):
            self.dirs.append(HostDir(path, mode, owner))

    def file(self, path: str, content: str | bytes, *, mode: int, owner: str, service: str, secret: bool) -> None:
        data = content.encode() if isinstance(content, str) else content
        self.files.append(HostFile(path, data, mode, owner, service, secret))

    def service_dirs(self, service: ServiceLayout, owner: str, mode: int = 0o700) -> None:
        """``<service>/`` (root's, readable) and one private folder per role, owned by the service's uid."""
        self.dir(service.service)
        for role in service.mounts:
            self.dir(service.host_dir(role), mode, owner)


@dataclass(frozen=True)
class RenderInput:
    stack: Stack
    secrets: StackSecrets
    templates: jinja2.Environment
    # Named in the message when a token the inventory needs is missing from the store.
    inventory: str
    host: str

    def template(self, name: str, **values: object) -> str:
        return self.templates.get_template(name).render(stack=self.stack, layout=layout, **values)

    def token(self, name: str) -> str:
        return self.secrets.require_token(name, self.host or "HOST", self.inventory)
