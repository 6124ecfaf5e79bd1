"""What the deploy works from, per host: the validated stack, its rendered files and containers.

``deploy.py`` builds it once per host (:func:`context_for`) while pyinfra loads it — before anything
changes on the host — so a mistake in the inventory or a missing secret stops the run with a clear
message and the host untouched; then it hands it to every task. :func:`snapshot_query` says what
the deploy's operations will read from the host (see :mod:`.snapshot`).

Example (a deploy file)::

    ctx = context_for(host)
    register(snapshot_query(ctx))
    redis(ctx)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..apt import AptRelease, apt_release
from ..backup_plan import restore_selection, yes
from ..container_specs import GATEWAY_READINESS_PORT, ContainerSpec, stack_containers
from ..errors import MCPGateError
from ..layout import (
    AUTHELIA_USERS,
    LABEL_STACK,
    PASSWORDS_MARKER,
    SUBJECTS_MARKER,
    TOTP_MARKER,
    backup_unit,
    backup_unit_paths,
    journald_conf,
)
from ..model import Stack, load_stack
from ..model.network_plan import stack_networks
from ..render import Rendered, render_stack
from ..secret_store import SecretStore
from ..secrets import StackSecrets, generated_value_problems
from .docker_facts import own_healthcheck
from .inventory_file import DATA_KEY, default_secrets_dir
from .snapshot import SnapshotQuery


@dataclass(frozen=True)
class DeployContext:
    host: str
    stack: Stack
    secrets: StackSecrets
    rendered: Rendered
    containers: tuple[ContainerSpec, ...]

    def container(self, service: str) -> ContainerSpec:
        return next(c for c in self.containers if c.service == service)

    def ready_probe(self, service: str) -> str | None:
        """The shell probe that says a service without a healthcheck is ready (None: its healthcheck does).

        agentgateway's image has no shell or HTTP client: its readiness endpoint is asked from the
        ingress, the one container that shares a network with it (and ships wget).
        """
        if service != "agentgateway":
            return None
        return (
            f"docker exec {self.container('ingress').name} wget -q -O /dev/null "
            f"http://agentgateway:{GATEWAY_READINESS_PORT}/healthz/ready"
        )

    def own_check(self, service: str) -> str | None:
        """The service's own healthcheck, run from the host while Docker's first one is not due yet
        (None: it has none)."""
        spec = self.container(service)
        if spec.healthcheck is None:
            return None
        seconds = int(spec.healthcheck.timeout.removesuffix("s"))
        return own_healthcheck(spec.name, spec.healthcheck.test[1], seconds)


# The deploy's parts, in the order they run. Configs and networks are always brought up to date;
# a run can be limited to some services with host data mcpgate_components (e.g. on the command
# line: --data mcpgate_components=redis,authelia).
COMPONENTS = ("docker", "redis", "authelia", "backends", "ingress", "agentgateway", "tailscale")


def selected_components(value: Any) -> tuple[str, ...]:
    if value in (None, "", "all"):
        return COMPONENTS
    names = _names(value)
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        raise MCPGateError(f"mcpgate_components: unknown {', '.join(unknown)}; choose from {', '.join(COMPONENTS)}")
    return tuple(n for n in COMPONENTS if n in names)


def _names(value: Any) -> list[str]:
    return [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]


def selected_purge(value: Any, stack: Stack) -> tuple[str, ...]:
    """The backends whose data volumes go with their container (host data ``mcpgate_purge``, e.g.
    ``--data mcpgate_purge=scratch``): only one the inventory no longer runs, so that a typo cannot
    empty a volume in use. Host folders are never removed."""
    if value in (None, ""):
        return ()
    names = _names(value)
    running = [n for n in names if any(b.name == n for b in stack.enabled_backends)]
    if running:
        raise MCPGateError(
            f"mcpgate_purge: {', '.join(running)} is still an enabled backend of the inventory; take it out "
            "(or set enabled: false) first: only the data of a backend the stack no longer runs is removed"
        )
    return tuple(names)


@dataclass(frozen=True)
class Restore:
    """What a deploy restores (host data ``mcpgate_restore``, ``mcpgate_restore_overwrite``)."""

    snapshot: str  # "latest" or a snapshot id
    overwrite: bool


def selected_restore(value: Any, overwrite: Any, stack: Stack) -> Restore | None:
    """``--data mcpgate_restore=latest`` (or a snapshot id), optionally with
    ``--data mcpgate_restore_overwrite=yes``; only for an inventory that sets ``backup``."""
    snapshot = restore_selection(value)
    replace = yes(overwrite, "mcpgate_restore_overwrite")
    if snapshot is None:
        if replace:
            raise MCPGateError("mcpgate_restore_overwrite applies only with mcpgate_restore=latest (or a snapshot id)")
        return None
    if stack.backup is None:
        raise MCPGateError(
            "mcpgate_restore: the inventory sets no backup repository to restore from: add "
            '"backup": {"repository": ...} (the one the old host backed up to) and deploy again'
        )
    return Restore(snapshot, replace)


def build_context(host_name: str, data: Any) -> DeployContext:
    stack = load_stack(host_name, data)
    secrets = StackSecrets(SecretStore.for_host(default_secrets_dir(), host_name), stack)
    rendered = render_stack(stack, secrets, inventory="<inventory>", host=host_name)
    problems = generated_value_problems(secrets)
    if problems:
        raise MCPGateError(
            f"{host_name}: the secrets store holds values a component would refuse:\n  " + "\n  ".join(problems)
        )
    return DeployContext(host_name, stack, secrets, rendered, tuple(stack_containers(stack, rendered)))


def components_for(host: Any) -> tuple[str, ...]:
    from pyinfra.api.exceptions import PyinfraError

    try:
        return selected_components(host.data.get("mcpgate_components"))
    except MCPGateError as err:
        raise PyinfraError(str(err)) from None


def purge_for(host: Any, stack: Stack) -> tuple[str, ...]:
    from pyinfra.api.exceptions import PyinfraError

    try:
        return selected_purge(host.data.get("mcpgate_purge"), stack)
    except MCPGateError as err:
        raise PyinfraError(str(err)) from None


def restore_for(host: Any, ctx: DeployContext) -> Restore | None:
    """The restore this deploy makes, refused now, before anything runs, when the host already runs
    the stack or holds its data (unless overwrite is asked)."""
    from pyinfra.api.exceptions import PyinfraError

    from ..backup_plan import backup_items
    from .docker_facts import StackContainers
    from .restic import DataPresent, restore_refusal

    try:
        data = host.data
        restore = selected_restore(data.get("mcpgate_restore"), data.get("mcpgate_restore_overwrite"), ctx.stack)
    except MCPGateError as err:
        raise PyinfraError(str(err)) from None
    if restore is None or restore.overwrite:
        return restore
    containers = [
        name
        for name, c in host.get_fact(StackContainers).items()
        if ((c.get("Config") or {}).get("Labels") or {}).get(LABEL_STACK) == ctx.stack.name
    ]
    items = backup_items(ctx.stack)
    holding = host.get_fact(
        DataPresent,
        volumes=[i.name for i in items if i.kind == "volume"],
        folders=[i.name for i in items if i.kind == "folder"],
    )
    refusal = restore_refusal(ctx.stack.name, containers, holding)
    if refusal:
        raise PyinfraError(f"{host.name}: {refusal}")
    return restore


def release_for(host: Any) -> AptRelease:
    """The host's Debian/Ubuntu release and dpkg architecture, for third-party apt sources."""
    from pyinfra.api.exceptions import PyinfraError
    from pyinfra.facts.deb import DebArch
    from pyinfra.facts.server import LinuxDistribution

    try:
        return apt_release(host.get_fact(LinuxDistribution), host.get_fact(DebArch))
    except MCPGateError as err:
        raise PyinfraError(f"{host.name}: {err}") from None


def context_for(host: Any) -> DeployContext:
    """The deploy context of a pyinfra host, built now; user mistakes become pyinfra's one-line errors."""
    from pyinfra.api.exceptions import PyinfraError

    try:
        return build_context(host.name, host.data.get(DATA_KEY))
    except MCPGateError as err:
        raise PyinfraError(str(err)) from None


def snapshot_query(ctx: DeployContext) -> SnapshotQuery:
    """Everything the stack's operations will read from the host, for one snapshot (:mod:`.snapshot`)."""
    authelia_volumes = [v for c in ctx.containers if c.service == "authelia" for v in c.owned_volumes]
    return SnapshotQuery(
        base_dir=ctx.stack.base_dir,
        stack=ctx.stack.name,
        networks=tuple(sorted(n.name for n in stack_networks(ctx.stack))),
        volumes=tuple(v for c in ctx.containers for v in c.owned_volumes),
        images=tuple(sorted({c.image for c in ctx.containers})),
        markers=tuple((v, m) for v in authelia_volumes[:1] for m in (TOTP_MARKER, SUBJECTS_MARKER, PASSWORDS_MARKER)),
        paths=tuple(v.source for b in ctx.stack.enabled_backends for v in b.volumes if v.is_host_path),
        probes=tuple((c.name, probe) for c in ctx.containers if (probe := ctx.ready_probe(c.service))),
        journal_conf=journald_conf(ctx.stack.name),
        volume_files=tuple((v, AUTHELIA_USERS) for v in authelia_volumes[:1]),
        firewall=ctx.stack.name,
        backup_units=backup_unit_paths(ctx.stack.name),
        backup_timer=backup_unit(ctx.stack.name, "timer"),
    )
