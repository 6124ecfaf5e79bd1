"""The deploy's one-round-trip snapshot: every section parses as the fact that owns it would."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

from mcpgate.hostops.snapshot import SnapshotQuery, StackSnapshot, snapshot_command, snapshot_facts

QUERY = SnapshotQuery(
    base_dir="/opt/mcpgate",
    stack="mcpgate",
    networks=("mcpgate-edge", "mcpgate-sessions"),
    volumes=("mcpgate-redis-data", "mcpgate-authelia-data"),
    images=("redis:7.4.2-alpine",),
    markers=(("mcpgate-authelia-data", ".mcpgate-totp-import"), ("mcpgate-authelia-data", ".mcpgate-subjects")),
    paths=("/srv/notes",),
    probes=(("mcpgate-agentgateway", "docker exec mcpgate-ingress wget -q -O /dev/null http://agentgateway:15021/"),),
)


def _deploy_on_fake_host(monkeypatch: pytest.MonkeyPatch, stage: Any, get_fact: Any) -> Any:
    """pyinfra's host as the snapshot sees it, at ``stage``, its facts from ``get_fact``; QUERY registered."""
    from types import SimpleNamespace

    from mcpgate.hostops import snapshot

    fake = SimpleNamespace(name="gateway.lan", state=SimpleNamespace(current_stage=stage), get_fact=get_fact)
    monkeypatch.setattr(snapshot, "host", fake)
    monkeypatch.setattr(snapshot, "_queries", {})
    monkeypatch.setattr(snapshot, "_cache", {})
    monkeypatch.setattr(snapshot, "_started", {})
    snapshot.register(QUERY)
    return fake


def test_sections_split_where_an_output_has_no_final_newline() -> None:
    output = [
        "@@mcpgate-snapshot:tree",
        "d|0:0|755|/opt/mcpgate",
        "@@mcpgate-snapshot:docker",
        "@@mcpgate-snapshot:marker:mcpgate-authelia-data:.mcpgate-totp-import",
        "0f3a@@mcpgate-snapshot:marker:mcpgate-authelia-data:.mcpgate-subjects",
        "@@mcpgate-snapshot:ready:mcpgate-agentgateway",
        "ready",
    ]
    sections = StackSnapshot().process(output)
    assert sections == {
        "tree": ["d|0:0|755|/opt/mcpgate"],
        "docker": [],
        "marker:mcpgate-authelia-data:.mcpgate-totp-import": ["0f3a"],
        "marker:mcpgate-authelia-data:.mcpgate-subjects": [],
        "ready:mcpgate-agentgateway": ["ready"],
    }
    facts = snapshot_facts()
    assert facts["ready"].process(sections["ready:mcpgate-agentgateway"]) is True
    assert facts["marker"].process(sections["marker:mcpgate-authelia-data:.mcpgate-subjects"]) == ""


def test_the_command_runs_in_a_posix_shell_on_a_host_without_docker(tmp_path) -> None:
    """Real sh, a real folder: the file sections hold what the file facts would read; with no
    ``docker`` on PATH the Docker sections are absent (the deploy then reads the facts' defaults)."""
    base = tmp_path / "stack"
    (base / ".state").mkdir(parents=True)
    (base / ".state" / "mcpgate-redis.config").write_text("abc")
    query = SnapshotQuery(str(base), "mcpgate", (), (), (), (), (str(tmp_path),), ())
    out = subprocess.run(
        ["sh", "-c", snapshot_command(query, snapshot_facts())],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, check=True,
    )  # fmt: skip
    sections = StackSnapshot().process(out.stdout.splitlines())
    if "docker" in sections:  # this machine has docker in /usr/bin: then the engine's sections are there
        assert "containers" in sections
    tree = snapshot_facts()["tree"].process(sections["tree"])
    info = tree[str(base / ".state" / "mcpgate-redis.config")]
    assert info.kind == "f" and info.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert snapshot_facts()["path"].process(sections[f"path:{tmp_path}"]) == "directory"
    # Nothing but mktemp's own folder is removed: not the folder a path's fact looked at, nor its parent.
    assert base.is_dir() and tmp_path.parent.is_dir()


def test_every_query_part_has_its_section() -> None:
    command = snapshot_command(QUERY, snapshot_facts())
    for heading in ("engine", "tree", "deployed", "path:/srv/notes", "containers", "networks", "volumes", "images",
                    "marker:mcpgate-authelia-data:.mcpgate-subjects", "ready:mcpgate-agentgateway"):  # fmt: skip
        assert f"@@mcpgate-snapshot:{heading}" in command


def test_a_refresh_reads_only_the_sections_an_operation_changed() -> None:
    command = snapshot_command(QUERY, snapshot_facts(), frozenset({"containers", "ready"}))
    headings = set(re.findall(r"@@mcpgate-snapshot:([\w:./-]+)", command))
    assert headings == {"docker", "containers", "ready:mcpgate-agentgateway"}


def test_an_operation_names_only_sections_that_exist() -> None:
    from mcpgate.hostops.snapshot import changes_host

    with pytest.raises(ValueError, match="unknown snapshot sections"):
        changes_host("container")


def test_the_journal_is_in_the_snapshot_when_asked() -> None:
    from dataclasses import replace

    query = replace(QUERY, journal_conf="/etc/systemd/journald.conf.d/mcpgate.conf")
    assert "@@mcpgate-snapshot:journal" in snapshot_command(query, snapshot_facts())
    assert "@@mcpgate-snapshot:journal" not in snapshot_command(QUERY, snapshot_facts())
    facts = snapshot_facts()["journal"]
    assert facts.process(["J", "C|ab12"]).journald and facts.process(["J", "C|ab12"]).conf_sha256 == "ab12"
    assert facts.process([]) == facts.default()


def test_while_the_deploy_runs_a_snapshot_without_docker_is_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker is installed by pyinfra's own apt operation, which does not mark the snapshot stale: a
    snapshot taken before it (an operation that ran first read it) must not hide the engine after."""

    from pyinfra.api.state import StateStage

    from mcpgate.hostops import snapshot

    engine: list[bool] = [False]
    gathered: list[bool] = []

    def get_fact(fact, **kwargs):
        gathered.append(engine[0])
        return {"tree": [], **({"docker": [], "images": ["redis:7.4.2-alpine|sha256:aa"]} if engine[0] else {})}

    fake = _deploy_on_fake_host(monkeypatch, StateStage.Prepare, get_fact)
    assert not snapshot.current().docker  # prepared on a host without Docker
    fake.state.current_stage = StateStage.Execute
    assert not snapshot.current().docker  # an operation before Docker's install reads it again
    engine[0] = True  # apt installed Docker
    assert snapshot.current().docker and snapshot.current().lines("images")
    assert gathered == [False, False, True]  # once the engine is there, the snapshot holds again


def test_the_users_file_firewall_and_backup_parse_as_when_read_alone(tmp_path) -> None:
    """Real sh, a real volume folder (a ``docker`` on PATH that only answers ``volume inspect``): the
    Authelia users file (blank lines and all), the egress firewall and the backup's units come in the
    snapshot exactly as their own facts read them, one round trip instead of four."""
    from dataclasses import replace

    mountpoint = tmp_path / "volume"
    mountpoint.mkdir()
    (mountpoint / "users_database.yml").write_text("users:\n\n  alice:\n    displayname: Alice\n\n")
    unit = tmp_path / "mcpgate-backup.service"
    unit.write_text("[Service]\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(
        f'#!/bin/sh\n[ "$1 $2" = "volume inspect" ] && echo {mountpoint}\nexit 0\n'
    )  # fmt: skip
    (bin_dir / "docker").chmod(0o755)
    query = replace(
        QUERY,
        volume_files=(("mcpgate-authelia-data", "users_database.yml"),),
        firewall="mcpgate",
        backup_units=(str(unit), str(tmp_path / "mcpgate-backup.timer")),
        backup_timer="mcpgate-backup.timer",
    )
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}

    def run(command: str) -> list[str]:
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, check=True).stdout.split(
            "\n"
        )[:-1]

    facts = snapshot_facts()
    sections = StackSnapshot().process(run(snapshot_command(query, facts)))
    alone = {
        "volfile:mcpgate-authelia-data:users_database.yml": facts["volfile"].command(
            "mcpgate-authelia-data", "users_database.yml"
        ),
        "firewall": facts["firewall"].command("mcpgate"),
        "backup": facts["backup"].command(list(query.backup_units), query.backup_timer),
    }
    for section, command in alone.items():
        kind = section.split(":", 1)[0]
        assert facts[kind].process(sections[section]) == facts[kind].process(run(command)), section
    users = facts["volfile"].process(sections["volfile:mcpgate-authelia-data:users_database.yml"])
    assert users["content"] == "users:\n\n  alice:\n    displayname: Alice\n"
    assert facts["backup"].process(sections["backup"]).units == {str(unit): unit_digest(unit)}
    # Not asked, not read.
    assert not {"volfile", "firewall", "backup"} & {
        h.split(":", 1)[0] for h in re.findall(r"@@mcpgate-snapshot:([\w:./-]+)", snapshot_command(QUERY, facts))
    }


def unit_digest(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_engines_sections_run_side_by_side_and_print_in_order(tmp_path) -> None:
    """Section a waits for a file section b makes: run one after the other they would never end.
    Where mktemp is missing they run one by one, printing the same."""
    from mcpgate.hostops.snapshot import _side_by_side

    flag = tmp_path / "b-ran"
    sections = [("a", f"while [ ! -e {flag} ]; do sleep 0.05; done; echo A"), ("b", f"touch {flag}; printf B")]
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)}  # mktemp's folder: removed after
    out = subprocess.run(
        ["sh", "-c", _side_by_side(sections)], capture_output=True, text=True, timeout=20, check=True, env=env
    )
    assert StackSnapshot().process(out.stdout.splitlines()) == {"a": ["A"], "b": ["B"]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b-ran"]

    one_by_one = [("a", "echo A"), ("b", "printf B")]
    script = "mktemp() { return 1; }; " + _side_by_side(one_by_one)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=20, check=True)
    assert StackSnapshot().process(out.stdout.splitlines()) == {"a": ["A"], "b": ["B"]}


def test_the_host_and_volume_sections_are_read_while_the_engines_run(tmp_path) -> None:
    """Section a waits for a file that a section read meanwhile makes; that one prints directly
    (never staged), and all of them parse; without mktemp the same, one after the other."""
    from mcpgate.hostops.snapshot import SECTION, _side_by_side

    flag = tmp_path / "c-ran"
    sections = [("a", f"while [ ! -e {flag} ]; do sleep 0.05; done; echo A"), ("b", "printf B")]
    # A fact's command with variables of its own (PathExists sets d): they stay its own.
    keep = tmp_path / "keep"
    keep.mkdir()
    setting = f"d={keep}; mcpgate_snapshot_dir={keep}"
    meanwhile = [f"echo {SECTION}c; touch {flag}; {setting}; printf C", f"echo {SECTION}d; echo D"]
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)}
    script = _side_by_side(sections, meanwhile)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=20, check=True, env=env)
    assert StackSnapshot().process(out.stdout.splitlines()) == {"a": ["A"], "b": ["B"], "c": ["C"], "d": ["D"]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c-ran", "keep"]  # mktemp's folder went, no other
    flag.unlink()
    script = "mktemp() { return 1; }; " + _side_by_side(sections, meanwhile)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=20, check=True, env=env)
    assert StackSnapshot().process(out.stdout.splitlines()) == {"a": ["A"], "b": ["B"], "c": ["C"], "d": ["D"]}


def test_a_read_gathers_again_only_when_its_own_section_was_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    """An operation changed the files: reading the containers costs no round trip, reading the
    files does, and it reads only what was changed."""

    from pyinfra.api.state import StateStage

    from mcpgate.hostops import snapshot
    from mcpgate.hostops.docker_facts import StackContainers
    from mcpgate.hostops.file_facts import StackTree

    gathered: list[list[str]] = []

    def get_fact(fact, query, only=snapshot.KINDS):
        gathered.append(sorted(only))
        return {"tree": [], "docker": [], "containers": []}

    _deploy_on_fake_host(monkeypatch, StateStage.Execute, get_fact)
    snapshot.read_fact(StackContainers, "containers", lambda q: True)
    assert len(gathered) == 1  # the whole snapshot, once
    snapshot.changing("tree", "ready")
    snapshot.read_fact(StackContainers, "containers", lambda q: True)
    assert len(gathered) == 1
    snapshot.read_fact(StackTree, "tree", lambda q: True, base=QUERY.base_dir)
    assert gathered[1:] == [["ready", "tree"]]
    snapshot.read_fact(StackTree, "tree", lambda q: True, base=QUERY.base_dir)
    assert len(gathered) == 2
