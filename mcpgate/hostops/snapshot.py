"""Everything the deploy's operations read from the host, in one round trip.

Each operation of :mod:`mcpgate.hostops` decides from facts: the files under base_dir, the stack's
containers, networks, volumes and images, a readiness probe... Asked one by one, that is some thirty
SSH round trips and as many ``docker`` invocations for a run that changes nothing. The deploy instead
registers what it will ask (:func:`register`, a :class:`SnapshotQuery` built from the inventory by
:func:`mcpgate.hostops.context.snapshot_query`) and the operations read it from one
:class:`StackSnapshot` fact (:func:`read_fact`), gathered once and again only after an operation
changed something on the host (:func:`changes_host` marks it stale). An operation asked about
something the query does not cover (the tests run single operations) gathers its own fact.

The snapshot is kept per host in this module (the deploy file runs once per host).
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.api.state import StateStage

from .authelia_facts import VolumeFile, VolumeMarker
from .docker_facts import ContainerReady, EngineVersion, ImageIds, StackContainers, StackNetworks, StackVolumes
from .file_facts import DeployedFiles, JournalConf, PathExists, StackTree
from .system_facts import BackupHost, EgressFirewallState

SECTION = "@@mcpgate-snapshot:"


@dataclass(frozen=True)
class SnapshotQuery:
    """What the deploy's operations will ask about one stack's host."""

    base_dir: str
    stack: str
    networks: tuple[str, ...]
    volumes: tuple[str, ...]
    images: tuple[str, ...]
    markers: tuple[tuple[str, str], ...]  # (volume, file at its root)
    paths: tuple[str, ...]  # host folders backends mount
    probes: tuple[tuple[str, str], ...]  # (container, shell probe) for containers without a healthcheck
    journal_conf: str = ""  # the stack's journald drop-in ("": not asked)
    volume_files: tuple[tuple[str, str], ...] = ()  # (volume, file at its root) read whole
    firewall: str = ""  # the stack whose egress firewall is read ("": not asked)
    backup_units: tuple[str, ...] = ()  # the backup's unit files, with its timer:
    backup_timer: str = ""  # ("": not asked)


@dataclass(frozen=True)
class Snapshot:
    query: SnapshotQuery
    sections: dict[str, list[str]]  # raw output per section, parsed by the facts that own them
    docker: bool

    def lines(self, section: str) -> list[str]:
        return self.sections.get(section, [])


def _q(value: str) -> str:
    return shlex.quote(value)


# What an operation may change, by the sections that describe it (a section "ready:x" is "ready").
KINDS = frozenset(
    {
        "tree", "deployed", "path", "engine", "containers", "networks", "volumes", "images", "marker", "ready",
        "journal", "volfile", "firewall", "backup",
    }
)  # fmt: skip


def snapshot_command(query: SnapshotQuery, facts: dict[str, FactBase], only: frozenset[str] = KINDS) -> str:
    """One shell script printing every section of the kinds in ``only``; each section is the output
    of the fact that owns it (``facts``), so it parses exactly as when that fact is gathered alone."""
    # Sections read on the host itself (files, units): printed as they run.
    direct: list[str] = []
    if "tree" in only:
        direct.append(f"echo {SECTION}tree; {facts['tree'].command(query.base_dir)}")
    if "deployed" in only:
        direct.append(f"echo {SECTION}deployed; {facts['deployed'].command(query.base_dir)}")
    if "path" in only:
        for path in query.paths:
            direct.append(f"echo {_q(SECTION + 'path:' + path)}; {facts['path'].command(path)}")
    if "journal" in only and query.journal_conf:
        direct.append(f"echo {SECTION}journal; {facts['journal'].command(query.journal_conf)}")
    if "firewall" in only and query.firewall:
        direct.append(f"echo {SECTION}firewall; {facts['firewall'].command(query.firewall)}")
    if "backup" in only and query.backup_timer:
        command = facts["backup"].command(list(query.backup_units), query.backup_timer)
        direct.append(f"echo {SECTION}backup; {command}")
    # The engine's sections that each ask Docker (a CLI start and an API call or a ``docker exec``,
    # 20-150 ms apiece) run side by side, each into its own file of a private folder, and are printed
    # after; meanwhile the sections above and the files in volumes (markers, the users file) are read
    # and printed in order, their content never staged.
    at_once: list[tuple[str, str]] = []
    simple = {
        "engine": lambda: facts["engine"].command(),
        "containers": lambda: facts["containers"].command(),
        "networks": lambda: facts["networks"].command(query.stack, list(query.networks)),
        "volumes": lambda: facts["volumes"].command(list(query.volumes)),
        "images": lambda: facts["images"].command(list(query.images)),
    }
    at_once += [(kind, command()) for kind, command in simple.items() if kind in only]
    if "ready" in only:
        at_once += [(f"ready:{c}", facts["ready"].command(c, probe)) for c, probe in query.probes]
    in_volumes: list[tuple[str, str]] = []
    if "marker" in only:
        in_volumes += [(f"marker:{v}:{m}", facts["marker"].command(v, m)) for v, m in query.markers]
    if "volfile" in only:
        in_volumes += [(f"volfile:{v}:{f}", facts["volfile"].command(v, f)) for v, f in query.volume_files]
    with_docker = f"echo {SECTION}docker; " + _side_by_side(at_once, [*direct, *_one_by_one(in_volumes)])
    without = "; ".join(direct) or ":"
    return f"if command -v docker >/dev/null 2>&1; then {with_docker}; else {without}; fi; true"


def _one_by_one(sections: list[tuple[str, str]]) -> list[str]:
    return [f"echo {_q(SECTION + heading)}; {command}" for heading, command in sections]


def _side_by_side(sections: list[tuple[str, str]], meanwhile: list[str] | None = None) -> str:
    """Run the sections' commands at once and, while they run, the ``meanwhile`` commands (printing
    as they go); then print each section's heading and output in order. The folder is mktemp's
    (mode 0700) and removed after; without mktemp everything runs one by one."""
    # In a subshell: a fact's command sets shell variables of its own (one sets "d"), which must
    # never change the folder removed below.
    later = f"( {'; '.join(meanwhile)} )" if meanwhile else ":"
    if not sections:
        return later
    d = "mcpgate_snapshot_dir"
    start = " ".join(f'( {command} ) >"${d}/{i}" &' for i, (_, command) in enumerate(sections))
    show = "; ".join(f'echo {_q(SECTION + heading)}; cat "${d}/{i}"' for i, (heading, _) in enumerate(sections))
    return (
        f'if {d}=$(mktemp -d 2>/dev/null); then {start} {later}; wait; {show}; rm -rf "${d}"; '
        f"else {later}; {'; '.join(_one_by_one(sections))}; fi"
    )


def snapshot_facts() -> dict[str, FactBase]:
    """The facts whose outputs make up a :class:`StackSnapshot`, by section."""
    return {
        "engine": EngineVersion(),
        "tree": StackTree(),
        "deployed": DeployedFiles(),
        "path": PathExists(),
        "containers": StackContainers(),
        "networks": StackNetworks(),
        "volumes": StackVolumes(),
        "images": ImageIds(),
        "marker": VolumeMarker(),
        "ready": ContainerReady(),
        "journal": JournalConf(),
        "volfile": VolumeFile(),
        "firewall": EgressFirewallState(),
        "backup": BackupHost(),
    }


class StackSnapshot(FactBase):
    """Every section of a :class:`SnapshotQuery`, in one command (see the module's docstring)."""

    def command(self, query: SnapshotQuery, only: frozenset[str] = KINDS) -> str:
        return snapshot_command(query, snapshot_facts(), only)

    def process(self, output: list[str]) -> dict[str, list[str]]:
        sections: dict[str, list[str]] = {}
        current: list[str] | None = None
        for line in output:
            before, heading, name = line.partition(SECTION)
            if not heading:
                # Every line, empty ones too: a section parses as its fact's own output (a file's text).
                if current is not None:
                    current.append(line)
                continue
            # Output that does not end in a newline (a marker file's content) shares its last
            # line with the next heading, which always fills the rest of its line.
            if before and current is not None:
                current.append(before)
            current = sections.setdefault(name, [])
        return sections

    def default(self) -> dict[str, list[str]]:
        return {}


@dataclass
class _Cached:
    snapshot: Snapshot
    stage: StateStage
    # Still true when pyinfra starts executing: nothing is scheduled to run before the operations
    # that read it (see expire_on_execute).
    holds_into_execute: bool = True
    stale: set[str] = field(default_factory=set)  # kinds of section an operation changed since


_queries: dict[str, SnapshotQuery] = {}
_cache: dict[str, _Cached] = {}
_started: dict[str, set[str]] = {}  # the containers this deploy (re)started, per host


def register(query: SnapshotQuery) -> None:
    """Let the operations on the current host read from one snapshot answering ``query``."""
    _queries[host.name] = query
    _cache.pop(host.name, None)
    _started.pop(host.name, None)


def note_started(container: str) -> None:
    """An operation is (re)starting ``container``: whether it is ready is not worth a read of the
    host now (it has only just started), it is waited for (:func:`started_by_this_deploy`)."""
    _started.setdefault(host.name, set()).add(container)


def started_by_this_deploy(container: str) -> bool:
    return container in _started.get(host.name, ())


def current(needs: str | None = None) -> Snapshot | None:
    """The host's snapshot, gathered now if there is none or the host changed since; None when the
    deploy registered no query for this host. With ``needs`` (a section's kind, see KINDS), what
    operations changed since is read again only when that kind is among it."""
    query = _queries.get(host.name)
    if query is None:
        return None
    stage = host.state.current_stage
    cached = _cache.get(host.name)
    if cached is not None and cached.stage != stage and cached.holds_into_execute:
        cached.stage = stage
    # Facts read while pyinfra prepares describe the host before any operation ran. While the
    # deploy runs, a snapshot taken before Docker was there is read again each time: pyinfra's own
    # operations (apt installing Docker) do not say that they changed the host.
    no_engine_yet = cached is not None and stage == StateStage.Execute and not cached.snapshot.docker
    if cached is None or cached.stage != stage or no_engine_yet:
        sections = host.get_fact(StackSnapshot, query=query)
        cached = _Cached(Snapshot(query, sections, "docker" in sections), stage)
        _cache[host.name] = cached
    elif cached.stale and (needs is None or needs in cached.stale):
        # Only what the operations since changed is read again.
        only = frozenset(cached.stale)
        fresh = host.get_fact(StackSnapshot, query=query, only=only)
        kept = {k: v for k, v in cached.snapshot.sections.items() if k.split(":", 1)[0] not in only}
        cached.snapshot = Snapshot(query, {**kept, **fresh}, "docker" in fresh)
        cached.stale = set()
    return cached.snapshot


def read_fact(fact: type[FactBase], section: str, covered: Callable[[SnapshotQuery], bool], **kwargs: Any) -> Any:
    """``host.get_fact(fact, **kwargs)``, or the same parsed from the snapshot's ``section`` when the
    deploy's snapshot query covers what is asked (``covered``).

    **Example:**

    .. code:: python

        read_fact(StackTree, "tree", lambda q: q.base_dir == base, base=base)
    """
    snap = current(needs=section.split(":", 1)[0])
    if snap is None or not covered(snap.query):
        return host.get_fact(fact, **kwargs)
    if section not in snap.sections and not snap.docker:  # no engine yet: what the fact says then
        return fact().default()
    return fact().process(snap.lines(section))


def expire_on_execute() -> None:
    """While preparing: operations not of this module (installing Docker) will change the host
    before the stack's operations run, so the snapshot read now does not hold then."""
    cached = _cache.get(host.name)
    if cached is not None:
        cached.holds_into_execute = False


def changes_host(*kinds: str) -> Callable[[Callable[..., Iterator[Any]]], Callable[..., Iterator[Any]]]:
    """For an operation's function: once it yields a command, the sections of ``kinds`` (see
    KINDS) are stale, and the next operation that reads the snapshot reads them again. Put it
    under ``@operation()``."""
    unknown = set(kinds) - KINDS
    if unknown:
        raise ValueError(f"unknown snapshot sections: {sorted(unknown)}")

    def decorate(func: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            first = True
            for command in func(*args, **kwargs):
                if first:
                    changing(*kinds)
                    first = False
                yield command

        return wrapper

    return decorate


def changing(*kinds: str) -> None:
    """From an operation's body, before it yields: the sections of ``kinds`` are stale from now on,
    besides those its :func:`changes_host` names (for what only some of its commands change)."""
    unknown = set(kinds) - KINDS
    if unknown:
        raise ValueError(f"unknown snapshot sections: {sorted(unknown)}")
    if host.state.current_stage == StateStage.Execute:
        cached = _cache.get(host.name)
        if cached is not None:
            cached.stale.update(kinds)
