"""Read a pyinfra inventory the way pyinfra does, and validate each host's ``mcpgate`` data.

Using pyinfra's own loader means group_data and host data merge exactly as they will during the
deploy, so ``mcpgate check`` and ``pyinfra ... deploy.py`` can never see different stacks.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ..errors import InventoryError, MCPGateError
from ..model import Stack, load_stack
from ..render import PROJECT_ROOT
from ..secrets import SecretStore

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


def load_inventory(path: str, only_host: str | None = None) -> list[HostStack]:
    """Every host of the inventory that carries mcpgate data, validated; InventoryError otherwise."""
    from pyinfra.api import State
    from pyinfra.context import ctx_state

    _pyinfra_cli_without_gevent()
    from pyinfra_cli.inventory import make_inventory_from_files

    _check_inventory_path(path)
    # pyinfra logs warnings about group_data folders; keep the CLI's output ours.
    logging.getLogger("pyinfra").setLevel(logging.ERROR)
    try:
        # pyinfra's loader records the file it runs in a State; give it a throwaway one.
        with ctx_state.use(State()):
            inventory = make_inventory_from_files(path, cwd=str(Path.cwd()))
    except SyntaxError as err:
        raise MCPGateError(_syntax_error(path, err)) from None
    except MCPGateError:
        raise
    except Exception as err:  # an inventory is user code: report where it failed, not a traceback
        cause = getattr(err, "exception", err)  # pyinfra wraps errors raised by the file
        line = _line_in(getattr(cause, "_traceback", None) or cause.__traceback__, path)
        where = f"{path}:{line}" if line else path
        raise MCPGateError(f"loading inventory {where} failed: {type(cause).__name__}: {cause}") from None

    hosts = list(inventory)
    names = [h.name for h in hosts]
    if only_host is not None and only_host not in names:
        raise MCPGateError(f"host {only_host!r} is not in {path}; hosts: {', '.join(names) or 'none'}")

    out: list[HostStack] = []
    problems: list[InventoryError] = []
    for h in hosts:
        if only_host is not None and h.name != only_host:
            continue
        data = h.data.get(DATA_KEY)
        if data is None:
            continue
        try:
            out.append(HostStack(h.name, load_stack(h.name, data), path))
        except InventoryError as err:
            problems.append(err)
    if problems:
        if len(problems) == 1:
            raise problems[0]
        raise MCPGateError("\n".join(str(p) for p in problems))
    if not out:
        raise MCPGateError(f"no host in {path} has '{DATA_KEY}' data; see inventory/home.py for an example")
    return out
