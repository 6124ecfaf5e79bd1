"""Shared fixtures: a valid stack as inventory data, and a private secrets store per test.

Generating a store's values is slow by design (a 3072-bit RSA key, an argon2id digest per user, a
pbkdf2 digest per client): it is done once per session (``filled_store_template``), and a test
that needs a complete store gets its own copy of it, which it may change (``filled_store``,
``secrets``). A test about generating values (tests/unit/test_secrets.py) makes its own.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from mcpgate.model import CLAUDE_REDIRECT_URIS, Stack, load_stack
from mcpgate.secrets import SecretStore, StackSecrets

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The folder where tests leave lines for the end of the run (SummaryLines), one per run.
SUMMARY_DIR_ENV = "MCPGATE_SUMMARY_DIR"
_summary_dir = pytest.StashKey[Path]()


class SummaryLines:
    """Lines a test leaves for the end of the run under a heading (deploy times, where screenshots
    are). They go to a file in the run's summary folder rather than a list, so that the lines of
    pytest-xdist's workers, which are other processes, reach the terminal summary too."""

    def __init__(self, heading: str) -> None:
        self.heading = heading

    def append(self, line: str) -> None:
        folder = os.environ.get(SUMMARY_DIR_ENV)
        if folder:
            with open(Path(folder) / f"{os.getpid()}.jsonl", "a") as f:
                f.write(json.dumps([self.heading, line]) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    # In the run's own process only: a worker inherits the folder through its environment.
    if not hasattr(config, "workerinput") and SUMMARY_DIR_ENV not in os.environ:
        os.environ[SUMMARY_DIR_ENV] = tempfile.mkdtemp(prefix="mcpgate-summary-")
        config.stash[_summary_dir] = Path(os.environ[SUMMARY_DIR_ENV])


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_summary_dir, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(SUMMARY_DIR_ENV, None)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    folder = terminalreporter.config.stash.get(_summary_dir, None)
    if folder is None:
        return
    sections: dict[str, dict[str, None]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        for record in path.read_text().splitlines():
            heading, line = json.loads(record)
            sections.setdefault(heading, {})[line] = None
    for heading, lines in sections.items():
        terminalreporter.section(heading)
        for line in lines:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (bin/test), the end-to-end files go first: each is long and runs whole
    on one worker, and the many short unit files then fill the gaps until both workers finish."""
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: not item.nodeid.startswith("tests/e2e/"))


BASE_STACK: dict[str, Any] = {
    "hostname": "mcp-gateway.example-tailnet.ts.net",
    "users": [{"name": "alice", "display_name": "Alice", "email": "alice@example.org"}],
    "scopes": {
        "notes:read": "Search and read notes",
        "notes:write": "Change notes",
        "home:control": "Control the house",
    },
    "backends": [
        {
            "name": "notes",
            "build": "notes-vault",
            "port": 8080,
            "user": "1000:1000",  # owns the vault folder it writes to
            "volumes": [{"source": "/srv/notes", "target": "/vault"}],
            "tools": {"notes:read": ["search", "read"], "notes:write": ["write", "delete"]},
        },
        {
            "name": "home-assistant",
            "url": "http://homeassistant.lan:8123/api/mcp",
            "token_secret": "home-assistant-token",
            "allow_plain_http": True,
            "scope": "home:control",
        },
    ],
    "clients": [{"id": "claude-ai", "name": "Claude.ai", "redirect_uris": list(CLAUDE_REDIRECT_URIS)}],
    # As the tests' machine (no systemd journal) and inventory/local.py; journald has tests of its own.
    "audit": {"logs": "docker"},
}


@pytest.fixture
def stack_data() -> dict[str, Any]:
    return copy.deepcopy(BASE_STACK)


@pytest.fixture
def stack(stack_data: dict[str, Any]) -> Stack:
    return load_stack("gateway.lan", stack_data)


@pytest.fixture
def store(tmp_path: Path) -> SecretStore:
    return SecretStore.for_host(tmp_path / "secrets", "gateway.lan")


@pytest.fixture(scope="session")
def signing_key_pem() -> str:
    """One RSA key for the whole session: generating a 3072-bit key per test costs seconds."""
    from mcpgate.secret_crypto import generate_rsa_pem

    return generate_rsa_pem()


@pytest.fixture(scope="session")
def filled_store_template(tmp_path_factory: pytest.TempPathFactory, signing_key_pem: str) -> Path:
    """A secrets folder whose host gateway.lan holds everything a render of BASE_STACK generates
    (keys, passwords, digests and their verified-memos), made once per session. Never changed:
    tests take a copy (``fill_store``)."""
    from mcpgate.render import render_stack

    root = tmp_path_factory.mktemp("filled-store") / "secrets"
    store = SecretStore.for_host(root, "gateway.lan")
    store.set("authelia/oidc_jwks_rs256.pem", signing_key_pem)
    store.set("tokens/home-assistant-token", "ha-long-lived-token")
    stack = load_stack("gateway.lan", copy.deepcopy(BASE_STACK))
    render_stack(stack, StackSecrets(store, stack))
    return root / "gateway.lan"


def fill_store(store: SecretStore, template: Path) -> SecretStore:
    """Copy the template's values (modes too) into ``store``, which must not hold any yet."""
    shutil.copytree(template, store.root, dirs_exist_ok=True)
    return store


@pytest.fixture
def filled_store(store: SecretStore, filled_store_template: Path) -> SecretStore:
    """The test's own store (``store``), holding a copy of the session's complete one."""
    return fill_store(store, filled_store_template)


@pytest.fixture
def secrets(filled_store: SecretStore, stack: Stack) -> StackSecrets:
    """The test stack's secrets over the test's own complete store (a copy: change it at will);
    values the test's stack adds to BASE_STACK are generated on first use, as in a real store."""
    return StackSecrets(filled_store, stack)
