"""The secrets store: private from the first byte, created once, never regenerated."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pyotp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jwk import RSAKey

from mcpgate.accepted_values import (
    alnum_problem,
    argon2id_digest_problem,
    canonical_uuid_problem,
    pbkdf2_sha512_digest_problem,
    supplied_token_problem,
    totp_seed_form_problem,
)
from mcpgate.errors import SecretsError
from mcpgate.model import Stack
from mcpgate.render import render_stack
from mcpgate.secret_catalogue import CATALOGUE
from mcpgate.secret_crypto import (
    argon2id_hash,
    argon2id_verify,
    generate_totp_seed,
    pbkdf2_sha512_digest,
    pbkdf2_sha512_verify,
    random_string,
)
from mcpgate.secret_store import SecretStore
from mcpgate.secrets import ROTATABLE, StackSecrets


@pytest.fixture
def secrets(store: SecretStore, stack: Stack, signing_key_pem: str) -> StackSecrets:
    """Here, unlike elsewhere (tests/conftest.py), an empty store: these tests are about what is
    generated, when and how. Only the RSA key (seconds to make) and the user's token are given."""
    store.set("authelia/oidc_jwks_rs256.pem", signing_key_pem)
    store.set("tokens/home-assistant-token", "ha-long-lived-token")
    return StackSecrets(store, stack)


@pytest.fixture
def filled(filled_store: SecretStore, stack: Stack) -> StackSecrets:
    """A complete store (a copy of the session's, tests/conftest.py): for the tests about reading
    and damaging values already generated, which would otherwise pay argon2id and pbkdf2 each."""
    return StackSecrets(filled_store, stack)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _generate_all(secrets: StackSecrets) -> dict[str, str]:
    return {
        "session": secrets.session_secret(),
        "storage": secrets.storage_encryption_key(),
        "hmac": secrets.oidc_hmac_secret(),
        "reset": secrets.reset_password_jwt_secret(),
        "key": secrets.oidc_private_key_pem(),
        "redis": secrets.redis_password(),
        "client": secrets.client_secret("claude-ai"),
        "client_digest": secrets.client_secret_digest("claude-ai"),
        "password": secrets.user_password("alice"),
        "password_hash": secrets.user_password_hash("alice"),
        "totp": secrets.user_totp_seed("alice"),
        "sub": secrets.user_subject("alice"),
        "gateway": secrets.gateway_session_key(),
        "backup": secrets.backup_password(),
    }


def test_store_is_private_from_the_first_byte(secrets: StackSecrets) -> None:
    old_umask = os.umask(0)  # even a careless umask must not loosen anything
    try:
        _generate_all(secrets)
    finally:
        os.umask(old_umask)
    root = secrets.store.root
    assert _mode(root) == 0o700
    paths = list(root.rglob("*"))
    assert len([p for p in paths if p.is_file()]) >= 12
    for p in paths:
        assert _mode(p) == (0o700 if p.is_dir() else 0o600), p


def test_secrets_are_created_once_and_read_back(secrets: StackSecrets, store: SecretStore, stack: Stack) -> None:
    first = _generate_all(secrets)
    again = _generate_all(StackSecrets(SecretStore(store.root), stack))
    assert first == again


def test_a_new_process_reads_the_same_values(secrets: StackSecrets, store: SecretStore) -> None:
    first = _generate_all(secrets)
    code = (
        "import sys, json; from tests.conftest import BASE_STACK; from mcpgate.model import load_stack;"
        "from mcpgate.secrets import SecretStore, StackSecrets;"
        "s = StackSecrets(SecretStore(__import__('pathlib').Path(sys.argv[1])), load_stack('h', BASE_STACK));"
        "print(json.dumps([s.client_secret('claude-ai'), s.user_totp_seed('alice'), s.oidc_key_id()]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(store.root)], capture_output=True, text=True, check=True, cwd=Path.cwd()
    ).stdout
    import json

    assert json.loads(out) == [first["client"], first["totp"], secrets.oidc_key_id()]


def test_values_have_the_strength_authelia_needs(secrets: StackSecrets) -> None:
    values = _generate_all(secrets)
    for name in ("session", "storage", "hmac", "reset", "client", "redis"):
        assert len(values[name]) >= 48 and values[name].isalnum(), name
    key = serialization.load_pem_private_key(values["key"].encode(), password=None)
    assert key.key_size >= 2048
    assert len(values["storage"]) >= 20  # Authelia refuses shorter storage keys
    pyotp.TOTP(values["totp"]).now()  # valid base32
    assert len(values["totp"]) == 64 and "=" not in values["totp"]


def test_client_secret_digest_is_pbkdf2_sha512_and_verifies(secrets: StackSecrets) -> None:
    digest = secrets.client_secret_digest("claude-ai")
    assert digest.startswith("$pbkdf2-sha512$310000$")
    assert pbkdf2_sha512_verify(secrets.client_secret("claude-ai"), digest)
    assert not pbkdf2_sha512_verify(secrets.client_secret("claude-ai") + "x", digest)
    assert secrets.client_secret("claude-ai") not in digest


def test_pbkdf2_digest_matches_hashlib_and_the_crypt_alphabet() -> None:
    salt = bytes(range(16))
    digest = pbkdf2_sha512_digest("secret", salt=salt, iterations=1000)
    _, algo, rounds, salt_text, key_text = digest.split("$")
    assert (algo, rounds) == ("pbkdf2-sha512", "1000")
    assert set(salt_text + key_text) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./")
    expected = hashlib.pbkdf2_hmac("sha512", b"secret", salt, 1000)
    import base64

    assert base64.b64decode(key_text.replace(".", "+") + "==") == expected


def test_user_password_hash_is_argon2id_and_kept(secrets: StackSecrets) -> None:
    h1 = secrets.user_password_hash("alice")
    assert h1.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert argon2id_verify(secrets.user_password("alice"), h1)
    assert secrets.user_password_hash("alice") == h1  # no new salt per render


def test_a_digest_that_no_longer_matches_is_recomputed(secrets: StackSecrets, store: SecretStore) -> None:
    secrets.client_secret_digest("claude-ai")
    changed = "C" * 64  # restored from an older backup, say
    store.set("clients/claude-ai.secret", changed)
    assert pbkdf2_sha512_verify(changed, secrets.client_secret_digest("claude-ai"))


def test_a_verified_digest_is_not_verified_again_until_secret_or_digest_change(
    secrets: StackSecrets, store: SecretStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """argon2id and pbkdf2 are slow on purpose: a run that changes nothing verifies nothing."""
    import mcpgate.secrets as module

    calls: list[str] = []
    real = module.pbkdf2_sha512_verify

    def counting(secret: str, digest: str) -> bool:
        calls.append(digest)
        return real(secret, digest)

    monkeypatch.setattr(module, "pbkdf2_sha512_verify", counting)
    digest = secrets.client_secret_digest("claude-ai")  # made, remembered as verified
    assert StackSecrets(SecretStore(store.root), secrets.stack).client_secret_digest("claude-ai") == digest
    assert calls == []
    memo = store.root / "clients" / ".claude-ai.pbkdf2.verified"
    assert _mode(memo) == 0o600 and "clients/.claude-ai.pbkdf2.verified" not in store.names()

    store.set("clients/claude-ai.pbkdf2", module.pbkdf2_sha512_digest(secrets.client_secret("claude-ai")))
    other = secrets.client_secret_digest("claude-ai")  # another salt: verified once, then kept
    assert calls == [other] and other != digest
    store.set("clients/claude-ai.secret", "C" * 64)  # the secret changed: the memo no longer holds
    assert real("C" * 64, secrets.client_secret_digest("claude-ai"))


def test_key_id_is_the_jwk_thumbprint_in_hex_and_stable(secrets: StackSecrets) -> None:
    kid = secrets.oidc_key_id()
    thumbprint = RSAKey.import_key(secrets.oidc_private_key_pem()).thumbprint()
    assert bytes.fromhex(kid) == base64.urlsafe_b64decode(thumbprint + "=")
    assert secrets.oidc_key_id() == kid


def test_loose_permissions_are_tightened(secrets: StackSecrets, store: SecretStore) -> None:
    secrets.redis_password()
    (store.root / "redis" / "password").chmod(0o644)
    store.root.chmod(0o755)
    secrets.redis_password()
    store.set("tokens/x", "y")
    assert _mode(store.root / "redis" / "password") == 0o600
    assert _mode(store.root) == 0o700


def test_rotation_only_for_safe_secrets(secrets: StackSecrets) -> None:
    before = secrets.redis_password()
    item = secrets.rotate("redis-password")
    assert item.restarts == "redis, authelia"
    assert secrets.redis_password() != before
    with pytest.raises(SecretsError, match="cannot be rotated without locking someone out"):
        secrets.rotate("oidc-key")
    assert set(ROTATABLE) == {"redis-password", "session-secret", "reset-password-jwt-secret", "gateway-session-key"}


def test_missing_user_token_names_the_command_to_set_it(secrets: StackSecrets) -> None:
    secrets.store.root.joinpath("tokens", "home-assistant-token").unlink()
    with pytest.raises(SecretsError) as info:
        secrets.require_token("home-assistant-token", "gateway.lan", "inventory/home.py")
    assert "mcpgate secrets set inventory/home.py --host gateway.lan home-assistant-token" in str(info.value)


def test_bad_names_and_hosts_are_refused(store: SecretStore) -> None:
    with pytest.raises(SecretsError):
        store.get("../escape")
    with pytest.raises(SecretsError):
        SecretStore.for_host("/tmp", "../x")


def test_a_symlink_in_place_of_a_secret_is_refused(store: SecretStore, tmp_path: Path) -> None:
    store.set("tokens/a", "1")
    (tmp_path / "elsewhere").write_text("x")
    (store.root / "tokens" / "b").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SecretsError, match="not a regular file"):
        store.get("tokens/b")


# A damaged store: every value is checked as it is read, and refused with its path, what is wrong and
# how to repair it; never with the value.

_RSA_1024 = (
    rsa.generate_private_key(public_exponent=65537, key_size=1024)
    .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    .decode()
)
_EC_KEY = (
    ec.generate_private_key(ec.SECP256R1())
    .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    .decode()
)
_ROTATE = "mcpgate secrets rotate INVENTORY --host gateway.lan"
_BACKUP = "restore it from your backup of the store"


def _encrypted(pem: str) -> str:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    ).decode()


DAMAGED: list[tuple[str, str | bytes, str, str]] = [
    # name, what the file holds, the problem named, the repair named
    (
        "backup/restic-password",
        "x" * 12,
        "12 characters long, expected 64",
        "it is not safe to rotate (the backup repository is encrypted with it",
    ),
    ("redis/password", "", "empty, expected 48 ASCII letters and digits", f"{_ROTATE} redis-password, then deploy"),
    ("redis/password", "abc", "3 characters long, expected 48", f"{_ROTATE} redis-password"),
    ("redis/password", "pass word 'quoted' " + "x" * 29, "holds other characters", f"{_ROTATE} redis-password"),
    ("redis/password", "A" * 48 + "\n", "(a space or line break counts)", f"{_ROTATE} redis-password"),
    ("redis/password", b"\xff\xfe" + b"A" * 46, "not UTF-8 text", f"{_ROTATE} redis-password"),
    ("authelia/session_secret", "", "empty, expected 64", f"{_ROTATE} session-secret"),
    ("authelia/reset_password_jwt_secret", "x" * 63, "63 characters long", f"{_ROTATE} reset-password-jwt-secret"),
    (
        "agentgateway/session_key",
        "ABCDEF" * 10 + "ABCD",
        "not 64 lower-case hex digits",
        f"{_ROTATE} gateway-session-key",
    ),
    ("agentgateway/session_key", "", "empty, expected 64 lower-case hex digits", f"{_ROTATE} gateway-session-key"),
    ("authelia/storage_encryption_key", "", "empty", "not safe to rotate (Authelia's database is encrypted"),
    ("authelia/storage_encryption_key", "k" * 20, "20 characters long", "authelia-data"),
    ("authelia/oidc_hmac_secret", "", "empty", "not safe to rotate (it signs the authorization codes"),
    ("authelia/oidc_jwks_rs256.pem", "", "empty, expected a PEM RSA private key", "not safe to rotate"),
    ("authelia/oidc_jwks_rs256.pem", "TRUNCATED", "not a PEM private key that parses (truncated or damaged)", _BACKUP),
    ("authelia/oidc_jwks_rs256.pem", _RSA_1024, "an RSA key of 1024 bits; RS256 needs at least 2048", _BACKUP),
    ("authelia/oidc_jwks_rs256.pem", _EC_KEY, "not an RSA key", "with no backup, delete it and deploy"),
    ("authelia/oidc_jwks_rs256.pem", "ENCRYPTED", "encrypted with a passphrase", _BACKUP),
    ("authelia/oidc_jwks_rs256.pem", "JUNK", "holds text besides its one PEM block", _BACKUP),
    ("clients/claude-ai.secret", "", "empty, expected 64", "not safe to rotate (the client, e.g. Claude's connector"),
    ("clients/claude-ai.secret", "a" * 64 + " ", "holds other characters", "mcpgate secrets show INVENTORY"),
    ("clients/claude-ai.pbkdf2", "$pbkdf2-sha512$broken", "not a pbkdf2-sha512 digest", "delete it, and the next"),
    ("clients/claude-ai.pbkdf2", "$pbkdf2-sha512$310000$abc$def", "wrong length, expected 16 and 64 bytes", "delete"),
    ("clients/claude-ai.pbkdf2", "$pbkdf2-sha256$310000$abc$def", "not a pbkdf2-sha512 digest", "delete it"),
    ("users/alice.password", "", "empty, expected 24 ASCII letters and digits", _BACKUP),
    ("users/alice.argon2id", "$argon2id$v=19$m=65536", "not an argon2id digest", "delete it, and the next render"),
    ("users/alice.argon2id", "ARGON2I", "not an argon2id digest", "delete it"),
    ("users/alice.totp", "not base32!", "not unpadded upper-case base32", "not safe to rotate (alice's authenticator"),
    ("users/alice.totp", "A" * 32, "32 characters long, expected 64 base32 characters", "otpauth:// URI"),
    ("users/alice.totp", "a" * 64, "not unpadded upper-case base32", _BACKUP),
    ("users/alice.totp", "", "empty, expected 64 base32", _BACKUP),
    ("users/alice.sub", "not-a-uuid", "not a UUID in canonical form", "authelia storage user identifiers export"),
    ("users/alice.sub", str(uuid.uuid4()).upper(), "not a UUID in canonical form", _BACKUP),
    ("tokens/home-assistant-token", "  \n", "empty", "mcpgate secrets set INVENTORY --host gateway.lan"),
    ("tokens/home-assistant-token", "a\0b", "holds a NUL byte", "home-assistant-token (reads the value from stdin)"),
]


ACCESSORS: dict[str, Callable[[StackSecrets], object]] = {
    "redis/password": StackSecrets.redis_password,
    "authelia/session_secret": StackSecrets.session_secret,
    "authelia/reset_password_jwt_secret": StackSecrets.reset_password_jwt_secret,
    "agentgateway/session_key": StackSecrets.gateway_session_key,
    "backup/restic-password": StackSecrets.backup_password,
    "authelia/storage_encryption_key": StackSecrets.storage_encryption_key,
    "authelia/oidc_hmac_secret": StackSecrets.oidc_hmac_secret,
    "authelia/oidc_jwks_rs256.pem": StackSecrets.oidc_public_jwks,
    "clients/claude-ai.secret": lambda s: s.client_secret("claude-ai"),
    "clients/claude-ai.pbkdf2": lambda s: s.client_secret_digest("claude-ai"),
    "users/alice.password": lambda s: s.user_password("alice"),
    "users/alice.argon2id": lambda s: s.user_password_hash("alice"),
    "users/alice.totp": lambda s: s.user_totp_seed("alice"),
    "users/alice.sub": lambda s: s.user_subject("alice"),
    "tokens/home-assistant-token": lambda s: s.require_token("home-assistant-token", "gateway.lan"),
}


def _damage(secrets: StackSecrets, name: str, content: str | bytes) -> Path:
    """Overwrite one stored value in place (its mode stays 0600), as a bad edit or a bad disk would."""
    _generate_all(secrets)
    if content == "TRUNCATED":
        content = secrets.oidc_private_key_pem()[:800]
    elif content == "ENCRYPTED":
        content = _encrypted(secrets.oidc_private_key_pem())
    elif content == "JUNK":
        content = secrets.oidc_private_key_pem() + "pasted by mistake\n"
    elif content == "ARGON2I":
        content = secrets.user_password_hash("alice").replace("$argon2id$", "$argon2i$")
    path = secrets.store.root / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert _mode(path) == 0o600
    return path


@pytest.mark.parametrize(
    ("name", "content", "problem", "repair"), DAMAGED, ids=[f"{d[0]}-{i}" for i, d in enumerate(DAMAGED)]
)
def test_a_damaged_secret_is_refused_with_its_path_problem_and_repair(
    filled: StackSecrets, stack: Stack, name: str, content: str | bytes, problem: str, repair: str
) -> None:
    secrets = filled
    path = _damage(secrets, name, content)
    stored = path.read_bytes()
    for read_only in (False, True):
        store = SecretStore(secrets.store.root, read_only=read_only)
        with pytest.raises(SecretsError) as info:
            store.get(name)
        message = str(info.value)
        assert message.startswith(f"damaged secret {path} ("), message
        assert problem in message and repair in message, message
        assert "\n" not in message
        if len(stored.strip()) >= 8:
            assert stored.strip().decode(errors="replace") not in message
        # and so does the accessor that render and check call
        with pytest.raises(SecretsError, match="damaged secret"):
            ACCESSORS[name](StackSecrets(store, stack))
    assert path.read_bytes() == stored  # refused, never replaced


@pytest.mark.parametrize("name", sorted({n for n, *_ in DAMAGED}))
def test_a_generated_value_passes_its_own_rule(filled: StackSecrets, name: str) -> None:
    _generate_all(filled)  # the session's store was generated by the same code
    assert filled.store.get(name) is not None


def test_only_safe_secrets_are_offered_for_rotation(filled: StackSecrets) -> None:
    """The repair for a damaged value names `secrets rotate` exactly where it replaces that file: the
    infrastructure secrets of ROTATABLE, a confidential client's secret and a person's TOTP seed."""
    secrets = filled
    _generate_all(secrets)
    stack = secrets.stack
    names = [*ROTATABLE, *(f"client/{c.id}" for c in stack.clients if not c.public)]
    names += [f"{kind}/{u.name}" for u in stack.users for kind in ("totp", "password")]
    rotatable_paths = {secrets.rotatable(n).path for n in names}
    assert {"clients/claude-ai.secret", "users/alice.totp"} <= rotatable_paths
    for name in secrets.store.names():
        (secrets.store.root / name).write_text("")
        with pytest.raises(SecretsError) as info:
            secrets.store.get(name)
        assert ("mcpgate secrets rotate" in str(info.value)) == (name in rotatable_paths), name


def test_a_healthy_store_reads_without_a_word(
    secrets: StackSecrets, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    first = render_stack(stack, secrets, host="gateway.lan")
    capsys.readouterr()
    for read_only in (False, True):
        again = render_stack(stack, StackSecrets(SecretStore(secrets.store.root, read_only), stack), host="gateway.lan")
        assert [(f.path, f.content, f.mode) for f in again.files] == [(f.path, f.content, f.mode) for f in first.files]
    assert capsys.readouterr().err == ""


def test_loose_modes_are_reported_and_tightened(
    secrets: StackSecrets, store: SecretStore, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets.redis_password()
    password = store.root / "redis" / "password"
    password.chmod(0o644)
    (store.root / "redis").chmod(0o755)
    store.root.chmod(0o750)
    capsys.readouterr()
    fresh = StackSecrets(SecretStore(store.root), secrets.stack)
    fresh.redis_password()
    err = capsys.readouterr().err
    assert f"mcpgate: WARNING: secret {password} had mode 0644: other users may have read it; set to 0600" in err
    assert f"secrets folder {store.root / 'redis'} had mode 0755" in err
    assert f"secrets folder {store.root} had mode 0750" in err
    assert (_mode(password), _mode(password.parent), _mode(store.root)) == (0o600, 0o700, 0o700)
    fresh.redis_password()
    assert capsys.readouterr().err == ""  # repaired: nothing more to say


def test_a_read_only_store_reports_loose_modes_and_changes_nothing(
    secrets: StackSecrets, store: SecretStore, capsys: pytest.CaptureFixture[str]
) -> None:
    _generate_all(secrets)
    password = store.root / "redis" / "password"
    password.chmod(0o604)
    (store.root / "users").chmod(0o755)
    before = {p: (p.stat().st_mode, p.read_bytes() if p.is_file() else b"") for p in store.root.rglob("*")}
    capsys.readouterr()
    checking = StackSecrets(SecretStore(store.root, read_only=True), secrets.stack)
    for _ in range(2):
        _generate_all(checking)
        checking.rotate("session-secret")  # kept in memory only
    err = capsys.readouterr().err
    assert err.count(f"secret {password} has mode 0604: other users may read it; left as it is") == 1
    assert f"chmod 0600 {password}" in err
    assert err.count(f"secrets folder {store.root / 'users'} has mode 0755") == 1
    after = {p: (p.stat().st_mode, p.read_bytes() if p.is_file() else b"") for p in store.root.rglob("*")}
    assert after == before


def test_a_tighter_mode_is_set_back_quietly(
    secrets: StackSecrets, store: SecretStore, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets.redis_password()
    (store.root / "redis" / "password").chmod(0o400)
    capsys.readouterr()
    StackSecrets(SecretStore(store.root), secrets.stack).redis_password()
    assert capsys.readouterr().err == ""
    assert _mode(store.root / "redis" / "password") == 0o600


@pytest.mark.parametrize("read_only", [False, True])
def test_a_file_where_the_store_folder_belongs_is_named(tmp_path: Path, read_only: bool) -> None:
    (tmp_path / "secrets").write_text("not a folder")
    store = SecretStore.for_host(tmp_path / "secrets", "gateway.lan", read_only=read_only)
    expected = f"{tmp_path / 'secrets'} is a file, not a folder; move that file away or choose another store folder"
    with pytest.raises(SecretsError, match=re.escape(expected)):
        store.get("redis/password")
    if not read_only:
        with pytest.raises(SecretsError, match=re.escape(expected)):
            store.get_or_create("redis/password", random_string)
        with pytest.raises(SecretsError, match=re.escape(expected)):
            store.set("tokens/x", "y")
    assert (tmp_path / "secrets").read_text() == "not a folder"


def test_a_file_where_a_secrets_subfolder_belongs_is_named(store: SecretStore) -> None:
    store.set("tokens/x", "value-1")
    (store.root / "users").write_text("")
    with pytest.raises(SecretsError, match=re.escape(f"{store.root / 'users'} is a file, not a folder")):
        store.get("users/alice.totp")
    with pytest.raises(SecretsError, match=re.escape(f"{store.root / 'users'} is a file, not a folder")):
        store.set("users/alice.totp", generate_totp_seed())


def test_rule_functions_accept_what_is_generated() -> None:
    for _ in range(200):
        assert alnum_problem(random_string(), 64) is None
        assert totp_seed_form_problem(generate_totp_seed(), 64) is None
        assert canonical_uuid_problem(str(uuid.uuid4())) is None
        assert pbkdf2_sha512_digest_problem(pbkdf2_sha512_digest(random_string(), iterations=1000)) is None
    assert argon2id_digest_problem(argon2id_hash("x")) is None
    assert supplied_token_problem("tskey-auth-abc123\n") is None


def test_a_token_the_gateway_sends_must_fit_an_http_header(secrets: StackSecrets) -> None:
    """The store keeps any text a person gives; the gateway's use of it asks for one header-safe word."""
    secrets.store.set("tokens/home-assistant-token", "two words")
    with pytest.raises(SecretsError) as info:
        secrets.require_token("home-assistant-token", "gateway.lan", "inventory/home.py")
    message = str(info.value)
    assert "holds spaces" in message and "mcpgate secrets set inventory/home.py --host gateway.lan" in message


@pytest.mark.parametrize("folder", ["", "users"], ids=["store-root", "a-folder-inside"])
def test_a_store_folder_of_another_user_is_refused(tmp_path: Path, folder: str) -> None:
    """A store under a shared path could have been made, and seeded, by another local user: its
    folders must be this user's own, or nothing is read from or written to it."""
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    store = SecretStore.for_host(tmp_path / "secrets", "gateway.lan")
    store.set("users/alice.password", "kept-value-for-the-test-0123456789")
    theirs = store.root / folder if folder else store.root
    os.chown(theirs, 65534, 65534)
    for action in (
        lambda: store.get("users/alice.password"),
        lambda: store.set("users/bob.password", "kept-value-for-the-test-0123456789"),
    ):
        with pytest.raises(SecretsError) as err:
            action()
        assert f"folder {theirs} belongs to uid 65534" in str(err.value)
        assert "use a store folder of your own" in str(err.value)
    assert not (store.root / "users" / "bob.password").exists()


def test_each_file_of_the_store_is_one_row_of_the_catalogue(filled: StackSecrets) -> None:
    """One home for each secret: every file a stack's store holds is described by exactly one row,
    that row lists it among the stack's files, and each generator is written once, in secret_crypto."""
    _generate_all(filled)
    listed = {name for row in CATALOGUE for name in row.files(filled.stack)}
    for name in filled.store.names():
        rows = [row.path for row in CATALOGUE if row.pattern.fullmatch(name)]
        assert len(rows) == 1, (name, rows)
        if name != "backup/restic-password":  # generated here although BASE_STACK has no backup
            assert name in listed, name
    for row in CATALOGUE:
        make = getattr(row.generate, "func", row.generate)  # a functools.partial: the function it calls
        assert make is None or make.__module__ == "mcpgate.secret_crypto", row.path
    assert set(ROTATABLE) == {row.rotate for row in CATALOGUE if row.rotate and "{who}" not in row.rotate}
