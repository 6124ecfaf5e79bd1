"""Read a pyinfra inventory the way pyinfra does, and validate each host's ``mcpgate`` data.

Using pyinfra's own loader means group_data and host data merge exactly as they will during the
deploy, so ``mcpgate check`` and ``pyinfra ... deploy.py`` can never see different stacks.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .errors import InventoryError, MCPGateError
from .model import Stack, load_stack
from .render import PROJECT_ROOT
from .secrets import SecretStore

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


@dataclass(frozen=True)
class HostStack:
    host: str
    stack: Stack
    inventory: str

    def store(self, secrets_dir: Path | None = None, read_only: bool = False) -> SecretStore:
        return SecretStore.for_host(secrets_dir or default_secrets_dir(), self.host, read_only)


def load_inventory(path: str, only_host: str | None = None) -> list[HostStack]:
    """Every host of the inventory that carries mcpgate data, validated; InventoryError otherwise."""
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory_from_files

    if not Path(path).is_file():
        raise MCPGateError(f"inventory file {path!r} does not exist")
    # pyinfra logs warnings about group_data folders; keep the CLI's output ours.
    logging.getLogger("pyinfra").setLevel(logging.ERROR)
    try:
        # pyinfra's loader records the file it runs in a State; give it a throwaway one.
        with ctx_state.use(State()):
            inventory = make_inventory_from_files(path, cwd=str(Path.cwd()))
    except SyntaxError as err:
        raise MCPGateError(f"{path}:{err.lineno}: {err.msg}") from None
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
