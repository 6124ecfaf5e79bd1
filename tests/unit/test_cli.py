"""The mcpgate command as a person runs it: exit codes, messages, files, never a traceback."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from mcpgate.validate import reference_dir
from tests.conftest import BASE_STACK, PROJECT_ROOT

HOME = str(PROJECT_ROOT / "inventory" / "home.py")
LOCAL = str(PROJECT_ROOT / "inventory" / "local.py")


def run(
    *args: str, secrets: Path, stdin: str | None = None, prefix: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPGATE_")}
    env["MCPGATE_SECRETS_DIR"] = str(secrets)
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "mcpgate", *args],
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


@pytest.fixture(scope="module")
def _home_rendered_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    secrets = tmp_path_factory.mktemp("home") / "secrets"
    _set_ha_token(secrets)
    r = run("render", HOME, "--out", str(secrets.parent / "out"), secrets=secrets)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return secrets


@pytest.fixture
def home_store(store: Path, _home_rendered_once: Path) -> Path:
    """A complete store for inventory/home.py (its token set, then rendered once per module: a
    3072-bit key and the digests take a while), copied with its modes into the test's own store."""
    shutil.copytree(_home_rendered_once, store)
    return store


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


def test_check_example_inventory(home_store: Path) -> None:
    r = run("check", HOME, secrets=home_store)
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
    # What the host holds that the store does not, and that the backup keeps it.
    backups = lines.index("   backups: restic to /mnt/backup/mcpgate, daily (keeping 7 daily, 4 weekly, 6 monthly); "
                          "each snapshot holds:")  # fmt: skip
    assert lines[backups + 1 : backups + 4] == [
        "     volume mcpgate-authelia-data (authelia)",
        "     folder /srv/notes (notes)",
        "     Authelia's database, copied with SQLite's online backup",
    ]
    assert "Redis holds only the sign-in pages' browser sessions" in lines[backups + 4]


def test_check_local_inventory(store: Path, healthy: Path) -> None:
    r = run("check", LOCAL, secrets=store)
    assert r.returncode == 0, r.stderr
    assert "https://mcp-gateway.home.test/mcp" in r.stdout
    # No backup set: the check says what a rebuild would lose.
    assert (
        "   backups: none. The host holds what the secrets store does not, and a rebuild loses it: "
        "volume mcpgate-authelia-data (authelia), folder /var/lib/mcpgate-notes (notes)"
    ) in r.stdout.splitlines()


def test_check_warns_about_an_unproven_pin(store: Path, tmp_path: Path) -> None:
    """An image pinned to another version than the proven one deploys, but check says so."""
    inventory = tmp_path / "pinned.py"
    inventory.write_text(
        f"import runpy\nlocal = runpy.run_path({LOCAL!r})['local']\n"
        "local[0][1]['mcpgate']['images']['agentgateway'] = 'cr.agentgateway.dev/agentgateway:v1.6.0'\n"
    )
    r = run("check", str(inventory), secrets=store)
    assert r.returncode == 0, r.stderr
    (warning,) = [line for line in r.stdout.splitlines() if line.startswith("   warning: ")]
    assert "images.agentgateway: cr.agentgateway.dev/agentgateway:v1.6.0 is not the version" in warning
    assert "agentgateway#2993" in warning and "nbf" in warning
    assert "warning" not in run("check", LOCAL, secrets=store).stdout  # the proven pins: no warning


def test_a_known_bad_authelia_pin_is_refused_with_the_reason(store: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "bad.py"
    inventory.write_text(
        f"import runpy\nlocal = runpy.run_path({LOCAL!r})['local']\n"
        "local[0][1]['mcpgate']['images']['authelia'] = 'authelia/authelia:4.39.21'\n"
    )
    assert_user_error(
        run("check", str(inventory), secrets=store), "images.authelia", "4.39.21 breaks this stack", "authelia#12970"
    )
    assert not store.exists()  # nothing made


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
        "authelia/secrets/session_secret",
        "agentgateway/config/config.yaml",
        "agentgateway/secrets/home-assistant-token",
        "ingress/config/Caddyfile",
        "redis/config/redis.conf",
        "build/notes/Dockerfile",
    ):
        assert (host / rel).is_file(), rel
    assert stat.S_IMODE((host / "authelia/secrets/session_secret").stat().st_mode) == 0o600
    # Authelia's users database is its own state on the host, never rendered (mcpgate.users_db).
    assert not list(host.rglob("users.yml"))
    assert stat.S_IMODE((host / "authelia/secrets").stat().st_mode) == 0o700
    assert (host / "agentgateway/secrets/home-assistant-token").read_text() == "ha-token-value"


def test_render_needs_out(store: Path) -> None:
    r = run("render", HOME, secrets=store)
    assert r.returncode == 2 and "--out" in r.stderr


def test_secrets_show_prints_what_claude_needs(store: Path) -> None:
    _set_ha_token(store)  # an empty store otherwise: a user runs show before the first deploy
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


def test_secrets_rotate(home_store: Path) -> None:
    store = home_store
    path = store / "gateway.lan" / "redis" / "password"
    before = path.read_text()
    r = run("secrets", "rotate", HOME, "redis-password", secrets=store)
    assert r.returncode == 0 and "restarts redis, authelia" in r.stdout
    assert path.read_text() != before
    assert_user_error(run("secrets", "rotate", HOME, "oidc-key", secrets=store), "cannot be rotated", "rollover")


def test_secrets_rotate_a_client_secret(home_store: Path) -> None:
    store = home_store  # complete: the render below recomputes only the new secret's digest
    path = store / "gateway.lan" / "clients" / "claude-ai.secret"
    before = path.read_text()
    r = run("secrets", "rotate", HOME, "client/claude-ai", secrets=store)
    assert r.returncode == 0, r.stderr
    assert "restarts authelia" in r.stdout and "paste the new client secret" in r.stdout
    after = path.read_text()
    assert after != before and len(after) == 64 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert before not in r.stdout + r.stderr and after not in r.stdout + r.stderr
    shown = run("secrets", "show", HOME, secrets=store).stdout
    assert f"OAuth Client Secret:  {after}" in shown and before not in shown
    # The digest Authelia gets follows the new secret at the next render.
    _set_ha_token(store)
    assert run("render", HOME, "--out", str(store.parent / "out"), secrets=store).returncode == 0
    from mcpgate.secret_crypto import pbkdf2_sha512_verify

    digest = (store / "gateway.lan" / "clients" / "claude-ai.pbkdf2").read_text()
    assert pbkdf2_sha512_verify(after, digest) and not pbkdf2_sha512_verify(before, digest)
    assert (
        f'client_secret: "{digest}"'
        in (store.parent / "out" / "gateway.lan" / "authelia" / "config" / "configuration.yml").read_text()
    )


def test_secrets_rotate_a_totp_seed(home_store: Path) -> None:
    store = home_store
    path = store / "gateway.lan" / "users" / "alice.totp"
    before = path.read_text()
    r = run("secrets", "rotate", HOME, "totp/alice", secrets=store)
    assert r.returncode == 0, r.stderr
    assert "the seed is re-imported" in r.stdout and "scans the new otpauth:// URI" in r.stdout
    after = path.read_text()
    assert after != before and len(after) == 64
    shown = run("secrets", "show", HOME, secrets=store).stdout
    assert f"secret={after}" in shown and f"secret={before}" not in shown


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("client/nobody", "the inventory has no client 'nobody'; its confidential clients: client/claude-ai"),
        ("client/", "cannot be rotated"),
        ("totp/mallory", "the inventory has no user 'mallory'; its users' TOTP seeds: totp/alice"),
        ("users/alice.password", "cannot be rotated"),
        ("password/mallory", "the inventory has no user 'mallory'; its users' passwords: password/alice"),
    ],
)
def test_secrets_rotate_refuses_what_is_not_there(store: Path, name: str, message: str) -> None:
    run("secrets", "show", HOME, secrets=store)
    before = _tree(store)
    assert_user_error(run("secrets", "rotate", HOME, name, secrets=store), message)
    assert _tree(store) == before


def test_secrets_rotate_refuses_a_public_clients_secret(store: Path) -> None:
    r = run("secrets", "rotate", LOCAL, "client/mcp-inspector", secrets=store)
    assert_user_error(r, "client 'mcp-inspector' is a public client (PKCE only): it has no secret to rotate")


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


# A damaged secrets store, wrong paths, a closed pipe: one line on stderr naming the path, what is
# wrong and the fix; exit 2; no traceback; no secret value; and `check` changes nothing on disk.


@pytest.fixture(scope="module")
def _rendered_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("healthy")
    r = run("render", LOCAL, "--out", str(base / "first"), secrets=base / "secrets")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return base


@pytest.fixture
def healthy(store: Path, _rendered_once: Path) -> Path:
    """A complete store for inventory/local.py (host @local) made by a render, and that render in
    first/: copied (modes too) from one render per module, as a 3072-bit key takes a while."""
    shutil.copytree(_rendered_once / "secrets", store)
    shutil.copytree(_rendered_once / "first", store.parent / "first")
    assert _tree(store) == _tree(_rendered_once / "secrets")
    return store / "@local"


def _values(host_store: Path) -> list[str]:
    """Every secret value in the store, to look for in output that must not show one."""
    return [v for p in host_store.rglob("*") if p.is_file() and len(v := p.read_text().strip()) >= 8]


def assert_one_line_error(r: subprocess.CompletedProcess[str], host_store: Path, *parts: str) -> None:
    assert_user_error(r, *parts)
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith("mcpgate: ")
    for value in _values(host_store):
        assert value not in r.stderr, "a secret value in an error"


def _truncate_key(path: Path) -> None:
    path.write_text(path.read_text()[:900])


STORE_DAMAGE = [
    # command, file in the store, how it is damaged, the problem and the fix the message names
    pytest.param(
        "render",
        "redis/password",
        lambda p: p.write_text(""),
        "the Redis password): empty, expected 48 ASCII letters and digits",
        f"rotating it is safe: mcpgate secrets rotate {LOCAL} --host @local redis-password, then deploy",
        id="empty-redis-password",
    ),
    pytest.param(
        "check",
        "redis/password",
        lambda p: p.write_text(""),
        "empty, expected 48 ASCII letters and digits",
        f"mcpgate secrets rotate {LOCAL} --host @local redis-password",
        id="empty-redis-password-check",
    ),
    pytest.param(
        "render",
        "clients/claude-ai.secret",
        lambda p: p.write_text(""),
        "the secret of client claude-ai): empty, expected 64 ASCII letters and digits",
        f"not safe to rotate (the client, e.g. Claude's connector, holds it): restore it from your backup of the "
        f"store; with no backup, replace it: mcpgate secrets rotate {LOCAL} --host @local client/claude-ai, deploy, "
        f"and paste the new secret that mcpgate secrets show {LOCAL} --host @local prints",
        id="empty-client-secret",
    ),
    pytest.param(
        "secrets show",
        "users/alice.totp",
        lambda p: p.write_text("not base32!"),
        "the TOTP seed of user alice): TOTP seed is not unpadded upper-case base32",
        "not safe to rotate (alice's authenticator app holds it): restore it from your backup of the store",
        id="non-base32-totp-show",
    ),
    pytest.param(
        "check",
        "users/alice.totp",
        lambda p: p.write_text("JBSWY3DPEHPK3PXP"),
        "TOTP seed must be unpadded base32 of at least 16 bytes",
        f"mcpgate secrets rotate {LOCAL} --host @local totp/alice, deploy, and have alice scan the new otpauth:// URI",
        id="short-totp-check",
    ),
    pytest.param(
        "render",
        "authelia/oidc_jwks_rs256.pem",
        _truncate_key,
        "Authelia's token signing key): not a PEM private key that parses (truncated or damaged)",
        "not safe to rotate (every issued token's key id and signature come from it): restore it from your backup",
        id="truncated-signing-key",
    ),
    pytest.param(
        "check",
        "authelia/oidc_jwks_rs256.pem",
        _truncate_key,
        "not a PEM private key that parses",
        "with no backup, delete it and deploy",
        id="truncated-signing-key-check",
    ),
    pytest.param(
        "render",
        "users/bob.argon2id",
        lambda p: p.write_text(p.read_text()[:-10]),
        "the password digest of user bob): its salt or hash has the wrong length",
        "it is made from the user's password: delete it",
        id="cut-argon2id-digest",
    ),
]


@pytest.mark.parametrize(("command", "name", "damage", "problem", "fix"), STORE_DAMAGE)
def test_a_damaged_store_is_refused_in_one_line(
    tmp_path: Path,
    store: Path,
    healthy: Path,
    command: str,
    name: str,
    damage: Callable[[Path], None],
    problem: str,
    fix: str,
) -> None:
    path = healthy / name
    damage(path)
    before = _tree(store)
    extra = ["--out", str(tmp_path / "out")] if command == "render" else []
    r = run(*command.split(), LOCAL, *extra, secrets=store)
    assert_one_line_error(r, healthy, f"mcpgate: damaged secret {path} (", problem, fix)
    assert r.stdout == ""  # not half a listing
    assert _tree(store) == before  # refused, not replaced
    assert not (tmp_path / "out").exists()  # nothing rendered from a damaged store


def test_the_repair_the_message_names_works(store: Path, healthy: Path) -> None:
    (healthy / "redis" / "password").write_text("")
    message = run("render", LOCAL, "--out", str(store.parent / "out"), secrets=store).stderr
    command = message.split("rotating it is safe: ")[1].split(",")[0]
    assert command.startswith("mcpgate secrets rotate ")
    r = run(*command.split()[1:], secrets=store)
    assert r.returncode == 0, r.stderr
    assert run("render", LOCAL, "--out", str(store.parent / "out"), secrets=store).returncode == 0


def test_check_reports_loose_modes_and_changes_nothing(store: Path, healthy: Path) -> None:
    password = healthy / "redis" / "password"
    password.chmod(0o644)
    (healthy / "users").chmod(0o755)
    healthy.chmod(0o711)
    before = _tree(store)
    r = run("check", LOCAL, secrets=store)
    assert r.returncode == 0, r.stderr
    assert _tree(store) == before  # bytes and modes: check never writes or chmods
    assert f"mcpgate: WARNING: secret {password} has mode 0644: other users may read it; left as it is" in r.stderr
    assert f"mcpgate: WARNING: secrets folder {healthy / 'users'} has mode 0755" in r.stderr
    assert f"mcpgate: WARNING: secrets folder {healthy} has mode 0711" in r.stderr
    assert f"chmod 0600 {password}" in r.stderr
    assert "Traceback" not in r.stderr


def test_render_reports_loose_modes_and_repairs_them(store: Path, healthy: Path) -> None:
    password = healthy / "users" / "alice.totp"
    password.chmod(0o640)
    (healthy / "users").chmod(0o750)
    r = run("render", LOCAL, "--out", str(store.parent / "out"), secrets=store)
    assert r.returncode == 0, r.stderr
    assert f"mcpgate: WARNING: secret {password} had mode 0640: other users may have read it; set to 0600" in r.stderr
    assert f"mcpgate: WARNING: secrets folder {healthy / 'users'} had mode 0750" in r.stderr
    assert {stat.S_IMODE(p.stat().st_mode) for p in [healthy, *healthy.rglob("*")] if p.name != ".lock"} == {
        0o600,
        0o700,
    }
    assert stat.S_IMODE(password.stat().st_mode) == 0o600
    again = run("render", LOCAL, "--out", str(store.parent / "out"), secrets=store)
    assert again.returncode == 0 and again.stderr == ""


def test_a_healthy_store_renders_byte_identically_and_check_leaves_it_alone(
    tmp_path: Path, store: Path, healthy: Path
) -> None:
    before = _tree(store)
    first = _tree(tmp_path / "first")
    r = run("render", LOCAL, "--out", str(tmp_path / "again"), secrets=store)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert _tree(tmp_path / "again") == first  # bytes and modes
    r = run("check", LOCAL, secrets=store)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "rendered configs: ok" in r.stdout
    shown = run("secrets", "show", LOCAL, secrets=store)
    assert shown.returncode == 0 and shown.stderr == ""
    assert (healthy / "users" / "alice.password").read_text() in shown.stdout
    assert _tree(store) == before


@pytest.mark.parametrize("command", ["check", "render", "secrets show", "secrets rotate"])
def test_a_secrets_path_that_is_a_file(tmp_path: Path, command: str) -> None:
    not_a_folder = tmp_path / "secrets"
    not_a_folder.write_text("a file")
    extra = {"render": ["--out", str(tmp_path / "out")], "secrets rotate": ["redis-password"]}.get(command, [])
    r = run(*command.split(), LOCAL, *extra, secrets=not_a_folder)
    assert_one_line_error(
        r,
        tmp_path,
        f"secrets store {not_a_folder / '@local'}: {not_a_folder} is a file, not a folder",
        "move that file away or choose another store folder with --secrets or MCPGATE_SECRETS_DIR",
    )
    assert not_a_folder.read_text() == "a file"


def test_a_host_folder_that_is_a_file(store: Path) -> None:
    store.mkdir()
    (store / "@local").write_text("")
    r = run("render", LOCAL, "--out", str(store.parent / "out"), secrets=store)
    assert_one_line_error(r, store, f"{store / '@local'} is a file, not a folder")


def _without_root_powers() -> list[str]:
    """A command prefix under which file permissions apply: nothing for a normal user; as root,
    setpriv dropping the capabilities that bypass them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH)."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    if shutil.which("setpriv") is None or subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("running as root without a working setpriv: permissions cannot be made to apply")
    return prefix


def test_a_secrets_folder_that_is_not_writable(tmp_path: Path) -> None:
    prefix = _without_root_powers()
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    r = run("render", LOCAL, "--out", str(tmp_path / "out"), secrets=locked, prefix=prefix)
    assert_one_line_error(
        r,
        tmp_path,
        f"secrets store {locked / '@local'}: cannot create {locked / '@local'}: permission denied for user",
        "(chown/chmod), or choose another store folder with --secrets or MCPGATE_SECRETS_DIR",
    )
    assert list(locked.iterdir()) == []


def test_a_secret_that_is_not_readable(store: Path, healthy: Path) -> None:
    prefix = _without_root_powers()
    path = healthy / "users" / "alice.totp"
    path.chmod(0o000)
    before = _tree(store)
    r = run("check", LOCAL, secrets=store, prefix=prefix)
    assert_one_line_error(r, store.parent, f"cannot read {path}: permission denied for user")
    assert _tree(store) == before


def test_render_out_that_is_a_file(tmp_path: Path, store: Path, healthy: Path) -> None:
    out = tmp_path / "out.txt"
    out.write_text("x")
    r = run("render", LOCAL, "--out", str(out), secrets=store)
    assert_one_line_error(r, tmp_path, f"--out {out} is a file, not a folder; give a folder")
    r = run("render", LOCAL, "--out", str(out / "below"), secrets=store)
    assert_one_line_error(r, tmp_path, f"--out {out / 'below'}: {out} is a file, not a folder")
    assert out.read_text() == "x"


def test_render_out_that_is_not_writable(tmp_path: Path, store: Path, healthy: Path) -> None:
    prefix = _without_root_powers()
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    out = locked / "out"
    r = run("render", LOCAL, "--out", str(out), secrets=store, prefix=prefix)
    assert_one_line_error(r, tmp_path, f"--out {out}: cannot write {out}: Permission denied")


def test_render_never_writes_through_a_planted_symlink(tmp_path: Path, store: Path, healthy: Path) -> None:
    """Another user makes the path first, as a link to a folder of theirs: render writes nothing
    there, and says why."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    out = tmp_path / "rendered"
    out.symlink_to(theirs)
    r = run("render", LOCAL, "--out", str(out), secrets=store)
    assert_one_line_error(r, tmp_path, f"--out {out}: is a symbolic link, which render never follows")
    assert list(theirs.iterdir()) == []
    # Nor one planted inside a folder of the path's parent: the host's folder as a link.
    out = tmp_path / "plain"
    out.mkdir(mode=0o700)
    (out / "@local").symlink_to(theirs)
    r = run("render", LOCAL, "--out", str(out), secrets=store)
    assert_one_line_error(r, tmp_path, f"--out {out}: exists and was not made by mcpgate render")
    assert list(theirs.iterdir()) == []


@pytest.mark.parametrize(
    ("mode", "uid", "message"),
    [
        (0o700, None, "exists and was not made by mcpgate render"),
        (0o777, None, "has mode 0777: other users can write there"),
        (0o700, 65534, "belongs to uid 65534, another user"),
    ],
    ids=["not-made-by-render", "others-can-write", "another-users"],
)
def test_render_refuses_an_out_folder_it_did_not_make(
    tmp_path: Path, store: Path, healthy: Path, mode: int, uid: int | None, message: str
) -> None:
    out = tmp_path / "rendered"
    out.mkdir()
    out.chmod(mode)
    if uid is not None:
        if os.geteuid() != 0:
            pytest.skip("giving a folder to another user needs root")
        os.chown(out, uid, uid)
    r = run("render", LOCAL, "--out", str(out), secrets=store)
    assert_one_line_error(r, tmp_path, f"--out {out}: {message}", "give --out a new path in a folder of your own")
    assert list(out.iterdir()) == []


def test_render_makes_its_folder_private_and_renders_into_it_again(tmp_path: Path, store: Path, healthy: Path) -> None:
    out = tmp_path / "new" / "rendered"
    assert run("render", LOCAL, "--out", str(out), secrets=store).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "@local").stat().st_mode) == 0o700
    (out / "@local" / "stale-file").write_text("from an older render")
    again = run("render", LOCAL, "--out", str(out), secrets=store)
    assert again.returncode == 0, again.stderr
    assert not (out / "@local" / "stale-file").exists()
    assert (out / "@local" / "redis" / "config" / "redis.conf").is_file()


def test_check_into_a_closed_pipe_is_quiet(store: Path, healthy: Path) -> None:
    """`mcpgate check ... | head`: the reader is gone before anything is written. Python's advice
    (signal module docs, "Note on SIGPIPE"): point stdout at devnull and exit 1, without a word."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPGATE_")}
    env["MCPGATE_SECRETS_DIR"] = str(store)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcpgate", "check", LOCAL],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=PROJECT_ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert err == ""


def test_check_piped_into_head(store: Path, healthy: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPGATE_")}
    env["MCPGATE_SECRETS_DIR"] = str(store)
    r = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {sys.executable} -m mcpgate check {LOCAL} | head -n 1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert r.stdout == "== @local: https://mcp-gateway.home.test/mcp\n"
    assert r.stderr == ""  # whether or not the pipe closed before the last write
    assert r.returncode in (0, 1)


def test_secrets_set_refuses_a_value_the_store_would_refuse(store: Path) -> None:
    r = run("secrets", "set", HOME, "home-assistant-token", secrets=store, stdin="two words\n")
    assert_one_line_error(r, store.parent, "the value given for 'home-assistant-token' holds spaces", "nothing was")
    assert "two words" not in r.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPGATE_")}
    env["MCPGATE_SECRETS_DIR"] = str(store)
    binary = subprocess.run(
        [sys.executable, "-m", "mcpgate", "secrets", "set", HOME, "home-assistant-token"],
        input=b"\xff\xfe\x00token",
        capture_output=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert binary.returncode == 2
    assert binary.stderr.decode() == "mcpgate: the value given for 'home-assistant-token' on stdin is not UTF-8 text\n"
    assert not (store / "gateway.lan" / "tokens").exists()


def test_an_empty_token_in_the_store_names_secrets_set(home_store: Path) -> None:
    store = home_store
    (store / "gateway.lan" / "tokens" / "home-assistant-token").write_text("\n")
    r = run("render", HOME, "--out", str(store.parent / "out"), secrets=store)
    assert_one_line_error(
        r,
        store / "gateway.lan",
        "(the token home-assistant-token): empty",
        f"set it again: mcpgate secrets set {HOME} --host gateway.lan home-assistant-token",
    )
