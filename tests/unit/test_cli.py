"""The mcpgate command as a person runs it: exit codes, messages, files, never a traceback."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mcpgate.validate import reference_dir
from tests.conftest import BASE_STACK, PROJECT_ROOT

HOME = str(PROJECT_ROOT / "inventory" / "home.py")
LOCAL = str(PROJECT_ROOT / "inventory" / "local.py")


def run(*args: str, secrets: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPGATE_")}
    env["MCPGATE_SECRETS_DIR"] = str(secrets)
    return subprocess.run(
        [sys.executable, "-m", "mcpgate", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=120,
    )


def assert_user_error(result: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr + result.stdout
    for part in parts:
        assert part in result.stderr, f"{part!r} not in {result.stderr!r}"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "secrets"


def _set_ha_token(store: Path) -> None:
    r = run("secrets", "set", HOME, "home-assistant-token", secrets=store, stdin="ha-token-value\n")
    assert r.returncode == 0, r.stderr


def _tree(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mode, p.read_bytes() if p.is_file() else b"")
        for p in sorted(root.rglob("*"))
    }


def test_check_writes_nothing(store: Path) -> None:
    """Checking an inventory is read-only: with an empty store nothing is created, and an existing
    store (after a render) is left exactly as it was, byte for byte and mode for mode."""
    r = run("check", LOCAL, secrets=store)
    assert r.returncode == 0, r.stderr
    assert not store.exists()
    assert run("render", LOCAL, "--out", str(store.parent / "out"), secrets=store).returncode == 0
    (store / "@local" / "redis" / "password").chmod(0o644)  # even a loose mode is only read
    before = _tree(store)
    assert len(before) > 10
    r = run("check", LOCAL, secrets=store)
    assert r.returncode == 0, r.stderr
    assert _tree(store) == before


def test_check_example_inventory(store: Path) -> None:
    _set_ha_token(store)
    r = run("check", HOME, secrets=store)
    assert r.returncode == 0, r.stderr
    assert "rendered configs: ok" in r.stdout
    if reference_dir() is not None:
        assert "schemas: checked against" in r.stdout
    lines = r.stdout.splitlines()
    assert "client claude-ai (every scope):" in lines
    header = next(line for line in lines if line.startswith("tool "))
    assert header.split() == ["tool", "scope", "alice"]
    row = next(line for line in lines if line.startswith("notes/write "))
    assert row.split() == ["notes/write", "notes:write", "allow"]
    assert next(line for line in lines if line.startswith("home-assistant/*")).split()[1:] == ["home:control", "allow"]
    assert not any(line.startswith("sandbox/") for line in lines)  # disabled


def test_check_local_inventory(store: Path) -> None:
    r = run("check", LOCAL, secrets=store)
    assert r.returncode == 0, r.stderr
    assert "https://mcp-gateway.home.test/mcp" in r.stdout


def test_missing_backend_token_is_a_clear_error(store: Path) -> None:
    r = run("check", HOME, secrets=store)
    assert_user_error(r, "home-assistant-token", "mcpgate secrets set")


def test_bad_inventory_names_the_field(tmp_path: Path, store: Path) -> None:
    bad = {**BASE_STACK, "backends": [{**BASE_STACK["backends"][0], "name": "notes_vault"}]}
    inv = tmp_path / "bad.py"
    inv.write_text(f"hosts = [('box', {{'mcpgate': {bad!r}}})]\n")
    r = run("check", str(inv), secrets=store)
    assert_user_error(r, "inventory for host 'box' is invalid", "backends[0].name", "contains '_'")
    assert not store.exists()  # nothing generated for an invalid inventory


def test_inventory_with_a_syntax_error(tmp_path: Path, store: Path) -> None:
    inv = tmp_path / "broken.py"
    inv.write_text("hosts = [\n  ('box', {)\n")
    assert_user_error(run("check", str(inv), secrets=store), f"{inv}:2")


def test_inventory_that_raises(tmp_path: Path, store: Path) -> None:
    inv = tmp_path / "raises.py"
    inv.write_text("import os\nhosts = [('box', {'mcpgate': {'hostname': os.environ['NOPE_NOT_SET']}})]\n")
    assert_user_error(run("check", str(inv), secrets=store), "loading inventory", "KeyError", "NOPE_NOT_SET")


def test_missing_inventory_and_unknown_host(store: Path) -> None:
    assert_user_error(run("check", "inventory/nope.py", secrets=store), "does not exist")
    assert_user_error(run("check", HOME, "--host", "other", secrets=store), "host 'other' is not in")


def test_inventory_without_mcpgate_data(tmp_path: Path, store: Path) -> None:
    inv = tmp_path / "plain.py"
    inv.write_text("hosts = ['web1']\n")
    assert_user_error(run("check", str(inv), secrets=store), "no host in", "'mcpgate' data")


def test_render_writes_exactly_the_host_files_and_is_repeatable(tmp_path: Path, store: Path) -> None:
    _set_ha_token(store)
    out1, out2 = tmp_path / "out1", tmp_path / "out2"
    assert run("render", HOME, "--out", str(out1), secrets=store).returncode == 0
    assert run("render", HOME, "--out", str(out2), secrets=store).returncode == 0
    files1 = sorted(p.relative_to(out1) for p in out1.rglob("*") if p.is_file())
    files2 = sorted(p.relative_to(out2) for p in out2.rglob("*") if p.is_file())
    assert files1 == files2
    for rel in files1:
        assert (out1 / rel).read_bytes() == (out2 / rel).read_bytes(), rel
    host = out1 / "gateway.lan"
    for rel in (
        "authelia/config/configuration.yml",
        "authelia/config/users.yml",
        "authelia/secrets/session_secret",
        "agentgateway/config/config.yaml",
        "agentgateway/secrets/home-assistant-token",
        "ingress/config/Caddyfile",
        "redis/config/redis.conf",
        "build/notes/Dockerfile",
    ):
        assert (host / rel).is_file(), rel
    assert stat.S_IMODE((host / "authelia/secrets/session_secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((host / "authelia/secrets").stat().st_mode) == 0o700
    assert (host / "agentgateway/secrets/home-assistant-token").read_text() == "ha-token-value"


def test_render_needs_out(store: Path) -> None:
    r = run("render", HOME, secrets=store)
    assert r.returncode == 2 and "--out" in r.stderr


def test_secrets_show_prints_what_claude_needs(store: Path) -> None:
    _set_ha_token(store)
    r = run("secrets", "show", HOME, secrets=store)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    host_store = store / "gateway.lan"
    assert "https://mcp-gateway.example-tailnet.ts.net/mcp" in out
    assert "OAuth Client ID:      claude-ai" in out
    assert (host_store / "clients/claude-ai.secret").read_text() in out
    assert (host_store / "users/alice.password").read_text() in out
    seed = (host_store / "users/alice.totp").read_text()
    assert f"otpauth://totp/mcp-gateway.example-tailnet.ts.net:alice?secret={seed}" in out
    again = run("secrets", "show", HOME, secrets=store)
    assert again.stdout == out  # shown again, never regenerated


def test_secrets_set_reads_stdin_and_refuses_unknown_or_empty(store: Path) -> None:
    r = run("secrets", "set", HOME, "tailscale-auth-key", secrets=store, stdin="tskey-test-value")
    assert r.returncode == 0 and "tskey-test-value" not in r.stdout + r.stderr
    path = store / "gateway.lan" / "tokens" / "tailscale-auth-key"
    assert path.read_text() == "tskey-test-value"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert_user_error(run("secrets", "set", HOME, "github-token", secrets=store, stdin="x"), "settable:")
    assert_user_error(run("secrets", "set", HOME, "tailscale-auth-key", secrets=store, stdin="  \n"), "no value")


def test_secrets_rotate(store: Path) -> None:
    run("secrets", "show", HOME, secrets=store)  # create
    _set_ha_token(store)
    run("render", HOME, "--out", str(store.parent / "out"), secrets=store)
    path = store / "gateway.lan" / "redis" / "password"
    before = path.read_text()
    r = run("secrets", "rotate", HOME, "redis-password", secrets=store)
    assert r.returncode == 0 and "restarts redis, authelia" in r.stdout
    assert path.read_text() != before
    r = run("secrets", "rotate", HOME, "oidc-key", secrets=store)
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_several_hosts_need_host_for_set(tmp_path: Path, store: Path) -> None:
    inv = tmp_path / "two.py"
    inv.write_text(
        textwrap.dedent(
            f"""
            _stack = {BASE_STACK!r}
            hosts = [("a", {{"mcpgate": _stack}}), ("b", {{"mcpgate": _stack}})]
            """
        )
    )
    assert_user_error(run("secrets", "set", str(inv), "home-assistant-token", secrets=store, stdin="x"), "--host")
    r = run("secrets", "set", str(inv), "--host", "b", "home-assistant-token", secrets=store, stdin="x")
    assert r.returncode == 0 and (store / "b" / "tokens" / "home-assistant-token").exists()
