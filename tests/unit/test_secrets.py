"""The secrets store: private from the first byte, created once, never regenerated."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pyotp
import pytest
from cryptography.hazmat.primitives import serialization
from joserfc.jwk import RSAKey

from mcpgate.errors import SecretsError
from mcpgate.model import Stack
from mcpgate.secrets import (
    ROTATABLE,
    SecretStore,
    StackSecrets,
    argon2id_verify,
    pbkdf2_sha512_digest,
    pbkdf2_sha512_verify,
)


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
    store.set("clients/claude-ai.secret", "changed-by-hand")
    assert pbkdf2_sha512_verify("changed-by-hand", secrets.client_secret_digest("claude-ai"))


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
