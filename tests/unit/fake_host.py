"""pyinfra's host as an operation's body sees it, for running one operation without a host: facts
answer from what the test gives, by fact class name and arguments; what the operation says and its
no-change message are kept for the test to read."""

from __future__ import annotations

import copy
import importlib
import json
import pkgutil
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from pyinfra.api.state import StateStage

import mcpgate.hostops
from mcpgate.hostops import messages, snapshot


class FakeHost:
    """pyinfra's host as an operation body sees it: facts answer from the case, by class name and arguments."""

    name = "fixture.host"
    print_prefix = ""
    state = SimpleNamespace(current_stage=StateStage.Execute)  # what mcpgate.hostops.snapshot asks
    current_op_hash = "op-fixture"

    def __init__(self, facts: dict[str, dict[str, Any]]) -> None:
        self.facts = facts
        self.asked: set[tuple[str, str]] = set()
        self.noops: list[str] = []
        self.said: list[str] = []

    def get_fact(self, cls: type, *args: Any, **kwargs: Any) -> Any:
        assert not args, f"{cls.__name__} asked with positional arguments {args!r}: the fixtures key facts by name"
        key = fact_key(kwargs)
        given = self.facts.get(cls.__name__, {})
        if key not in given:
            pytest.fail(
                f"the operation asks {cls.__name__} [{key!r}], which the case does not give "
                f"(it gives {sorted(given) if given else 'none of that fact'})"
            )
        self.asked.add((cls.__name__, key))
        return copy.deepcopy(given[key])

    def noop(self, message: str) -> None:
        self.noops.append(message)


class _Said:
    """pyinfra's logger as :mod:`mcpgate.hostops.messages` uses it."""

    def __init__(self, host: FakeHost) -> None:
        self.host = host

    def warning(self, message: str) -> None:
        self.host.said.append(message)


def fact_key(kwargs: dict[str, Any]) -> str:
    """The key of a fact's arguments in a case: ``"a=x, b=["y", "z"]"``."""
    return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted(kwargs.items()))


def hostops_modules() -> list[ModuleType]:
    package = mcpgate.hostops
    names = [m.name for m in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")]
    return [importlib.import_module(name) for name in sorted(names)]


def run_operation(
    op: Any, host: FakeHost, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], started: list[str] | None = None
) -> list[Any]:
    """The commands the operation's body yields against ``host``, which every module of the adapter
    layer that holds pyinfra's host sees (no snapshot registered: each fact comes from the case);
    ``started``: the containers an earlier operation of the deploy (re)started."""
    for module in hostops_modules():
        if hasattr(module, "host"):
            monkeypatch.setattr(module, "host", host)
    monkeypatch.setattr(messages, "logger", _Said(host))
    monkeypatch.setattr(messages, "_said", set())
    monkeypatch.setattr(snapshot, "_queries", {})
    monkeypatch.setattr(snapshot, "_cache", {})
    monkeypatch.setattr(snapshot, "_started", {host.name: set(started or [])})
    return list(op.__wrapped__(**kwargs))
