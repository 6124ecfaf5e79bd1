"""A backend's own secrets: rendered as root-only files, handed over by file or env file, never on
a command line; a changed value recreates the container."""

from __future__ import annotations

from typing import Any

import pytest

from mcpgate.container_specs import backend_spec
from mcpgate.errors import SecretsError
from mcpgate.model import load_stack
from mcpgate.render import render_stack
from mcpgate.secrets import SecretStore, StackSecrets

GITHUB = {
    "name": "github",
    "image": "ghcr.io/github/github-mcp-server:v0.20.1",
    "port": 8082,
    "user": "10002:10002",
    "egress": True,
    "scope": "home:control",
    "secrets": [
        {"name": "github-token", "env": "GITHUB_PERSONAL_ACCESS_TOKEN"},
        {"name": "github-app-key", "file": "/run/secrets/app-key.pem"},
    ],
}


@pytest.fixture(autouse=True)
def _complete_store(filled_store: SecretStore) -> None:
    """Each test's ``store`` starts as a copy of the session's complete one: these tests are about
    a backend's secrets, not about generating keys and digests (a 3072-bit key, argon2id, pbkdf2 cost seconds)."""


@pytest.fixture
def rendered_github(stack_data: dict[str, Any], store: SecretStore, signing_key_pem: str):
    stack_data["backends"].append(GITHUB)
    stack = load_stack("gateway.lan", stack_data)
    store.set("authelia/oidc_jwks_rs256.pem", signing_key_pem)
    store.set("tokens/home-assistant-token", "ha-long-lived-token")
    store.set("tokens/github-token", "ghp_exampleexampleexample0123456789")
    store.set("tokens/github-app-key", "-----BEGIN KEY-----\nabc\n-----END KEY-----\n")
    return stack, store, render_stack(stack, StackSecrets(store, stack))


def test_env_secrets_go_through_a_root_only_file(rendered_github) -> None:
    stack, _, rendered = rendered_github
    env = rendered.file("backends/github/secrets.env")
    assert env.content == b"GITHUB_PERSONAL_ACCESS_TOKEN=ghp_exampleexampleexample0123456789\n"
    assert (env.mode, env.owner, env.secret) == (0o600, "0:0", True)
    folder = next(d for d in rendered.dirs if d.path == "backends/github")
    assert (folder.mode, folder.owner) == (0o700, "0:0")
    args = backend_spec(stack, stack.backends[-1], rendered).run_args()
    assert args[args.index("--env-file") + 1] == "/opt/mcpgate/backends/github/secrets.env"
    assert not any("ghp_" in a for a in args)


def test_file_secrets_belong_to_the_backends_user_and_are_mounted_read_only(rendered_github) -> None:
    stack, _, rendered = rendered_github
    f = rendered.file("backends/github/files/github-app-key")
    assert (f.mode, f.owner) == (0o400, "10002:10002")
    args = backend_spec(stack, stack.backends[-1], rendered).run_args()
    assert (
        "type=bind,source=/opt/mcpgate/backends/github/files/github-app-key,target=/run/secrets/app-key.pem,readonly"
        in args
    )


def test_a_changed_secret_recreates_the_container(rendered_github) -> None:
    stack, store, rendered = rendered_github
    before = backend_spec(stack, stack.backends[-1], rendered).spec_hash
    store.set("tokens/github-token", "ghp_another0another0another0another0")
    after = backend_spec(stack, stack.backends[-1], render_stack(stack, StackSecrets(store, stack))).spec_hash
    assert before != after


def test_a_missing_secret_names_the_command_that_sets_it(stack_data: dict[str, Any], store: SecretStore) -> None:
    stack_data["backends"].append(GITHUB)
    stack = load_stack("gateway.lan", stack_data)
    store.set("tokens/home-assistant-token", "ha-long-lived-token")
    with pytest.raises(SecretsError, match=r"(?s)secret 'github-token' .* mcpgate secrets set"):
        render_stack(stack, StackSecrets(store, stack))


def test_an_env_secret_with_a_line_break_is_refused(rendered_github) -> None:
    stack, store, _ = rendered_github
    store.set("tokens/github-token", "ghp_first\nSECOND=injected")
    with pytest.raises(SecretsError, match="line break"):
        render_stack(stack, StackSecrets(store, stack))
