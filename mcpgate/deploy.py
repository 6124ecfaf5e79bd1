"""What the deploy works from, per host: the validated stack, its rendered files and containers.

Built once per host while pyinfra loads ``deploy.py`` — before it changes anything — so a mistake in
the inventory or a missing secret stops the run with a clear message and the host untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .apt import AptRelease, apt_release
from .container_specs import ContainerSpec, stack_containers
from .errors import MCPGateError
from .inventory_file import DATA_KEY, default_secrets_dir
from .model import Stack, load_stack
from .render import Rendered, render_stack
from .rules import generated_value_problems
from .secrets import SecretStore, StackSecrets


@dataclass(frozen=True)
class DeployContext:
    host: str
    stack: Stack
    secrets: StackSecrets
    rendered: Rendered
    containers: tuple[ContainerSpec, ...]

    def container(self, service: str) -> ContainerSpec:
        return next(c for c in self.containers if c.service == service)


_contexts: dict[str, DeployContext] = {}

# The deploy's parts, in the order they run. Configs and networks are always brought up to date;
# a run can be limited to some services with host data mcpgate_components (e.g. on the command
# line: --data mcpgate_components=redis,authelia).
SERVICES = ("docker", "redis", "authelia", "backends", "ingress", "agentgateway", "tailscale")


def selected_components(value: Any) -> tuple[str, ...]:
    if value in (None, "", "all"):
        return SERVICES
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        raise MCPGateError(f"mcpgate_components: unknown {', '.join(unknown)}; choose from {', '.join(SERVICES)}")
    return tuple(n for n in SERVICES if n in names)


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
    """The deploy context of a pyinfra host; user mistakes become pyinfra's one-line errors."""
    from pyinfra.api.exceptions import PyinfraError

    if host.name not in _contexts:
        try:
            _contexts[host.name] = build_context(host.name, host.data.get(DATA_KEY))
        except MCPGateError as err:
            raise PyinfraError(str(err)) from None
    return _contexts[host.name]
