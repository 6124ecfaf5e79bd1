"""Every operation of :mod:`mcpgate.hostops`, as pyinfra tests its own: facts in, exact commands out.

Each case is a JSON file in ``tests/unit/operations/<module>.<operation>/`` (module as in
``mcpgate.hostops.<module>``):

- ``kwargs``: the operation's arguments;
- ``facts``: what the host answers, by fact class name, then by the fact's arguments
  (``"base=/opt/mcpgate"``; several are sorted by name and joined with ``", "``, a value that is not a
  string is written as JSON, a fact asked with no arguments has the key ``""``). The operation asking
  a fact the case does not give fails the case, and so does a fact the case gives that it never asks;
- ``commands``: exactly what the operation yields: shell strings, and for a private upload
  ``{"upload": destination, "sha256": of the content, "staging": pyinfra's staging file}``;
- ``noop_description``: required when ``commands`` is empty: what the operation tells pyinfra
  (``host.noop``), or ``null`` when it says nothing;
- ``said``: the lines it writes to pyinfra's output besides (:func:`mcpgate.hostops.messages.say`);
- ``raises``: instead of ``commands``, a substring of ``"<exception class>: <message>"``;
- ``started``: the containers an earlier operation of the same deploy (re)started
  (:func:`mcpgate.hostops.snapshot.note_started`); none when absent;
- ``starts``: the containers the operation (re)starts, which the deploy's wait then waits for
  without reading the host first; none when absent;
- ``comment``: what the case is about, for the reader;
- ``xfail``: why the operation does not yet do what the case says (a known bug; strict: the case
  fails once the operation is fixed, so the mark goes then).

Values that are project types are written ``{"$type": "<name>", ...}`` (see ``_TYPES``); modes are
octal strings (``"755"``). A ``ContainerSpec`` is the shared test stack's (tests/conftest.py
BASE_STACK) container of that service. Secrets in fixtures are obvious test values; no upload's content
may appear in a command.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api import FileUploadCommand

from mcpgate.container_specs import ContainerSpec, stack_containers
from mcpgate.egress import EgressFirewall, egress_firewall
from mcpgate.hostops import snapshot
from mcpgate.hostops.docker_facts import NetworkInfo
from mcpgate.hostops.file_facts import Deployed, JournalState, PathInfo
from mcpgate.hostops.firewall import FirewallState
from mcpgate.hostops.restic import BackupState
from mcpgate.model import load_stack
from mcpgate.model.network_plan import NetworkSpec
from mcpgate.render import render_stack
from mcpgate.rendered import HostDir, HostFile
from mcpgate.secrets import SecretStore, StackSecrets
from tests.conftest import BASE_STACK
from tests.unit.fake_host import FakeHost, hostops_modules, run_operation

FIXTURES = Path(__file__).parent / "operations"
CASE_KEYS = {
    *("comment", "kwargs", "facts", "commands", "noop_description", "said", "raises", "xfail", "started", "starts")
}


def encode_command(command: Any) -> Any:
    """A yielded command as the cases write it."""
    if isinstance(command, str):
        return command
    if isinstance(command, FileUploadCommand):
        content = command.src.getvalue()  # type: ignore[union-attr]
        out: dict[str, Any] = {
            "upload": command.dest,
            "sha256": hashlib.sha256(content).hexdigest(),
            "staging": command.remote_temp_filename,
        }
        if command.connector_arguments:
            out["connector_arguments"] = dict(command.connector_arguments)
        return out
    raise TypeError(f"the operation yields a {type(command).__name__}, which the cases have no form for: {command!r}")


# --- project types in cases -----------------------------------------------------------------------


def _mode(value: str) -> int:
    assert isinstance(value, str), f"a mode is an octal string, not {value!r}"
    return int(value, 8)


@dataclasses.dataclass
class Decoder:
    """Turns ``{"$type": ...}`` values of a case into the project's types."""

    container_specs: Callable[[], dict[str, ContainerSpec]]

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "$type" not in value:
            return {k: self(v) for k, v in value.items()}
        fields = {k: self(v) for k, v in value.items() if k != "$type"}
        kind = value["$type"]
        if kind not in _TYPES:
            raise ValueError(f"unknown $type {kind!r} (known: {', '.join(sorted(_TYPES))})")
        return _TYPES[kind](self, **fields)


def _container_spec(decoder: Decoder, service: str) -> ContainerSpec:
    specs = decoder.container_specs()
    if service not in specs:
        raise ValueError(f"the test stack has no service {service!r} (it has {', '.join(specs)})")
    return specs[service]


def _egress_firewall(_: Decoder, allow: list[str]) -> EgressFirewall:
    """The shared test stack's egress rules, its notes backend given egress and ``egress_allow``."""
    data = copy.deepcopy(BASE_STACK)
    data["backends"][0] |= {"egress": True, "egress_allow": allow}
    firewall = egress_firewall(load_stack("gateway.lan", data))
    assert firewall is not None
    return firewall


_TYPES: dict[str, Callable[..., Any]] = {
    # arguments
    "HostDir": lambda _, path, mode, owner: HostDir(path, _mode(mode), owner),
    "HostFile": lambda _, path, content, mode, owner, service="", secret=False: HostFile(
        path, content.encode(), _mode(mode), owner, service, secret
    ),
    "NetworkSpec": lambda _, **f: NetworkSpec(**f),
    "EgressFirewall": _egress_firewall,
    "ContainerSpec": _container_spec,
    # facts
    "PathInfo": lambda _, kind, owner, mode, sha256=None: PathInfo(kind, owner, _mode(mode), sha256),
    "Deployed": lambda _, files, manifest, manifest_stat: Deployed(
        frozenset(files), None if manifest is None else tuple(manifest), manifest_stat
    ),
    "NetworkInfo": lambda _, internal, subnet, containers, bridge=None: NetworkInfo(
        internal, subnet, tuple(containers), bridge
    ),
    "FirewallState": lambda _, chains, jumps, systemd, unit_sha256, unit_enabled: FirewallState(
        chains, frozenset(tuple(j) for j in jumps), systemd, unit_sha256, unit_enabled
    ),
    "BackupState": lambda _, tools, units, enabled, active: BackupState(frozenset(tools), units, enabled, active),
    "JournalState": lambda _, journald, conf_sha256: JournalState(journald, conf_sha256),
    # StackVolumes' value of a volume: (owner, mode, mountpoint)
    "VolumeStat": lambda _, owner, mode, mountpoint: (owner, _mode(mode), mountpoint),
}


@pytest.fixture(scope="session")
def shared_stack_specs(tmp_path_factory: pytest.TempPathFactory, signing_key_pem: str) -> dict[str, ContainerSpec]:
    """The shared test stack's containers, by service (rendered once, with a store of test values)."""
    stack = load_stack("gateway.lan", copy.deepcopy(BASE_STACK))
    store = SecretStore.for_host(tmp_path_factory.mktemp("operations") / "secrets", "gateway.lan")
    store.set("authelia/oidc_jwks_rs256.pem", signing_key_pem)
    store.set("tokens/home-assistant-token", "ha-long-lived-token")
    return {spec.service: spec for spec in stack_containers(stack, render_stack(stack, StackSecrets(store, stack)))}


# --- the cases ------------------------------------------------------------------------------------


def _cases() -> list[Path]:
    return sorted(FIXTURES.glob("*/*.json"))


def load_case(path: Path) -> dict[str, Any]:
    case = json.loads(path.read_text())
    unknown = set(case) - CASE_KEYS
    assert not unknown, f"{path.name}: unknown keys {sorted(unknown)}"
    assert ("raises" in case) != ("commands" in case), f"{path.name}: give either commands or raises"
    if case.get("commands") == []:
        assert "noop_description" in case, f"{path.name}: no commands: say what it tells pyinfra (or null)"
    return case


def operation_of(folder: str) -> Any:
    module, _, name = folder.rpartition(".")
    return getattr(importlib.import_module(f"mcpgate.hostops.{module}"), name)


@pytest.mark.parametrize("path", _cases(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_operation(path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    case = load_case(path)
    if "xfail" in case:
        request.applymarker(pytest.mark.xfail(reason=case["xfail"], strict=True))
    decode = Decoder(lambda: request.getfixturevalue("shared_stack_specs"))
    host = FakeHost({name: {key: decode(v) for key, v in by_args.items()} for name, by_args in case["facts"].items()})
    op = operation_of(path.parent.name)
    kwargs = decode(case.get("kwargs", {}))

    if "raises" in case:
        with pytest.raises(Exception) as err:  # any class: the case names it in its substring
            run_operation(op, host, monkeypatch, kwargs, case.get("started", []))
        assert case["raises"] in f"{type(err.value).__name__}: {err.value}"
    else:
        yielded = run_operation(op, host, monkeypatch, kwargs, case.get("started", []))
        commands = [encode_command(c) for c in yielded]
        assert commands == case["commands"]
        assert host.noops == ([] if case.get("noop_description") is None else [case["noop_description"]])
        for upload in (c for c in yielded if isinstance(c, FileUploadCommand)):
            content = upload.src.getvalue().decode()  # type: ignore[union-attr]
            assert not [c for c in commands if isinstance(c, str) and content in c], "an upload's content in a command"
    assert host.said == case.get("said", [])
    if "raises" not in case:
        noted = snapshot._started.get(host.name, set()) - set(case.get("started", []))
        assert sorted(noted) == sorted(case.get("starts", [])), "the containers it notes as (re)started"
    given = {(name, key) for name, by_args in case["facts"].items() for key in by_args}
    assert given <= host.asked, f"facts the case gives but the operation never asks: {sorted(given - host.asked)}"


# --- every operation has its cases ----------------------------------------------------------------


def hostops_operations() -> dict[str, Any]:
    """Every pyinfra operation defined in mcpgate.hostops, as ``<module>.<name>``: pyinfra's wrapper
    keeps the function it wraps as ``_inner``, on which ``@operation()`` set ``is_idempotent``."""
    found = {}
    for module in hostops_modules():
        for name, obj in vars(module).items():
            inner = getattr(obj, "_inner", None)
            if inner is not None and hasattr(inner, "is_idempotent") and obj.__module__ == module.__name__:
                found[f"{module.__name__.removeprefix('mcpgate.hostops.')}.{name}"] = obj
    return found


def test_every_operation_has_fixtures_including_a_host_that_already_matches() -> None:
    ops = hostops_operations()
    assert len(ops) >= 13, sorted(ops)  # the discovery itself still finds them
    folders = {p.name for p in FIXTURES.iterdir() if p.is_dir()}
    assert sorted(set(ops) - folders) == [], "operations without fixtures in tests/unit/operations/"
    assert sorted(folders - set(ops)) == [], "fixture folders of no operation"
    for folder in sorted(folders):
        cases = [load_case(p) for p in sorted((FIXTURES / folder).glob("*.json"))]
        assert any(c.get("commands") == [] for c in cases), f"{folder}: no case where the host already matches"
        assert any(c.get("commands") for c in cases), f"{folder}: no case that changes the host"


def test_operations_report_a_noop_one_way() -> None:
    """Through ``noop_when_unchanged`` (a fixed description, or the reason the body returns), never
    by calling pyinfra's ``host.noop`` inline: one place decides how a no-op reads."""
    inline = [
        f"{module.__name__}:{n}"
        for module in hostops_modules()
        if module.__name__ != "mcpgate.hostops.messages"
        for n, line in enumerate(Path(module.__file__ or "").read_text().splitlines(), 1)
        if "host.noop(" in line
    ]
    assert inline == []
