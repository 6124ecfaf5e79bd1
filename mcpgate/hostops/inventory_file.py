"""Read a pyinfra inventory the way pyinfra does, and validate each host's ``mcpgate`` data.

Using pyinfra's own loader means group_data and host data merge exactly as they will during the
deploy, so ``mcpgate check`` and ``pyinfra ... deploy.py`` can never see different stacks. A plain
inventory file (the common case: groups of hosts and their data, no group_data folder) is read
without importing pyinfra, in pyinfra's order; tests/unit/test_inventory_load.py holds that reader to
pyinfra's answer, and anything else goes to pyinfra's loader.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ..checkout import PROJECT_ROOT
from ..errors import InventoryError, MCPGateError
from ..model import Stack, load_stack
from ..secret_store import SecretStore

DATA_KEY = "mcpgate"


def default_secrets_dir() -> Path:
    """secrets/ in the project checkout (not the current folder), unless MCPGATE_SECRETS_DIR says otherwise.

    Tying the store to the checkout keeps a deploy started from another folder from generating a
    second set of credentials.
    """
    env = os.environ.get("MCPGATE_SECRETS_DIR")
    return Path(env) if env else PROJECT_ROOT / "secrets"


def _line_in(tb: TracebackType | None, path: str) -> int | None:
    """The last line of ``path`` in a traceback."""
    line = None
    target = str(Path(path).resolve())
    while tb is not None:
        if str(Path(tb.tb_frame.f_code.co_filename).resolve()) == target:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _inventories_near(folder: Path) -> str:
    """'; inventories there: a.py, b.py' for the .py files in ``folder`` (or the project's inventory/)."""
    # The checkout's own top folder holds deploy.py, not inventories: point at inventory/ instead.
    places = [folder] if folder.resolve() != PROJECT_ROOT else []
    for place in (*places, PROJECT_ROOT / "inventory"):
        try:
            found = sorted(p for p in place.glob("*.py") if p.is_file() and not p.name.startswith("_"))
        except OSError:
            continue
        if found:
            return f"; inventories in {place}: {', '.join(p.name for p in found)}"
    return ""


def _check_inventory_path(path: str) -> None:
    """One line saying what is wrong with the inventory path, before pyinfra sees it.

    pyinfra takes a path that does not exist for a comma-separated host list, and would run a
    folder's or a non-Python file's content: neither is what the person meant.
    """
    p = Path(path)
    if not path:
        raise MCPGateError("no inventory given: name an inventory file, e.g. inventory/home.py")
    if p.is_dir():
        raise MCPGateError(f"inventory {path!r} is a folder, not a file: name one inventory file{_inventories_near(p)}")
    if not p.exists():
        raise MCPGateError(f"inventory file {path!r} does not exist{_inventories_near(p.parent)}")
    if not p.is_file():
        raise MCPGateError(f"inventory {path!r} is not a regular file: name a Python inventory file")
    if p.suffix != ".py":
        raise MCPGateError(
            f"inventory {path!r} is not a Python file: name a .py inventory file, e.g. inventory/home.py"
        )
    try:
        with p.open("rb"):
            pass
    except OSError as err:
        raise MCPGateError(f"inventory {path!r} cannot be read: {err.strerror}") from None


def _syntax_error(path: str, err: SyntaxError) -> str:
    """``file:line: syntax error: what`` and the line itself, on one line."""
    where = err.filename if err.filename and Path(err.filename).resolve() != Path(path).resolve() else path
    line = f"{where}:{err.lineno}" if err.lineno else where
    text = (err.text or "").strip()
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{line}: syntax error: {err.msg}" + (f" (in: {text})" if text else "")


@dataclass(frozen=True)
class HostStack:
    host: str
    stack: Stack
    inventory: str

    def store(self, secrets_dir: Path | None = None, read_only: bool = False) -> SecretStore:
        return SecretStore.for_host(secrets_dir or default_secrets_dir(), self.host, read_only)


def _pyinfra_cli_without_gevent() -> None:
    """Make ``pyinfra_cli``'s modules importable without running its ``__init__``, which
    monkey-patches the whole process for gevent (a third of a second of entry-point scans). The
    inventory loader needs none of that; inside pyinfra itself the package is already imported."""
    if "pyinfra_cli" in sys.modules:
        return
    spec = importlib.util.find_spec("pyinfra_cli")
    if spec is not None:
        sys.modules["pyinfra_cli"] = importlib.util.module_from_spec(spec)


def _pyinfra_hosts(path: str) -> list[tuple[str, Any]]:
    """Each host's name and ``mcpgate`` data, from pyinfra's own inventory loader."""
    from pyinfra.api import State
    from pyinfra.context import ctx_state

    _pyinfra_cli_without_gevent()
    from pyinfra_cli.inventory import make_inventory_from_files

    # pyinfra logs warnings about group_data folders; keep the CLI's output ours.
    logging.getLogger("pyinfra").setLevel(logging.ERROR)
    # pyinfra's loader records the file it runs in a State; give it a throwaway one.
    with ctx_state.use(State()):
        inventory = make_inventory_from_files(path, cwd=str(Path.cwd()))
    return [(h.name, h.data.get(DATA_KEY)) for h in inventory]


def _plain_hosts(path: str) -> list[tuple[str, Any]] | None:
    """What :func:`_pyinfra_hosts` gives, for a plain inventory file, without importing pyinfra
    (half of ``mcpgate check``'s time: paramiko, invoke, gevent and a scan of every package's entry
    points). Plain: every module-level name not starting with ``_`` that pyinfra would take for a
    group is a list of host names or ``(name, data)`` pairs, or such a list and the group's data;
    no group is called ``all``; no host name is a connector but ``@local``; and no group_data
    folder is there. Anything else is None, and pyinfra's loader reads it. The data is pyinfra's
    waterfall (host data, then the host's groups' data in order, the last group winning) for the
    one key mcpgate reads; tests/unit/test_inventory_load.py holds the two loaders to one answer."""
    cwd = Path.cwd()
    folders = [cwd / "group_data", Path(path).parent.resolve() / "group_data"]
    if any(f.exists() for f in folders):
        return None
    with open(path, encoding="utf-8") as f:
        code = compile(f.read(), path, "exec")
    attrs: dict[str, Any] = {"__file__": path}
    exec(code, attrs)  # what pyinfra's exec_file does with an inventory file

    groups: dict[str, tuple[list[Any], dict[str, Any]]] = {}
    for key, value in attrs.items():
        if key.startswith("_") or not isinstance(value, (list, tuple)):
            continue  # pyinfra ignores these too
        hosts, data = (value, {}) if isinstance(value, list) else (value[0], value[1] if len(value) > 1 else None)
        if (
            key == "all"
            or not isinstance(hosts, list)
            or not isinstance(data, dict)
            or (isinstance(value, tuple) and len(value) != 2)
        ):
            return None
        for h in hosts:
            name = h[0] if isinstance(h, tuple) else h
            if isinstance(h, tuple) and (len(h) != 2 or not isinstance(h[1], dict)):
                return None
            if not isinstance(name, str) or (name.startswith("@") and name != "@local"):
                return None
        groups[key] = (hosts, data)

    names: list[str] = []  # every host, in the order pyinfra lists them
    host_data: dict[str, dict[str, Any]] = {}
    host_groups: dict[str, list[str]] = {}
    for group, (hosts, _) in groups.items():
        for h in hosts:
            name, data = h if isinstance(h, tuple) else (h, {})
            if name not in names:
                names.append(name)
            host_data.setdefault(name, {}).update(data)
            host_groups.setdefault(name, []).append(group)
    # pyinfra adds "all" (no data here) and a group named after the file; @local's connector a group "@local".
    out = []
    for name in names:
        merged: dict[str, Any] = {}
        for group in host_groups[name]:
            merged.update(groups[group][1])
        for source in (host_data[name], merged):
            if DATA_KEY in source:
                out.append((name, copy.copy(source[DATA_KEY])))
                break
        else:
            out.append((name, None))
    return out


def load_inventory(path: str, only_host: str | None = None) -> list[HostStack]:
    """Every host of the inventory that carries mcpgate data, validated; InventoryError otherwise."""
    _check_inventory_path(path)
    try:
        found = _plain_hosts(path)
        if found is None:
            found = _pyinfra_hosts(path)
    except SyntaxError as err:
        raise MCPGateError(_syntax_error(path, err)) from None
    except MCPGateError:
        raise
    except Exception as err:  # an inventory is user code: report where it failed, not a traceback
        cause = getattr(err, "exception", err)  # pyinfra wraps errors raised by the file
        line = _line_in(getattr(cause, "_traceback", None) or cause.__traceback__, path)
        where = f"{path}:{line}" if line else path
        raise MCPGateError(f"loading inventory {where} failed: {type(cause).__name__}: {cause}") from None

    names = [name for name, _ in found]
    if only_host is not None and only_host not in names:
        raise MCPGateError(f"host {only_host!r} is not in {path}; hosts: {', '.join(names) or 'none'}")

    out: list[HostStack] = []
    problems: list[InventoryError] = []
    for name, data in found:
        if only_host is not None and name != only_host:
            continue
        if data is None:
            continue
        try:
            out.append(HostStack(name, load_stack(name, data), path))
        except InventoryError as err:
            problems.append(err)
    if problems:
        if len(problems) == 1:
            raise problems[0]
        raise MCPGateError("\n".join(str(p) for p in problems))
    if not out:
        raise MCPGateError(f"no host in {path} has '{DATA_KEY}' data; see inventory/home.py for an example")
    return out
