"""The secrets store: generated credentials, kept on the machine that runs pyinfra.

One folder per host (default ``secrets/<host>/``), folders 0700 and files 0600 from the moment
they exist. A secret is generated on first use and never regenerated, so rebuilding a host from
scratch gives it the same credentials and Claude's connector keeps working.

Example::

    store = SecretStore.for_host(Path("secrets"), "gateway.lan")
    secrets = StackSecrets(store, stack)
    secrets.client_secret("claude-ai")      # created once, then read back
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import os
import re
import secrets as pysecrets
import stat
import string
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey

from .errors import SecretsError
from .model import Stack

DEFAULT_STORE = Path("secrets")
RSA_KEY_BITS = 3072
PBKDF2_ITERATIONS = 310_000  # Authelia's default for pbkdf2-sha512

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*$")
_ALNUM = string.ascii_letters + string.digits


def random_string(length: int = 64) -> str:
    """A random alphanumeric string: safe in YAML, URLs, env files and HTTP forms."""
    return "".join(pysecrets.choice(_ALNUM) for _ in range(length))


def _ab64(data: bytes) -> str:
    """The 'adapted base64' of crypt(3)-style digests: '+' becomes '.', no padding."""
    return base64.b64encode(data).decode().rstrip("=").replace("+", ".")


def _ab64_decode(text: str) -> bytes:
    text = text.replace(".", "+")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def pbkdf2_sha512_digest(secret: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """``$pbkdf2-sha512$<iterations>$<salt>$<key>``, the form Authelia stores client secrets in."""
    salt = salt if salt is not None else os.urandom(16)
    key = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations)
    return f"$pbkdf2-sha512${iterations}${_ab64(salt)}${_ab64(key)}"


def pbkdf2_sha512_verify(secret: str, digest: str) -> bool:
    try:
        _, algo, iterations, salt, key = digest.split("$")
        if algo != "pbkdf2-sha512":
            return False
        expected = hashlib.pbkdf2_hmac("sha512", secret.encode(), _ab64_decode(salt), int(iterations))
        return hmac.compare_digest(expected, _ab64_decode(key))
    except (ValueError, TypeError):
        return False


# Authelia's argon2id defaults: t=3, m=64 MiB, p=4, 32-byte key, 16-byte salt.
_argon2 = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4, hash_len=32, salt_len=16)


def argon2id_hash(password: str) -> str:
    return _argon2.hash(password)


def argon2id_verify(password: str, digest: str) -> bool:
    try:
        return _argon2.verify(digest, password)
    except (VerificationError, InvalidHashError):
        return False


def key_id_for(pem: str) -> str:
    """The RFC 7638 SHA-256 thumbprint of a key, hex-encoded.

    Not the usual base64url form: that starts with '-' or '_' for about one key in 32,
    and Authelia refuses such a key_id (it must start and end with a letter or digit) and never
    starts. Hex is always 64 characters of 0-9a-f.
    """
    return key_id_from_thumbprint(RSAKey.import_key(pem).thumbprint())


def key_id_from_thumbprint(thumbprint: str) -> str:
    """Hex of a base64url RFC 7638 thumbprint."""
    return base64.urlsafe_b64decode(thumbprint + "=" * (-len(thumbprint) % 4)).hex()


def _generate_rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _generate_totp_seed() -> str:
    # 40 random bytes encode to exactly 64 base32 characters, no padding.
    return base64.b32encode(os.urandom(40)).decode()


class SecretStore:
    """Named secrets in one host's folder; each file written once, atomically, 0600.

    A ``read_only`` store reads what the folder holds and keeps whatever it would have created or
    changed in memory only: checking an inventory leaves no trace on disk.
    """

    def __init__(self, root: Path, read_only: bool = False) -> None:
        self.root = root
        self.read_only = read_only
        self._unsaved: dict[str, str] = {}

    @classmethod
    def for_host(cls, base: Path | str, host: str, read_only: bool = False) -> SecretStore:
        if not host or "/" in host or host in (".", ".."):
            raise SecretsError(f"host name {host!r} cannot name a secrets folder")
        return cls(Path(base) / host, read_only)

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise SecretsError(f"secret name {name!r} is invalid")
        return self.root / name

    def _ensure_dir(self, path: Path) -> None:
        """Create ``path`` and every folder between it and the store root 0700; tighten looser ones."""
        self.root.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        current = self.root
        for part in ("", *path.relative_to(self.root).parts):
            current = current / part if part else current
            if not current.exists():
                current.mkdir(mode=0o700)
            if stat.S_IMODE(current.stat().st_mode) != 0o700:
                current.chmod(0o700)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._ensure_dir(self.root)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def get(self, name: str) -> str | None:
        path = self._path(name)
        if name in self._unsaved:
            return self._unsaved[name]
        try:
            st = path.lstat()
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            raise SecretsError(f"{path} is not a regular file; remove it and run again")
        if stat.S_IMODE(st.st_mode) != 0o600 and not self.read_only:
            path.chmod(0o600)
        return path.read_text()

    def _write(self, name: str, value: str, replace: bool) -> bool:
        """Write atomically; with replace=False keep an existing value. True when written."""
        path = self._path(name)
        self._ensure_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{pysecrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(value)
                f.flush()
                os.fsync(f.fileno())
            if replace:
                os.replace(tmp, path)
                return True
            try:
                os.link(tmp, path)  # fails if the secret exists: never overwrite by accident
            except FileExistsError:
                return False
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def get_or_create(self, name: str, factory: Callable[[], str]) -> str:
        existing = self.get(name)
        if existing is not None:
            return existing
        if self.read_only:
            self._unsaved[name] = factory()
            return self._unsaved[name]
        with self._locked():
            existing = self.get(name)
            if existing is not None:
                return existing
            self._write(name, factory(), replace=False)
        value = self.get(name)
        assert value is not None
        return value

    def set(self, name: str, value: str) -> None:
        if self.read_only:
            self._path(name)
            self._unsaved[name] = value
            return
        with self._locked():
            self._write(name, value, replace=True)

    def names(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(
            str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file() and not p.name.startswith(".")
        )


@dataclass(frozen=True)
class Rotatable:
    name: str
    path: str
    factory: Callable[[], str]
    restarts: str


# Secrets whose rotation logs nobody out of their authenticator and keeps Claude's connector:
# the Redis password (sessions stay in Redis' volume), the session cookie secret (users sign in
# again) and the reset-password JWT secret. Keys that sign tokens or encrypt storage are not here.
ROTATABLE: dict[str, Rotatable] = {
    r.name: r
    for r in (
        Rotatable("redis-password", "redis/password", lambda: random_string(48), "redis, authelia"),
        Rotatable("session-secret", "authelia/session_secret", random_string, "authelia"),
        Rotatable("reset-password-jwt-secret", "authelia/reset_password_jwt_secret", random_string, "authelia"),
        Rotatable("gateway-session-key", "agentgateway/session_key", lambda: os.urandom(32).hex(), "agentgateway"),
    )
}


class StackSecrets:
    """Every credential one stack needs, generated on first use from the store."""

    def __init__(self, store: SecretStore, stack: Stack) -> None:
        self.store = store
        self.stack = stack

    # Authelia's own secrets
    def session_secret(self) -> str:
        return self.store.get_or_create("authelia/session_secret", random_string)

    def storage_encryption_key(self) -> str:
        return self.store.get_or_create("authelia/storage_encryption_key", random_string)

    def oidc_hmac_secret(self) -> str:
        return self.store.get_or_create("authelia/oidc_hmac_secret", random_string)

    def reset_password_jwt_secret(self) -> str:
        return self.store.get_or_create("authelia/reset_password_jwt_secret", random_string)

    def oidc_private_key_pem(self) -> str:
        return self.store.get_or_create("authelia/oidc_jwks_rs256.pem", _generate_rsa_pem)

    def oidc_key_id(self) -> str:
        """The signing key's id: stable for as long as the key is (see :func:`key_id_for`)."""
        return key_id_for(self.oidc_private_key_pem())

    def oidc_public_jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWK Set Authelia serves for this key (same kid, alg and use)."""
        public = RSAKey.import_key(self.oidc_private_key_pem()).as_dict(private=False)
        jwk = {
            "use": "sig",
            "kty": "RSA",
            "kid": self.oidc_key_id(),
            "alg": "RS256",
            "n": public["n"],
            "e": public["e"],
        }
        return {"keys": [jwk]}

    def gateway_session_key(self) -> str:
        """AES-256-GCM key (hex) agentgateway encrypts MCP session ids with."""
        return self.store.get_or_create("agentgateway/session_key", lambda: os.urandom(32).hex())

    def redis_password(self) -> str:
        return self.store.get_or_create("redis/password", lambda: random_string(48))

    # OAuth clients
    def client_secret(self, client_id: str) -> str:
        return self.store.get_or_create(f"clients/{client_id}.secret", random_string)

    def _kept_digest(
        self, name: str, secret: str, make: Callable[[str], str], verify: Callable[[str, str], bool]
    ) -> str:
        """A salted digest of ``secret``, kept in the store so rendering is byte-identical run after
        run; made anew only when it no longer matches the secret."""
        digest = self.store.get(name)
        if digest is None or not verify(secret, digest):
            digest = make(secret)
            self.store.set(name, digest)
        return digest

    def client_secret_digest(self, client_id: str) -> str:
        """The pbkdf2 digest Authelia gets instead of the secret."""
        return self._kept_digest(
            f"clients/{client_id}.pbkdf2", self.client_secret(client_id), pbkdf2_sha512_digest, pbkdf2_sha512_verify
        )

    # Users
    def user_password(self, user: str) -> str:
        return self.store.get_or_create(f"users/{user}.password", lambda: random_string(24))

    def user_password_hash(self, user: str) -> str:
        """The argon2id digest for Authelia's users file."""
        return self._kept_digest(f"users/{user}.argon2id", self.user_password(user), argon2id_hash, argon2id_verify)

    def user_totp_seed(self, user: str) -> str:
        return self.store.get_or_create(f"users/{user}.totp", _generate_totp_seed)

    def user_subject(self, user: str) -> str:
        return self.store.get_or_create(f"users/{user}.sub", lambda: str(uuid.uuid4()))

    # Secrets a person supplies (`mcpgate secrets set`)
    def token(self, name: str) -> str | None:
        return self.store.get(f"tokens/{name}")

    def require_token(self, name: str, host: str, inventory: str = "INVENTORY") -> str:
        value = self.token(name)
        if value is None or not value.strip():
            raise SecretsError(
                f"secret {name!r} for host {host!r} is not in the store ({self.store.root}); set it with:\n"
                f"  mcpgate secrets set {inventory} --host {host} {name}   (reads the value from stdin)"
            )
        return value.strip()

    def values_that_must_not_leak(self) -> list[str]:
        """Every secret value of the stack (all but digests and public data), to look for leaks."""
        stack = self.stack
        values = [
            self.session_secret(),
            self.storage_encryption_key(),
            self.oidc_hmac_secret(),
            self.reset_password_jwt_secret(),
            self.redis_password(),
            self.gateway_session_key(),
            *(self.client_secret(c.id) for c in stack.clients if not c.public),
            *(self.user_password(u.name) for u in stack.users),
            *(self.user_totp_seed(u.name) for u in stack.users),
            *(t for t in (self.token(n) for n in stack.token_secrets) if t),
            self.oidc_private_key_pem().splitlines()[1],  # a line of the private key itself
        ]
        return [v.strip() for v in values if len(v.strip()) >= 8]

    def settable_names(self) -> list[str]:
        names = [b.token_secret for b in self.stack.backends if b.token_secret]
        if self.stack.tailscale.enabled:
            names.append(self.stack.tailscale.auth_key_secret)
        return names

    def rotate(self, name: str) -> Rotatable:
        try:
            item = ROTATABLE[name]
        except KeyError:
            raise SecretsError(
                f"{name!r} cannot be rotated without locking someone out; rotatable: {', '.join(ROTATABLE)}"
            ) from None
        self.store.set(item.path, item.factory())
        return item
