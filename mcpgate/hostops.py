"""pyinfra facts and operations for the stack: honest change detection on a live host.

pyinfra's own ``docker.container`` only asks "does it exist, is it running"; these operations
compare what the model wants with what the host has, and do something only on a difference:

- :func:`stack_files` writes rendered files (owner, mode and content compared by sha256);
- :func:`docker_container` recreates a container when its spec hash label differs, and restarts
  it when the digest of its mounted files differs from the one it last started with;
- :func:`wait_healthy` waits only for a container that is not healthy yet.

A run that finds everything as wanted yields no command at all, so pyinfra reports no change.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyinfra import host, logger
from pyinfra.api import FactBase, FileUploadCommand, operation
from pyinfra.api.exceptions import OperationError

from . import snapshot
from .container_specs import LABEL_SERVICE, LABEL_SPEC, LABEL_STACK, ContainerSpec, NetworkSpec, assign_subnets
from .render import HostDir, HostFile

STATE_DIR = ".state"  # under base_dir: the config digest each container last started with
UPLOAD_DIR = ".upload"  # under base_dir: private staging for uploads that go through sudo
MANIFEST = ".mcpgate-manifest"  # under base_dir: the files the deploy placed there
# At the root of Authelia's data volume: the digest of the TOTP import and of the subjects last applied.
TOTP_MARKER = ".mcpgate-totp-import"
SUBJECTS_MARKER = ".mcpgate-subjects"


# --- facts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathInfo:
    kind: str  # "d" or "f"
    owner: str  # uid:gid
    mode: int
    sha256: str | None


class StackTree(FactBase):
    """Every folder and file under the stack's base folder: owner, mode and (files) sha256."""

    def command(self, base: str) -> str:
        b = shlex.quote(base)
        return (
            f"if [ -d {b} ]; then "
            f"find {b} \\( -type d -o -type f \\) -printf '%y|%U:%G|%m|%p\\n'; "
            f"find {b} -type f -exec sha256sum {{}} + | sed 's/^/S|/'; "
            "fi"
        )

    def process(self, output: list[str]) -> dict[str, PathInfo]:
        entries: dict[str, tuple[str, str, int]] = {}
        sums: dict[str, str] = {}
        for line in output:
            if line.startswith("S|"):
                digest, _, path = line[2:].partition("  ")
                sums[path] = digest
            elif line[:2] in ("d|", "f|"):
                kind, owner, mode, path = line.split("|", 3)
                entries[path] = (kind, owner, int(mode, 8))
        return {p: PathInfo(k, o, m, sums.get(p)) for p, (k, o, m) in entries.items()}

    def default(self) -> dict[str, PathInfo]:
        return {}


@dataclass(frozen=True)
class Deployed:
    files: frozenset[str]  # every regular file under base_dir (absolute; none behind a symlink)
    manifest: tuple[str, ...] | None  # what the deploy recorded placing (relative); None: no record
    manifest_stat: str  # "uid:gid|mode" of the record, "" without one


class DeployedFiles(FactBase):
    """The record of the files the deploy placed under ``base`` (see :func:`prune_stack_files`) and
    the regular files there now; one command however many files."""

    def command(self, base: str) -> str:
        b, m = _q(base), _q(posixpath.join(base, MANIFEST))
        return (
            f"if [ -d {b} ]; then find {b} -type f -printf 'F|%p\\n'; fi; "
            f"if [ -f {m} ] && [ ! -L {m} ]; then echo \"M|$(stat -c '%u:%g|%a' {m})\"; sed 's/^/L|/' {m}; fi"
        )

    def process(self, output: list[str]) -> Deployed:
        files: set[str] = set()
        manifest: list[str] | None = None
        manifest_stat = ""
        for line in output:
            kind, _, rest = line.partition("|")
            if kind == "F":
                files.add(rest)
            elif kind == "M":
                manifest, manifest_stat = [], rest.strip()
            elif kind == "L" and manifest is not None and rest and not rest.startswith("#"):
                manifest.append(rest)
        return Deployed(frozenset(files), None if manifest is None else tuple(manifest), manifest_stat)

    def default(self) -> Deployed:
        return Deployed(frozenset(), None, "")


class DockerEngine(FactBase):
    """The running engine's version, or None when no engine answers."""

    def requires_command(self) -> str:
        return "docker"

    def command(self) -> str:
        return "docker version --format '{{.Server.Version}}' 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        return output[0].strip() if output and output[0].strip() else None

    def default(self) -> None:
        return None


class DockerContainers(FactBase):
    """``docker inspect`` of every container mcpgate made (any stack's; names carry the stack's), by name."""

    def requires_command(self) -> str:
        return "docker"

    def command(self) -> str:
        return (
            f"ids=$(docker ps -aq --filter label={LABEL_SERVICE} 2>/dev/null); "
            '[ -n "$ids" ] && docker inspect $ids 2>/dev/null || echo "[]"'
        )

    def process(self, output: list[str]) -> dict[str, Any]:
        text = "\n".join(output).strip()
        return {c["Name"].lstrip("/"): c for c in (json.loads(text) if text else [])}

    def default(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class NetworkInfo:
    internal: bool
    subnet: str | None
    containers: tuple[str, ...]  # names of the containers attached


class StackNetworks(FactBase):
    """The stack's networks (by its label) and any network with one of ``names``: whether each is
    internal, its IPv4 subnet and the containers attached. One command for all of them."""

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "docker"

    def command(self, stack: str, names: list[str]) -> str:
        label = shlex.quote(f"{LABEL_STACK}={stack}")
        quoted = " ".join(shlex.quote(n) for n in names)
        return (
            f"docker network inspect --format '{{{{json .}}}}' "
            f"$(docker network ls -q --filter label={label}) {quoted} 2>/dev/null; true"
        )

    def process(self, output: list[str]) -> dict[str, NetworkInfo]:
        nets: dict[str, NetworkInfo] = {}
        for line in output:
            line = line.strip()
            if not line.startswith("{"):
                continue
            net = json.loads(line)
            configs = (net.get("IPAM") or {}).get("Config") or []
            subnet = next((c["Subnet"] for c in configs if "." in c.get("Subnet", "")), None)
            attached = tuple(sorted(c.get("Name", "") for c in (net.get("Containers") or {}).values()))
            nets[net["Name"]] = NetworkInfo(bool(net.get("Internal")), subnet, attached)
        return nets

    def default(self) -> dict[str, NetworkInfo]:
        return {}


class ContainerReady(FactBase):
    """Whether a container is ready: healthy, or running (and ``probe`` succeeds) without a healthcheck."""

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "docker"

    def command(self, container: str, probe: str | None = None) -> str:
        return f"if {ready_check(container, probe)}; then echo ready; else echo waiting; fi"

    def process(self, output: list[str]) -> bool:
        return bool(output) and output[-1].strip() == "ready"

    def default(self) -> bool:
        return False


def ready_check(name: str, probe: str | None = None) -> str:
    """A shell condition that holds when the container is ready."""
    status = (
        "{{if .State.Health}}{{.State.Health.Status}}{{else if .State.Running}}running{{else}}{{.State.Status}}{{end}}"
    )
    s = f"s=$(docker inspect --format {shlex.quote(status)} {shlex.quote(name)} 2>/dev/null)"
    running = f'[ "$s" = running ] && {probe}' if probe else '[ "$s" = running ]'
    return f'{{ {s}; [ "$s" = healthy ] || {{ {running}; }}; }}'


class DockerVolumes(FactBase):
    """For each named volume that exists: its mountpoint's owner and mode."""

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "docker"

    def command(self, names: list[str]) -> str:
        quoted = " ".join(shlex.quote(n) for n in names)
        return (
            f"for n in {quoted}; do "
            "mp=$(docker volume inspect --format '{{.Mountpoint}}' \"$n\" 2>/dev/null) || continue; "
            'echo "$n|$(stat -c \'%u:%g|%a\' "$mp")|$mp"; done'
        )

    def process(self, output: list[str]) -> dict[str, tuple[str, int, str]]:
        out = {}
        for line in output:
            name, owner, mode, mountpoint = line.split("|", 3)
            out[name] = (owner, int(mode, 8), mountpoint)
        return out

    def default(self) -> dict[str, tuple[str, int, str]]:
        return {}


class DockerImages(FactBase):
    """The local image id of each given reference that exists."""

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "docker"

    def command(self, refs: list[str]) -> str:
        quoted = " ".join(shlex.quote(r) for r in refs)
        return (
            f"for r in {quoted}; do "
            'i=$(docker image inspect --format \'{{.Id}}\' "$r" 2>/dev/null) && echo "$r|$i"; done; true'
        )

    def process(self, output: list[str]) -> dict[str, str]:
        return dict(line.strip().split("|", 1) for line in output if "|" in line)

    def default(self) -> dict[str, str]:
        return {}


# --- reading the facts, from the deploy's snapshot where it covers them ---------------------------


def snapshot_facts() -> dict[str, FactBase]:
    """The facts whose outputs make up a :class:`mcpgate.snapshot.StackSnapshot`, by section."""
    return {
        "engine": DockerEngine(),
        "tree": StackTree(),
        "deployed": DeployedFiles(),
        "path": PathExists(),
        "containers": DockerContainers(),
        "networks": StackNetworks(),
        "volumes": DockerVolumes(),
        "images": DockerImages(),
        "marker": VolumeMarker(),
        "ready": ContainerReady(),
    }


def _read(fact: type[FactBase], section: str, covered: Callable[[snapshot.SnapshotQuery], bool], **kwargs: Any) -> Any:
    """``host.get_fact(fact, **kwargs)``, or the same parsed from the snapshot's ``section`` when the
    deploy's snapshot query covers what is asked."""
    snap = snapshot.current()
    if snap is None or not covered(snap.query):
        return host.get_fact(fact, **kwargs)
    if section not in snap.sections and not snap.docker:  # no engine yet: what the fact says then
        return fact().default()
    return fact().process(snap.lines(section))


def _tree(base: str) -> dict[str, PathInfo]:
    return _read(StackTree, "tree", lambda q: q.base_dir == base, base=base)


def _containers() -> dict[str, Any]:
    return _read(DockerContainers, "containers", lambda q: True)


def _images(ref: str) -> dict[str, str]:
    return _read(DockerImages, "images", lambda q: ref in q.images, refs=[ref])


def _networks(stack: str, names: list[str]) -> dict[str, NetworkInfo]:
    covered = lambda q: q.stack == stack and set(names) <= set(q.networks)  # noqa: E731
    return _read(StackNetworks, "networks", covered, stack=stack, names=names)


def _ready(container: str, probe: str | None) -> bool:
    snap = snapshot.current()
    if snap is not None and probe is None:
        state = (_containers().get(container) or {}).get("State") or {}
        health = (state.get("Health") or {}).get("Status")
        return health == "healthy" if health else bool(state.get("Running"))
    return _read(
        ContainerReady, f"ready:{container}", lambda q: (container, probe) in q.probes, container=container, probe=probe
    )


# --- operations ---------------------------------------------------------------------------------


def _q(value: str) -> str:
    return shlex.quote(value)


def shell_command(*args: str) -> str:
    """One shell command, every argument quoted."""
    return shlex.join(args)


def _staging(upload_dir: str, dest: str) -> str:
    """Where an upload to ``dest`` is staged: named after the destination, never after the content."""
    return posixpath.join(upload_dir, f"{hashlib.sha256(dest.encode()).hexdigest()[:16]}.tmp")


def prepare_private_uploads(upload_dir: str, dests: list[str]) -> str:
    """
    One command that makes the uploads to ``dests`` private from their first byte on: run it
    before :func:`private_upload` of each, and :func:`finish_private_upload` after.

    With sudo, pyinfra uploads as the SSH user (SFTP) to a staging file, copies that with ``cp``
    as root to the destination and removes the staging file. Both files are created here, empty,
    under umask 077: the staging file in ``upload_dir`` (0700, the SSH user's) for the SSH user,
    the destination for root. SFTP and ``cp`` then only write into files that already exist, which
    keeps their mode 0600 whatever the SSH server's or sudo's umask; without sudo pyinfra writes the
    destination directly, again into the 0600 file. Never /tmp, where pyinfra would stage a 0644
    file under a predictable name.
    """
    user = '"${SUDO_USER:-$(id -un)}"'
    parent = _q(posixpath.dirname(upload_dir))
    steps = [
        f"{{ [ -d {parent} ] || install -d -m 755 {parent}; }}",  # the SSH user must reach upload_dir
        f"install -d -m 700 -o {user} {_q(upload_dir)}",
        f"chown {user} {_q(upload_dir)}",
        f"chmod 700 {_q(upload_dir)}",
        "umask 077",
        "set -C",  # a file created below is new (O_EXCL): never one that was there, nor a symlink's target
    ]
    for dest in dests:
        staged = _staging(upload_dir, dest)
        steps += [
            f"rm -f {_q(staged)} {_q(dest)}",
            f": > {_q(staged)}",
            f"chown {user} {_q(staged)}",
            f": > {_q(dest)}",
        ]
    return " && ".join(steps)


def private_upload(content: bytes, dest: str, upload_dir: str) -> FileUploadCommand:
    """Upload ``content`` into ``dest``, staged in ``upload_dir``; see :func:`prepare_private_uploads`."""
    return FileUploadCommand(io.BytesIO(content), dest, remote_temp_filename=_staging(upload_dir, dest))


def finish_private_upload(upload_dir: str, dest: str) -> str:
    """Remove the staging file (pyinfra leaves it when it wrote ``dest`` directly, without sudo)."""
    return f"rm -f {_q(_staging(upload_dir, dest))}"


@operation()
@snapshot.changes_host("tree", "deployed")
def stack_files(base_dir: str, dirs: list[HostDir], files: list[HostFile]):
    """
    Make folders and files under ``base_dir`` exactly as rendered: content, owner, mode.

    + base_dir: the stack's folder on the host
    + dirs: folders to create (relative to base_dir), in order
    + files: files to write (relative to base_dir)

    Files are written next to their target and renamed into place, so a container never reads a
    half-written file; every folder holding a secret is 0700 before anything is put in it, and each
    file is uploaded privately (:func:`prepare_private_uploads`). Nothing is removed here: see
    :func:`prune_stack_files`.

    **Example:**

    .. code:: python

        stack_files(name="agentgateway files", base_dir="/opt/mcpgate", dirs=[...], files=[...])
    """
    tree = _tree(base_dir)
    upload_dir = posixpath.join(base_dir, UPLOAD_DIR)

    for d in [HostDir("", 0o755, "0:0"), *dirs]:
        path = posixpath.join(base_dir, d.path) if d.path else base_dir
        have = tree.get(path)
        if have is None:
            yield f"install -d -m {d.mode:o} -o {d.owner.split(':')[0]} -g {d.owner.split(':')[1]} {_q(path)}"
        elif have.kind != "d":
            raise ValueError(f"{path} exists on the host and is not a folder; move it away")
        else:
            if have.owner != d.owner:
                yield f"chown {d.owner} {_q(path)}"
            if have.mode != d.mode:
                yield f"chmod {d.mode:o} {_q(path)}"

    writes: list[tuple[HostFile, str, str]] = []  # (file, its path, the temporary file beside it)
    fixes: list[str] = []
    for f in files:
        path = posixpath.join(base_dir, f.path)
        have = tree.get(path)
        if have is not None and have.kind != "f":
            raise ValueError(f"{path} exists on the host and is not a file; move it away")
        if have is None or have.sha256 != f.sha256:
            tmp = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.mcpgate-new")
            writes.append((f, path, tmp))
        else:
            if have.owner != f.owner:
                fixes.append(f"chown {f.owner} {_q(path)}")
            if have.mode != f.mode:
                fixes.append(f"chmod {f.mode:o} {_q(path)}")

    if writes:
        yield prepare_private_uploads(upload_dir, [tmp for _, _, tmp in writes])
    for f, path, tmp in writes:
        yield private_upload(f.content, tmp, upload_dir)
        yield (
            f"chown {f.owner} {_q(tmp)} && chmod {f.mode:o} {_q(tmp)} && mv -f {_q(tmp)} {_q(path)} "
            f"&& {finish_private_upload(upload_dir, tmp)}"
        )
    yield from fixes


def _manifest_path_problem(rel: str) -> str | None:
    """Why ``rel`` cannot be a manifest entry (a plain relative path below base_dir), or None."""
    if not rel or rel.startswith("/") or "\n" in rel or "\r" in rel or rel.startswith("#"):
        return "not a plain relative path"
    if posixpath.normpath(rel) != rel or rel.split("/")[0] == "..":
        return "not normalised, or outside base_dir"
    return None


def manifest_text(files: list[str]) -> str:
    """The manifest's content: a comment, then each relative path on a line, sorted."""
    header = "# mcpgate: the files the deploy placed in this folder; it only ever removes files listed here\n"
    return header + "".join(f"{rel}\n" for rel in sorted(set(files)))


_said: set[tuple[str, str | None, str]] = set()


def _say(message: str) -> None:
    """A line in pyinfra's output (once per operation, though pyinfra runs its body twice)."""
    key = (host.name, host.current_op_hash, message)
    if key not in _said:
        _said.add(key)
        logger.warning(f"{host.print_prefix}{message}")


@operation()
@snapshot.changes_host("tree", "deployed")
def prune_stack_files(base_dir: str, files: list[str]):
    """
    Remove the files an earlier deploy placed under ``base_dir`` that the render no longer has,
    and record the files placed now. Nothing the deploy did not write is ever removed.

    + base_dir: the stack's folder on the host
    + files: every rendered file, relative to base_dir

    The record is ``base_dir/.mcpgate-manifest`` (root, 0600): one relative path a line. A file
    is removed only when the previous record lists it, the render no longer has it, and it is a
    regular file under base_dir (not a symlink, not behind one). A host deployed before the record
    existed has none: then nothing is removed, the output says so, and the record is written. Run
    it after the files are written: a run that fails before leaves new files unrecorded, which
    only means they are never removed.

    Reading the record and the folder is one command; a run with nothing to do writes nothing.

    **Example:**

    .. code:: python

        prune_stack_files(name="files no longer rendered", base_dir="/opt/mcpgate", files=[...])
    """
    for rel in files:
        problem = _manifest_path_problem(rel)
        if problem:
            raise ValueError(f"cannot record {rel!r} in {MANIFEST}: {problem}")
    have = _read(DeployedFiles, "deployed", lambda q: q.base_dir == base_dir, base=base_dir)
    wanted = sorted(set(files))
    remove: list[str] = []
    if have.manifest is None:
        _say(
            f"{posixpath.join(base_dir, MANIFEST)} is missing (a deploy by an older mcpgate, or the first): "
            f"nothing removed; recording the {len(wanted)} files placed now"
        )
    else:
        for rel in sorted(set(have.manifest) - set(wanted)):
            path = posixpath.join(base_dir, rel)
            if _manifest_path_problem(rel) is not None:
                _say(f"{MANIFEST} lists {rel!r}, which is no path below {base_dir}: ignored")
            elif path in have.files:  # gone already, or no longer a regular file: left alone
                remove.append(path)
    # One command: the removals, then the new record (kept as it was if a removal fails).
    steps = [f"rm -f -- {' '.join(_q(path) for path in remove)}"] if remove else []
    manifest = posixpath.join(base_dir, MANIFEST)
    if have.manifest is None or list(have.manifest) != wanted:
        tmp = posixpath.join(base_dir, f"{MANIFEST}.mcpgate-new")
        lines = " ".join(_q(line) for line in manifest_text(wanted).splitlines())
        steps += [
            "umask 077",
            f"rm -f {_q(tmp)}",
            f"printf '%s\\n' {lines} > {_q(tmp)}",
            f"chown 0:0 {_q(tmp)}",
            f"mv -f {_q(tmp)} {_q(manifest)}",
        ]
    elif have.manifest_stat != "0:0|600":
        steps += [f"chown 0:0 {_q(manifest)}", f"chmod 600 {_q(manifest)}"]
    if steps:
        yield " && ".join(steps)


@operation()
@snapshot.changes_host("networks", "containers", "ready")
def docker_networks(networks: list[NetworkSpec], pool: str, stack: str):
    """
    The stack's bridge networks, each on its own slot of ``pool``; ``internal`` ones have no route
    out and no address on the host.

    A network with the wrong kind or a subnet outside its slot is recreated; the containers still
    attached are disconnected first (their spec names the pool, so the deploy recreates them).

    **Example:**

    .. code:: python

        docker_networks(networks=stack_networks(stack), pool="172.31.252.0/22", stack="mcpgate")
    """
    have = _networks(stack, sorted(n.name for n in networks))
    try:
        subnets = assign_subnets(pool, networks, {name: info.subnet for name, info in have.items()})
    except ValueError as err:
        raise OperationError(str(err)) from None
    for net in networks:
        subnet = subnets[net.name]
        info = have.get(net.name)
        if info is not None and info.internal == net.internal and info.subnet == str(subnet):
            continue
        if info is not None:
            for container in info.containers:
                yield shell_command("docker", "network", "disconnect", "-f", net.name, container)
            yield shell_command("docker", "network", "rm", net.name)
        yield shell_command("docker", "network", "create", *net.create_args(subnet, stack))


def _stack_containers(stack: str) -> dict[str, Any]:
    return {
        name: c
        for name, c in _containers().items()
        if ((c.get("Config") or {}).get("Labels") or {}).get(LABEL_STACK) == stack
    }


@operation()
@snapshot.changes_host("containers", "networks", "ready")
def prune_containers(containers: list[str], stack: str):
    """
    Remove the stack's containers that the inventory no longer declares (a removed or disabled
    backend's). Their data volumes and host folders are kept, and said so.

    **Example:**

    .. code:: python

        prune_containers(containers=["mcpgate-redis", "mcpgate-authelia"], stack="mcpgate")
    """
    for name, info in sorted(_stack_containers(stack).items()):
        if name in containers:
            continue
        yield shell_command("docker", "rm", "-f", name)
        kept = [m.get("Name") or m.get("Source") for m in info.get("Mounts") or [] if m.get("RW")]
        if kept:
            _say(f"{name} is no longer declared and goes; its data is kept: {', '.join(sorted(kept))}")


@operation()
@snapshot.changes_host("networks")
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
    gone = {name for name in _stack_containers(stack) if every_service_ran or name not in containers}
    have = _networks(stack, sorted(wanted))
    for name, info in sorted(have.items()):
        if name in wanted:
            continue
        others = [c for c in info.containers if c not in gone]
        if others:
            _say(f"network {name} is no longer used by the stack but kept: {', '.join(others)} still on it")
        else:
            yield shell_command("docker", "network", "rm", name)


@operation()
@snapshot.changes_host("volumes", "marker")
def docker_volume(volume: str, owner: str, stack: str):
    """
    A named volume whose root belongs to the service that writes to it (mode 0700).

    **Example:**

    .. code:: python

        docker_volume(name="Redis data", volume="mcpgate-redis-data", owner="10379:10379", stack="mcpgate")
    """
    have = _read(DockerVolumes, "volumes", lambda q: volume in q.volumes, names=[volume]).get(volume)
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
        mp = f"$(docker volume inspect --format '{{{{.Mountpoint}}}}' {_q(volume)})"
        yield f'chown {owner} "{mp}" && chmod 700 "{mp}"'
        return
    current_owner, mode, mountpoint = have
    if current_owner != owner:
        yield f"chown {owner} {_q(mountpoint)}"
    if mode != 0o700:
        yield f"chmod 700 {_q(mountpoint)}"


@operation()
@snapshot.changes_host("images")
def docker_image(ref: str, build_dir: str | None = None, build_args: dict[str, str] | None = None):
    """
    Make an image present: pull a pinned reference, or build a content-addressed tag from a folder.

    **Example:**

    .. code:: python

        docker_image(ref="redis:7.4.2-alpine")
        docker_image(ref="mcpgate-local/notes:0123abcd", build_dir="/opt/mcpgate/build/notes")
    """
    if ref in _images(ref):
        host.noop(f"image {ref} is present")
        return
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
@snapshot.changes_host("containers", "networks", "tree", "deployed", "ready")
def docker_container(spec: ContainerSpec, base_dir: str, config_digest: str):
    """
    Run a container exactly as specified; restart it when its mounted files changed.

    + spec: the container, see ``mcpgate.container_specs``
    + base_dir: the stack's folder, which keeps the digest each container last started with
    + config_digest: hash of the files the container reads (``Rendered.config_digest``)

    Recreated when the spec hash label differs (image, env, mounts, ports, limits...); restarted
    when only its files changed; started when stopped; otherwise left alone.

    **Example:**

    .. code:: python

        docker_container(spec=redis_spec(stack), base_dir="/opt/mcpgate", config_digest="ab12...")
    """
    have = _containers().get(spec.name)
    state_file = _state_file(base_dir, spec.name)
    tree = _read(StackTree, "tree", lambda q: q.base_dir == base_dir, base=posixpath.dirname(state_file))
    applied = tree.get(state_file)
    record = (
        f"install -d -m 700 {_q(posixpath.dirname(state_file))} && printf %s {_q(config_digest)} > {_q(state_file)}"
    )
    # The state file holds the digest itself; compare through its sha256.
    applied_ok = applied is not None and applied.sha256 == hashlib.sha256(config_digest.encode()).hexdigest()

    labels = (have or {}).get("Config", {}).get("Labels") or {}
    # A tag moved to another image (pulled again, rebuilt) counts as a changed spec.
    image_id = _images(spec.image).get(spec.image)
    stale_image = have is not None and image_id is not None and have.get("Image") != image_id
    if have is None or labels.get(LABEL_SPEC) != spec.spec_hash or stale_image:
        if have is not None:
            yield shell_command("docker", "rm", "-f", spec.name)
        yield shell_command("docker", "create", *spec.run_args())
        for network in spec.networks[1:]:
            yield shell_command("docker", "network", "connect", network, spec.name)
        yield shell_command("docker", "start", spec.name)
        yield record
        return
    running = have.get("State", {}).get("Running", False)
    if not applied_ok:
        yield shell_command("docker", "restart", "--time", "10", spec.name)
        yield record
    elif not running:
        yield shell_command("docker", "start", spec.name)


@operation()
@snapshot.changes_host("containers", "ready")
def wait_healthy(container: str, timeout: int = 120, probe: str | None = None):
    """
    Wait until a container is healthy (or running, and ``probe`` succeeds, when it has no
    healthcheck); fail loudly with its last log lines otherwise. A ready container costs nothing.

    **Example:**

    .. code:: python

        wait_healthy(name="Authelia is healthy", container="mcpgate-authelia", timeout=120)
    """
    if _ready(container, probe):
        host.noop(f"{container} is ready")
        return
    # Give up early on a crash loop: three restarts while waiting say enough.
    count = f"docker inspect --format '{{{{.RestartCount}}}}' {_q(container)}"
    # Asked five times a second: a restart is ready within a fifth of a second of being so.
    yield (
        f"r0=$({count}); i=0; until {ready_check(container, probe)}; do "
        f"i=$((i+1)); r=$({count}); "
        f"if [ $i -gt {timeout * 5} ] || [ $((r - r0)) -ge 3 ]; then "
        f"echo '{container} did not become ready (waited '$((i / 5))' s, '$((r - r0))' restarts); "
        "its last log lines:' >&2; "
        f"docker logs --tail 40 {_q(container)} >&2; exit 1; fi; sleep 0.2; done"
    )


class VolumeMarker(FactBase):
    """The content of a marker file at the root of a named volume ('' when absent)."""

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "docker"

    def command(self, volume: str, marker: str) -> str:
        return (
            f"mp=$(docker volume inspect --format '{{{{.Mountpoint}}}}' {_q(volume)} 2>/dev/null) "
            f'&& cat "$mp"/{_q(marker)} 2>/dev/null; true'
        )

    def process(self, output: list[str]) -> str:
        return "\n".join(output).strip()

    def default(self) -> str:
        return ""


class AutheliaIdentifiers(FactBase):
    """user -> OIDC subject as Authelia's database has it (empty when Authelia is not running)."""

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "docker"

    def command(self, container: str, config: str) -> str:
        c, tmp = _q(container), "/tmp/mcpgate-identifiers.yml"
        return (
            f"if docker exec {c} authelia storage user identifiers export --config {_q(config)} "
            f"--file {tmp} >/dev/null 2>&1; then docker exec {c} cat {tmp}; docker exec {c} rm -f {tmp}; fi; true"
        )

    def process(self, output: list[str]) -> dict[str, str]:
        from .identity import parse_identifiers_export

        return parse_identifiers_export("\n".join(output))

    def default(self) -> dict[str, str]:
        return {}


@operation()
@snapshot.changes_host("marker")
def authelia_identity(
    container: str,
    volume: str,
    owner: str,
    config: str,
    totp_file: str,
    totp_digest: str,
    subjects: dict[str, str],
):
    """
    Seed each user's TOTP from the store (file import, never on a command line) and pin each
    user's OIDC ``sub``, so a rebuilt host keeps authenticator apps and token subjects.

    The TOTP import runs when the marker in Authelia's data volume does not name the current
    import file: after the volume was created, or when a user or seed changed. Subjects are read
    from Authelia (slow: an exec of its CLI) only when a second marker does not name the current
    set of them.

    **Example:**

    .. code:: python

        authelia_identity(container="mcpgate-authelia", volume="mcpgate-authelia-data", ...)
    """
    if _read(VolumeMarker, f"marker:{volume}:{TOTP_MARKER}", lambda q: (volume, TOTP_MARKER) in q.markers,
             volume=volume, marker=TOTP_MARKER) != totp_digest:  # fmt: skip
        yield shell_command("docker", "exec", container, "authelia", "storage", "user", "totp", "import",
                            "--config", config, totp_file)  # fmt: skip
        yield _write_marker(volume, TOTP_MARKER, totp_digest, owner)
    # Asking Authelia for its identifiers takes a second: the marker says they were pinned already.
    pinned = hashlib.sha256(json.dumps(subjects, sort_keys=True).encode()).hexdigest()
    if _read(VolumeMarker, f"marker:{volume}:{SUBJECTS_MARKER}", lambda q: (volume, SUBJECTS_MARKER) in q.markers,
             volume=volume, marker=SUBJECTS_MARKER) == pinned:  # fmt: skip
        return
    have = host.get_fact(AutheliaIdentifiers, container=container, config=config)
    for user, subject in subjects.items():
        if user not in have:
            yield shell_command("docker", "exec", container, "authelia", "storage", "user", "identifiers", "add",
                                user, "--identifier", subject, "--service", "openid", "--config", config)  # fmt: skip
        elif have[user] != subject:
            raise ValueError(
                f"Authelia's database gives {user} the subject {have[user]}, not the stored {subject}; "
                "tokens would change owner. Remove the authelia data volume to re-seed, or put that "
                "subject into the secrets store (users/<name>.sub)"
            )
    yield _write_marker(volume, SUBJECTS_MARKER, pinned, owner)


def _write_marker(volume: str, marker: str, content: str, owner: str) -> str:
    mp = f"$(docker volume inspect --format '{{{{.Mountpoint}}}}' {_q(volume)})"
    return f'printf %s {_q(content)} > "{mp}/{marker}" && chown {owner} "{mp}/{marker}" && chmod 600 "{mp}/{marker}"'


class PathExists(FactBase):
    """Whether a path exists on the host, and as what ("directory", "regular file", ...)."""

    def command(self, path: str) -> str:
        return f"stat -c %F {_q(path)} 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        return output[0].strip() if output and output[0].strip() else None

    def default(self) -> None:
        return None


@operation()
@snapshot.changes_host("path")
def data_directory(path: str, owner: str | None):
    """
    A host folder a backend mounts (e.g. the notes vault): created private to the backend's user
    when missing; an existing folder is the user's data and is left exactly as it is.

    **Example:**

    .. code:: python

        data_directory(name="notes vault folder", path="/srv/notes", owner="1000:1000")
    """
    kind = _read(PathExists, f"path:{path}", lambda q: path in q.paths, path=path)
    if kind == "directory":
        host.noop(f"{path} exists")
        return
    if kind is not None:
        raise ValueError(f"{path} exists on the host and is a {kind}, not a folder")
    uid, gid = (owner or "0:0").split(":")
    yield f"install -d -m 750 -o {uid} -g {gid} {_q(path)}"
