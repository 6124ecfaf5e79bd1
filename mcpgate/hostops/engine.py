"""Docker on the host: the engine, and the stack's networks, volumes, images and containers.

pyinfra's own ``docker.container`` only asks "does it exist, is it running"; these operations
compare what the model wants with what the host has, and do something only on a difference:

- :func:`docker_container` recreates a container when its spec hash label differs, and restarts
  it when the digest of its mounted files differs from the one it last started with;
- :func:`wait_healthy` waits only for a container that is not healthy yet;
- :func:`docker_networks`, :func:`docker_volume` and :func:`docker_image` create what is missing
  and fix what differs; :func:`prune_containers` and :func:`prune_networks` remove what the
  inventory no longer declares.

The facts read only what mcpgate made (by its labels); their names are not pyinfra's
(``pyinfra.facts.docker.DockerContainers`` and the like list everything).
"""

from __future__ import annotations

import hashlib
import posixpath
from shlex import quote as _q

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from ..container_specs import ContainerSpec
from ..layout import (
    LABEL_SERVICE,
    LABEL_SPEC,
    LABEL_STACK,
    SERVICES,
    STATE_DIR,
    backend_of,
    volume_name,
)
from ..model.network_plan import NetworkSpec, assign_subnets
from . import snapshot
from .docker_facts import (
    StackVolumes,
    VolumeStacks,
    ready_check,
    volume_mountpoint,
)
from .docker_reads import is_ready, read_containers, read_images, read_networks, read_stack_containers
from .file_facts import StackTree
from .messages import noop_when_unchanged, say
from .shell import shell_command
from .snapshot import read_fact

# --- operations ---------------------------------------------------------------------------------


@operation()
@snapshot.changes_host("networks", "containers", "ready")
@noop_when_unchanged(lambda a: f"networks {', '.join(n.name for n in a['networks'])} are as wanted")
def docker_networks(networks: list[NetworkSpec], pool: str, stack: str):
    """
    The stack's bridge networks, each on its own slot of ``pool``; ``internal`` ones have no route
    out and no address on the host.

    A network with the wrong kind, a subnet outside its slot or another host interface name (an
    egress network's, which its firewall rules name) is recreated; the containers still
    attached are disconnected first, and ``docker_container`` joins them again (or recreates them,
    when a new pool changed their spec). A subnet a stale network still holds is never given out.

    **Example:**

    .. code:: python

        docker_networks(networks=stack_networks(stack), pool="172.31.252.0/22", stack="mcpgate")
    """
    have = read_networks(stack, sorted(n.name for n in networks))
    try:
        subnets = assign_subnets(pool, networks, {name: info.subnet for name, info in have.items()})
    except ValueError as err:
        raise OperationError(str(err)) from None
    for net in networks:
        subnet = subnets[net.name]
        info = have.get(net.name)
        same_bridge = net.bridge is None or (info is not None and info.bridge == net.bridge)
        if info is not None and info.internal == net.internal and info.subnet == str(subnet) and same_bridge:
            continue
        if info is not None:
            for container in info.containers:
                yield shell_command("docker", "network", "disconnect", "-f", net.name, container)
            yield shell_command("docker", "network", "rm", net.name)
        yield shell_command("docker", "network", "create", *net.create_args(subnet, stack))


@operation()
@snapshot.changes_host("containers", "networks", "ready")
@noop_when_unchanged("no container of stack {stack} to remove: the inventory declares each one")
def prune_containers(containers: list[str], stack: str, purge: tuple[str, ...] = ()):
    """
    Remove the stack's containers that the inventory no longer declares (a removed or disabled
    backend's). Their data is kept, and said so, unless the backend is named in ``purge``: then
    its named volumes go too. Host folders are never removed.

    **Example:**

    .. code:: python

        prune_containers(containers=["mcpgate-redis", "mcpgate-authelia"], stack="mcpgate", purge=("scratch",))
    """
    purged: set[str] = set()
    for name, info in sorted(read_stack_containers(stack).items()):
        if name in containers:
            continue
        yield shell_command("docker", "rm", "-f", name)
        service = ((info.get("Config") or {}).get("Labels") or {}).get(LABEL_SERVICE, "")
        backend = backend_of(service) or ""
        written = [m for m in info.get("Mounts") or [] if m.get("RW")]
        volumes = sorted(m["Name"] for m in written if m.get("Type") == "volume" and m.get("Name"))
        folders = sorted(m["Source"] for m in written if m.get("Type") == "bind" and m.get("Source"))
        if backend in purge:
            purged.add(backend)
            # Only a volume the stack made (its label) and none of its services' own data.
            services = {volume_name(stack, s.service) for s in SERVICES.values() if s.data}
            stacks = host.get_fact(VolumeStacks, names=volumes) if volumes else {}
            ours = [v for v in volumes if stacks.get(v) == stack and v not in services]
            for volume in ours:
                yield shell_command("docker", "volume", "rm", volume)
            if ours:
                say(f"{name} is no longer declared and goes with its data volumes (mcpgate_purge): {', '.join(ours)}")
            foreign = [v for v in volumes if v not in ours]
            if foreign:
                say(
                    f"mcpgate_purge: {name}'s volumes {', '.join(foreign)} are kept: the stack did not make them "
                    "(no label of its own) or they hold its services' data, and other containers may use them; "
                    "remove one yourself with docker volume rm if it is really no longer needed"
                )
            volumes = []
        kept = volumes + folders
        if kept:
            hint = f" (--data mcpgate_purge={backend} removes its volumes)" if volumes and backend else ""
            say(f"{name} is no longer declared and goes; its data is kept: {', '.join(kept)}{hint}")
    for backend in sorted(set(purge) - purged):
        say(f"mcpgate_purge: no container of backend {backend} is left to remove; nothing purged for it")


@operation()
@snapshot.changes_host("networks")
@noop_when_unchanged("no network of stack {stack} to remove")
def prune_networks(networks: list[NetworkSpec], containers: list[str], every_service_ran: bool, stack: str):
    """
    Remove the stack's networks that it no longer uses (a removed backend's, an older layout's).

    Run after the containers. A stale network goes when every container still on it is gone by then:
    one :func:`prune_containers` removed (not in ``containers``), or, when ``every_service_ran``, any
    of the stack's (each was recreated on its wanted networks). One still in use is kept, and said so.

    **Example:**

    .. code:: python

        prune_networks(networks=stack_networks(stack), containers=["mcpgate-redis"], every_service_ran=True,
                       stack="mcpgate")
    """
    wanted = {n.name for n in networks}
    gone = {name for name in read_stack_containers(stack) if every_service_ran or name not in containers}
    have = read_networks(stack, sorted(wanted))
    for name, info in sorted(have.items()):
        if name in wanted:
            continue
        others = [c for c in info.containers if c not in gone]
        if others:
            say(f"network {name} is no longer used by the stack but kept: {', '.join(others)} still on it")
        else:
            yield shell_command("docker", "network", "rm", name)


@operation()
@snapshot.changes_host("volumes", "marker", "volfile")
@noop_when_unchanged("volume {volume} exists, its root owned by {owner}")
def docker_volume(volume: str, owner: str, stack: str):
    """
    A named volume whose root belongs to the service that writes to it (mode 0700).

    **Example:**

    .. code:: python

        docker_volume(name="Redis data", volume="mcpgate-redis-data", owner="10379:10379", stack="mcpgate")
    """
    have = read_fact(StackVolumes, "volumes", lambda q: volume in q.volumes, names=[volume]).get(volume)
    if have is None:
        yield shell_command(
            "docker",
            "volume",
            "create",
            "--label",
            f"{LABEL_SERVICE}=volume",
            "--label",
            f"{LABEL_STACK}={stack}",
            volume,
        )
        mp = volume_mountpoint(volume)
        yield f'chown {owner} "{mp}" && chmod 700 "{mp}"'
        return
    current_owner, mode, mountpoint = have
    if current_owner != owner:
        yield f"chown {owner} {_q(mountpoint)}"
    if mode != 0o700:
        yield f"chmod 700 {_q(mountpoint)}"


@operation()
@snapshot.changes_host("images")
@noop_when_unchanged()
def docker_image(ref: str, build_dir: str | None = None, build_args: dict[str, str] | None = None):
    """
    Make an image present: pull a pinned reference, or build a content-addressed tag from a folder.

    **Example:**

    .. code:: python

        docker_image(ref="redis:7.4.2-alpine")
        docker_image(ref="mcpgate-local/notes:0123abcd", build_dir="/opt/mcpgate/build/notes")
    """
    if ref in read_images(ref):
        return f"image {ref} is present"
    if build_dir is None:
        yield shell_command("docker", "pull", ref)
        return
    args = []
    for key, value in sorted((build_args or {}).items()):
        args += ["--build-arg", f"{key}={value}"]
    yield shell_command("docker", "build", "--pull=false", "-t", ref, *args, build_dir)


def _state_file(base_dir: str, name: str) -> str:
    return posixpath.join(base_dir, STATE_DIR, f"{name}.config")


@operation()
# A restart or start changes only the container's state, which only its readiness is read for (and
# the wait after it does not read, see wait_healthy); creating or joining a network changes more.
@snapshot.changes_host("tree", "deployed", "ready")
@noop_when_unchanged(lambda a: f"container {a['spec'].name} runs as specified, with the current files")
def docker_container(spec: ContainerSpec, base_dir: str, config_digest: str):
    """
    Run a container exactly as specified; restart it when its mounted files changed.

    + spec: the container, see ``mcpgate.container_specs``
    + base_dir: the stack's folder, which keeps the digest each container last started with
    + config_digest: hash of the files the container reads (``Rendered.config_digest``)

    Recreated when the spec hash label differs (image, env, mounts, ports, limits...); joined again
    to a network it is no longer on (one recreated by ``docker_networks``); restarted when only its
    files changed; started when stopped; otherwise left alone.

    **Example:**

    .. code:: python

        docker_container(spec=redis_spec(stack), base_dir="/opt/mcpgate", config_digest="ab12...")
    """
    have = read_containers().get(spec.name)
    state_file = _state_file(base_dir, spec.name)
    tree = read_fact(StackTree, "tree", lambda q: q.base_dir == base_dir, base=posixpath.dirname(state_file))
    applied = tree.get(state_file)
    record = (
        f"install -d -m 700 {_q(posixpath.dirname(state_file))} && printf %s {_q(config_digest)} > {_q(state_file)}"
    )
    # The state file holds the digest itself; compare through its sha256.
    applied_ok = applied is not None and applied.sha256 == hashlib.sha256(config_digest.encode()).hexdigest()

    labels = (have or {}).get("Config", {}).get("Labels") or {}
    # A tag moved to another image (pulled again, rebuilt) counts as a changed spec.
    image_id = read_images(spec.image).get(spec.image)
    stale_image = have is not None and image_id is not None and have.get("Image") != image_id
    if have is None or labels.get(LABEL_SPEC) != spec.spec_hash or stale_image:
        snapshot.note_started(spec.name)
        snapshot.changing("containers", "networks")
        if have is not None:
            yield shell_command("docker", "rm", "-f", spec.name)
        yield shell_command("docker", "create", *spec.run_args())
        for network in spec.networks[1:]:
            yield shell_command("docker", "network", "connect", network, spec.name)
        # One round trip: the digest is recorded once the container runs with the files.
        yield f"{shell_command('docker', 'start', spec.name)} && {record}"
        return
    # A network recreated under it (docker_networks disconnects what is attached) is joined again.
    attached = (have.get("NetworkSettings") or {}).get("Networks")
    if attached is not None:
        for network in spec.networks:
            if network not in attached:
                snapshot.changing("containers", "networks")
                aliases = (
                    [a for alias in spec.aliases for a in ("--alias", alias)] if network == spec.networks[0] else []
                )
                yield shell_command("docker", "network", "connect", *aliases, network, spec.name)
    running = have.get("State", {}).get("Running", False)
    if not applied_ok:
        snapshot.note_started(spec.name)
        yield f"{shell_command('docker', 'restart', '--time', '10', spec.name)} && {record}"
    elif not running:
        snapshot.note_started(spec.name)
        yield shell_command("docker", "start", spec.name)


@operation()
@snapshot.changes_host("ready")  # waiting changes nothing but what the probes answer
@noop_when_unchanged()
def wait_healthy(container: str, timeout: int = 120, probe: str | None = None, own_check: str | None = None):
    """
    Wait until a container is healthy (or running, and ``probe`` succeeds, when it has no
    healthcheck); fail loudly with its last log lines otherwise. A ready container costs nothing.
    ``own_check`` (:func:`own_healthcheck`) is the container's healthcheck, run here while Docker's
    first one is not due yet, so a (re)start is not waited on for a whole interval. A container this
    deploy (re)started is waited for at once, without first reading the host to learn that it has
    only just started (the wait's first check passes at once if it is ready).

    **Example:**

    .. code:: python

        wait_healthy(name="Authelia is healthy", container="mcpgate-authelia", timeout=120)
    """
    if not snapshot.started_by_this_deploy(container) and is_ready(container, probe, own_check):
        return f"{container} is ready"
    # Give up early on a crash loop: three restarts while waiting say enough.
    count = f"docker inspect --format '{{{{.RestartCount}}}}' {_q(container)}"
    # Asked five times a second: a restart is ready within a fifth of a second of being so.
    yield (
        f"r0=$({count}); i=0; until {ready_check(container, probe, own_check)}; do "
        f"i=$((i+1)); r=$({count}); "
        f"if [ $i -gt {timeout * 5} ] || [ $((r - r0)) -ge 3 ]; then "
        f"echo '{container} did not become ready (waited '$((i / 5))' s, '$((r - r0))' restarts); "
        "its last log lines:' >&2; "
        f"docker logs --tail 40 {_q(container)} >&2; exit 1; fi; sleep 0.2; done"
    )
