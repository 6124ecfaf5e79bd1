"""The secrets store: generated credentials, kept on the machine that runs pyinfra.

One folder per host (default ``secrets/<host>/``), folders 0700 and files 0600 from the moment
they exist. A secret is generated on first use and never regenerated, so rebuilding a host from
scratch gives it the same credentials; Claude's connector keeps working only if Authelia's database
comes back too (a backup restored, see mcpgate.backup_plan), since its refresh tokens live there.

Example::

    store = SecretStore.for_host(Path("secrets"), "gateway.lan")
    secrets = StackSecrets(store, stack)
    secrets.client_secret("claude-ai")      # created once, then read back
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import getpass
import hashlib
import hmac
import os
import re
import secrets as pysecrets
import stat
import string
import sys
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
from .rules import (
    alnum_problem,
    argon2id_digest_problem,
    canonical_uuid_problem,
    hex_key_problem,
    load_private_key,
    pbkdf2_sha512_digest_problem,
    rsa_private_key_problem,
    supplied_secret_problem,
    supplied_value_problem,
    totp_seed_form_problem,
)

RSA_KEY_BITS = 3072
PBKDF2_ITERATIONS = 310_000  # Authelia's default for pbkdf2-sha512
TOTP_SEED_BYTES = 40
TOTP_SEED_CHARS = len(base64.b32encode(bytes(TOTP_SEED_BYTES)))  # 64, no padding
SECRET_CHARS = 64  # Authelia's secrets and client secrets
REDIS_PASSWORD_CHARS = 48
USER_PASSWORD_CHARS = 24
BACKUP_PASSWORD_SECRET = "backup/restic-password"
FILE_MODE = 0o600
DIR_MODE = 0o700

SIGNING_KEY = "authelia/oidc_jwks_rs256.pem"
RETIRING_KEY = "authelia/oidc_jwks_rs256.retiring.pem"  # during a rollover: verifies, never signs
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*$")
_ALNUM = string.ascii_letters + string.digits


def random_string(length: int = SECRET_CHARS) -> str:
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


# Authelia's argon2id defaults, in its configuration's words: the users' digests are made with
# these and its configuration (password: argon2:) names the same.
ARGON2 = {"iterations": 3, "memory": 65536, "parallelism": 4, "key_length": 32, "salt_length": 16}
_argon2 = PasswordHasher(
    time_cost=ARGON2["iterations"],
    memory_cost=ARGON2["memory"],
    parallelism=ARGON2["parallelism"],
    hash_len=ARGON2["key_length"],
    salt_len=ARGON2["salt_length"],
)


def argon2id_hash(password: str) -> str:
    return _argon2.hash(password)


def argon2id_verify(password: str, digest: str) -> bool:
    try:
        return _argon2.verify(digest, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.lru_cache(maxsize=16)
def key_id_for(pem: str) -> str:
    """The RFC 7638 SHA-256 thumbprint of a key, hex-encoded.

    Not the usual base64url form: that starts with '-' or '_' for about one key in 32,
    and Authelia refuses such a key_id (it must start and end with a letter or digit) and never
    starts. Hex is always 64 characters of 0-9a-f.
    """
    return key_id_from_thumbprint(_jwk(pem).thumbprint())


@functools.lru_cache(maxsize=16)
def _jwk(pem: str) -> RSAKey:
    return RSAKey.import_key(load_private_key(pem))  # type: ignore[arg-type]


@functools.lru_cache(maxsize=16)
def _public_jwk(pem: str) -> tuple[tuple[str, str], ...]:
    """The public JWK Authelia serves for this private key (cached: parsing a key takes ~0.2 s)."""
    public = _jwk(pem).as_dict(private=False)
    return (("use", "sig"), ("kty", "RSA"), ("kid", key_id_for(pem)), ("alg", "RS256"),
            ("n", public["n"]), ("e", public["e"]))  # fmt: skip


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
    return base64.b32encode(os.urandom(TOTP_SEED_BYTES)).decode()


def _warn(message: str) -> None:
    print(f"mcpgate: WARNING: {message}", file=sys.stderr, flush=True)


class SecretStore:
    """Named secrets in one host's folder; each file written once, atomically, 0600.

    Every value read from disk is checked against the form mcpgate generates it in
    (:data:`SECRET_KINDS`); a damaged one is refused with its path and the way to repair it. A file
    or folder found with a looser mode is reported on stderr and tightened.

    A ``read_only`` store reads what the folder holds and keeps whatever it would have created or
    changed in memory only: checking an inventory leaves no trace on disk, not even a chmod.
    """

    def __init__(self, root: Path, read_only: bool = False, inventory: str = "INVENTORY") -> None:
        self.root = root
        self.read_only = read_only
        # Only for the repair commands printed in errors.
        self.inventory = inventory
        self._unsaved: dict[str, str] = {}
        self._reported: set[Path] = set()  # loose modes a read-only store has already reported

    @classmethod
    def for_host(cls, base: Path | str, host: str, read_only: bool = False) -> SecretStore:
        if not host or "/" in host or host in (".", ".."):
            raise SecretsError(f"host name {host!r} cannot name a secrets folder")
        return cls(Path(base) / host, read_only)

    @property
    def host(self) -> str:
        return self.root.name

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise SecretsError(f"secret name {name!r} is invalid")
        return self.root / name

    # Errors and modes

    def _os_error(self, err: OSError, doing: str) -> SecretsError:
        """A one-line SecretsError for an OSError met while ``doing`` something to the store."""
        path = Path(err.filename) if err.filename else self.root
        elsewhere = "or choose another store folder with --secrets or MCPGATE_SECRETS_DIR"
        if isinstance(err, (NotADirectoryError, FileExistsError)):
            blocker = file_in_the_way(path) or path
            return SecretsError(
                f"secrets store {self.root}: {blocker} is a file, not a folder; move that file away {elsewhere}"
            )
        if isinstance(err, PermissionError):
            who = _user_name()
            return SecretsError(
                f"secrets store {self.root}: cannot {doing} {path}: permission denied for user {who}; "
                f"give {who} access to it (chown/chmod), {elsewhere}"
            )
        return SecretsError(
            f"secrets store {self.root}: cannot {doing} {path}: {err.strerror or err}; fix that {elsewhere}"
        )

    def _check_mode(self, path: Path, mode: int, expected: int, what: str) -> None:
        """Report a mode that lets others in and tighten it; a read-only store reports it once per path."""
        actual = stat.S_IMODE(mode)
        if actual == expected or (self.read_only and path in self._reported):
            return
        self._reported.add(path)
        loosened = actual & ~expected & 0o777
        if not self.read_only:
            try:
                path.chmod(expected)
            except OSError as err:
                raise self._os_error(err, "tighten the mode of") from None
        if not loosened:
            return  # tighter than needed (0400): harmless, set back to the usual mode
        if self.read_only:
            _warn(
                f"{what} {path} has mode {actual:04o}: other users may read it; left as it is (this command "
                f"changes nothing): chmod {expected:04o} {path}, or `mcpgate render` or a deploy tightens it"
            )
        else:
            _warn(f"{what} {path} had mode {actual:04o}: other users may have read it; set to {expected:04o}")

    def _check_folders(self, folder: Path) -> None:
        """Every existing folder from the store root down to ``folder``: a folder of this user's, and 0700."""
        current = self.root
        for part in ("", *folder.relative_to(self.root).parts):
            current = current / part if part else current
            try:
                st = current.stat()
            except FileNotFoundError:
                return
            except OSError as err:
                raise self._os_error(err, "read") from None
            if not stat.S_ISDIR(st.st_mode):
                raise self._os_error(NotADirectoryError(20, "Not a directory", str(current)), "read")
            if st.st_uid != os.geteuid():
                # Its owner could have put a signing key or password of their choosing there, or read ours.
                raise SecretsError(
                    f"secrets store {self.root}: folder {current} belongs to uid {st.st_uid}, not to {_user_name()} "
                    f"(uid {os.geteuid()}), who could read the secrets or plant their own; use a store folder of "
                    "your own (--secrets or MCPGATE_SECRETS_DIR), or, if that user is you, chown it"
                )
            self._check_mode(current, st.st_mode, DIR_MODE, "secrets folder")

    def _ensure_dir(self, path: Path) -> None:
        """Create ``path`` and every folder between it and the store root 0700; tighten looser ones."""
        try:
            self.root.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            current = self.root
            for part in ("", *path.relative_to(self.root).parts):
                current = current / part if part else current
                if not current.exists() and not current.is_symlink():
                    current.mkdir(mode=DIR_MODE)
        except OSError as err:
            raise self._os_error(err, "create") from None
        self._check_folders(path)

    def _damaged(self, name: str, path: Path, problem: str) -> SecretsError:
        kind = _kind_of(name)
        what = kind.what.format(who=kind.who(name)) if kind else "secret"
        repair = kind.repair_for(self, name, path) if kind else f"restore {path} from your backup of the store"
        return SecretsError(f"damaged secret {path} ({what}): {problem}; {repair}")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._ensure_dir(self.root)
        try:
            fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as err:
            raise self._os_error(err, "write") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def get(self, name: str) -> str | None:
        """The stored value, checked against its kind's form; None if the store has none."""
        path = self._path(name)
        if name in self._unsaved:
            return self._unsaved[name]
        self._check_folders(path.parent)
        try:
            st = path.lstat()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise self._os_error(err, "read") from None
        if not stat.S_ISREG(st.st_mode):
            raise SecretsError(
                f"{path} is not a regular file (a folder or a link where a secret belongs); "
                f"move it away and restore the secret from your backup of the store"
            )
        self._check_mode(path, st.st_mode, FILE_MODE, "secret")
        try:
            value = path.read_bytes().decode()
        except UnicodeDecodeError:
            raise self._damaged(name, path, "not UTF-8 text") from None
        except OSError as err:
            raise self._os_error(err, "read") from None
        kind = _kind_of(name)
        problem = kind.problem(value) if kind else None
        if problem:
            raise self._damaged(name, path, problem)
        return value

    def _write(self, name: str, value: str, replace: bool) -> bool:
        """Write atomically; with replace=False keep an existing value. True when written."""
        path = self._path(name)
        self._ensure_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{pysecrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
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
        except OSError as err:
            raise self._os_error(err, "write") from None

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

    def delete(self, name: str) -> None:
        """Remove a secret (a finished rollover's retiring key); nothing when it is not there."""
        path = self._path(name)
        if self.read_only:
            self._unsaved.pop(name, None)
            return
        with self._locked():
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as err:
                raise self._os_error(err, "remove") from None

    # A digest known to match its secret: ``.<file>.verified`` beside it holds
    # sha256(secret, digest), which changes if either does. It tells nothing the store's own
    # files do not (the secret is beside it in clear).
    def _verified_path(self, name: str) -> Path:
        path = self._path(name)
        return path.with_name(f".{path.name}.verified")

    @staticmethod
    def _binding(secret: str, digest: str) -> str:
        return hashlib.sha256(f"{len(secret)}:{secret}{digest}".encode()).hexdigest()

    def verified(self, name: str, secret: str, digest: str) -> bool:
        try:
            seen = self._verified_path(name).read_text()
        except (OSError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(seen, self._binding(secret, digest))

    def remember_verified(self, name: str, secret: str, digest: str) -> None:
        if self.read_only or name in self._unsaved:
            return
        path = self._verified_path(name)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(OSError):  # only a cache: a run that cannot write it verifies again
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "w") as f:
                f.write(self._binding(secret, digest))
            os.replace(tmp, path)

    def names(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(
            str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file() and not p.name.startswith(".")
        )


def file_in_the_way(path: Path) -> Path | None:
    """The file standing where ``path`` or one of its folders should be (behind ENOTDIR/EEXIST)."""
    return next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid with no passwd entry
        return f"uid {os.getuid()}"


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
        Rotatable("redis-password", "redis/password", lambda: random_string(REDIS_PASSWORD_CHARS), "redis, authelia"),
        Rotatable("session-secret", "authelia/session_secret", random_string, "authelia"),
        Rotatable("reset-password-jwt-secret", "authelia/reset_password_jwt_secret", random_string, "authelia"),
        Rotatable("gateway-session-key", "agentgateway/session_key", lambda: os.urandom(32).hex(), "agentgateway"),
    )
}


# What each file of the store holds, the form it must have, and how a person repairs a damaged one.
# Rotation is offered only where ROTATABLE says it is safe; elsewhere the fix says what a new value
# would break and what to do instead.
_BACKUP = "restore it from your backup of the store"


@dataclass(frozen=True)
class SecretKind:
    pattern: re.Pattern[str]
    what: str  # may name {who}: the client, user or token the file belongs to
    problem: Callable[[str], str | None]
    repair: str  # may name {inventory}, {host}, {who}, {path}

    def who(self, name: str) -> str:
        m = self.pattern.fullmatch(name)
        return m.group("who") if m and "who" in m.groupdict() else ""

    def repair_for(self, store: SecretStore, name: str, path: Path) -> str:
        return self.repair.format(inventory=store.inventory, host=store.host, who=self.who(name), path=path)


def _rotate(name: str) -> str:
    item = ROTATABLE[name]
    return (
        f"rotating it is safe: mcpgate secrets rotate {{inventory}} --host {{host}} {name}, "
        f"then deploy (restarts {item.restarts})"
    )


def _show() -> str:
    return "mcpgate secrets show {inventory} --host {host}"


def _unsafe(why: str, without_backup: str) -> str:
    return f"it is not safe to rotate ({why}): {_BACKUP}; with no backup, {without_backup}"


def _remade(source: str) -> str:
    return f"it is made from {source}: delete it, and the next render or deploy makes it again"


def _alnum(chars: str) -> Callable[[str], str | None]:
    return lambda v: alnum_problem(v, chars)


_WHO = r"(?P<who>[^/]+)"
# (file name pattern, what it holds, its form's check, the repair); the first match counts.
SECRET_KINDS: tuple[SecretKind, ...] = tuple(
    SecretKind(re.compile(pattern), what, problem, repair)
    for pattern, what, problem, repair in (
        (r"redis/password", "the Redis password", _alnum(REDIS_PASSWORD_CHARS), _rotate("redis-password")),
        (r"authelia/session_secret", "Authelia's session secret", _alnum(SECRET_CHARS), _rotate("session-secret")),
        (r"authelia/reset_password_jwt_secret", "Authelia's reset-password JWT secret", _alnum(SECRET_CHARS),
         _rotate("reset-password-jwt-secret")),
        (r"agentgateway/session_key", "agentgateway's session key", hex_key_problem, _rotate("gateway-session-key")),
        (r"authelia/storage_encryption_key", "Authelia's storage encryption key", _alnum(SECRET_CHARS),
         _unsafe("Authelia's database is encrypted with it", "delete it and Authelia's data volume (<stack name>-"
                 "authelia-data), then deploy: users sign in and consent afresh (TOTP seeds and subjects come back "
                 "from the store)")),
        (r"authelia/oidc_hmac_secret", "Authelia's OIDC HMAC secret", _alnum(SECRET_CHARS),
         _unsafe("it signs the authorization codes and refresh tokens clients hold",
                 "delete it and deploy, then connect Claude's connector again")),
        (r"authelia/oidc_jwks_rs256\.pem", "Authelia's token signing key", rsa_private_key_problem,
         _unsafe("every issued token's key id and signature come from it",
                 "delete it and deploy: a new key is made and clients sign in again")),
        (r"authelia/oidc_jwks_rs256\.retiring\.pem", "Authelia's retiring token signing key (a rollover is under "
         "way)", rsa_private_key_problem,
         "tokens signed before the rollover are checked with it: restore it from your backup of the store; with no "
         "backup, finish the rollover: mcpgate secrets rollover {inventory} --host {host} finish, and deploy (clients "
         "whose tokens it signed sign in again)"),
        (rf"clients/{_WHO}\.secret", "the secret of client {who}", _alnum(SECRET_CHARS),
         _unsafe("the client, e.g. Claude's connector, holds it",
                 "replace it: mcpgate secrets rotate {inventory} --host {host} client/{who}, deploy, and paste "
                 f"the new secret that {_show()} prints into the client's settings")),
        (rf"clients/{_WHO}\.pbkdf2", "the digest of client {who}'s secret", pbkdf2_sha512_digest_problem,
         _remade("the client secret")),
        (rf"users/{_WHO}\.password", "the initial password of user {who}", _alnum(USER_PASSWORD_CHARS),
         f"{_BACKUP}; with no backup, give {{who}} a new one: mcpgate secrets rotate {{inventory}} --host {{host}} "
         f"password/{{who}}, deploy, and tell {{who}} the password {_show()} prints"),
        (rf"users/{_WHO}\.argon2id", "the password digest of user {who}", argon2id_digest_problem,
         _remade("the user's password")),
        (rf"users/{_WHO}\.totp", "the TOTP seed of user {who}", lambda v: totp_seed_form_problem(v, TOTP_SEED_CHARS),
         _unsafe("{who}'s authenticator app holds it",
                 "replace it: mcpgate secrets rotate {inventory} --host {host} totp/{who}, deploy, and have "
                 f"{{who}} scan the new otpauth:// URI that {_show()} prints")),
        (rf"users/{_WHO}\.sub", "the subject (sub) of user {who}", canonical_uuid_problem,
         _unsafe("Authelia keeps it and has put it in {who}'s tokens", "write {who}'s openid identifier from "
                 "`authelia storage user identifiers export` on the host into it")),
        (r"backup/restic-password", "the backup repository's password", _alnum(SECRET_CHARS),
         _unsafe("the backup repository is encrypted with it, and a restore opens it with this one",
                 "the snapshots in the repository cannot be read again: delete it, move the old repository "
                 "away, and deploy: the next backup starts a new repository with a new password")),
        (rf"tokens/{_WHO}", "the token {who}", supplied_secret_problem,
         "set it again: mcpgate secrets set {inventory} --host {host} {who} (reads the value from stdin)"),
    )
)  # fmt: skip


def _kind_of(name: str) -> SecretKind | None:
    return next((k for k in SECRET_KINDS if k.pattern.fullmatch(name)), None)


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
        """The key Authelia signs with."""
        return self.store.get_or_create(SIGNING_KEY, _generate_rsa_pem)

    def oidc_key_id(self) -> str:
        """The signing key's id: stable for as long as the key is (see :func:`key_id_for`)."""
        return key_id_for(self.oidc_private_key_pem())

    def oidc_retiring_key_pem(self) -> str | None:
        """The key a signing-key rollover retires (``secrets rollover start``): Authelia no longer signs
        with it, but it stays in both JWK Sets, so tokens it signed still pass until ``finish``."""
        pem = self.store.get(RETIRING_KEY)
        if pem is None or key_id_for(pem) == self.oidc_key_id():
            return None  # an interrupted start left a copy of the signing key: nothing is retiring
        return pem

    def oidc_signing_keys(self) -> list[str]:
        """Every key in Authelia's jwks, the one that signs first (Authelia signs an RS256 client's
        tokens with the first RS256 key: validateOIDCAlgKIDDefault in its configuration validator)."""
        retiring = self.oidc_retiring_key_pem()
        return [self.oidc_private_key_pem(), *([retiring] if retiring else [])]

    def oidc_public_jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWK Set Authelia serves for its keys (same kids, alg and use, the signing key first)."""
        return {"keys": [dict(_public_jwk(pem)) for pem in self.oidc_signing_keys()]}

    def rollover_start(self) -> tuple[str, str]:
        """A new signing key; the current one keeps verifying until :meth:`rollover_finish`. (old, new) kid."""
        if self.oidc_retiring_key_pem() is not None:
            raise SecretsError(
                f"a signing-key rollover is already under way (key {key_id_for(self.store.get(RETIRING_KEY) or '')}"
                " is retiring); finish it first (mcpgate secrets rollover INVENTORY finish), then start another"
            )
        old = self.oidc_private_key_pem()
        # The old key is kept first, so an interruption leaves at worst a copy of the signing key.
        self.store.set(RETIRING_KEY, old)
        self.store.set(SIGNING_KEY, _generate_rsa_pem())
        return key_id_for(old), self.oidc_key_id()

    def rollover_finish(self) -> str:
        """Drop the retiring key: tokens it signed stop passing the gateway. Its kid."""
        retiring = self.store.get(RETIRING_KEY)
        if retiring is None:
            raise SecretsError(
                "no signing-key rollover is under way (start one: mcpgate secrets rollover INVENTORY start)"
            )
        self.store.delete(RETIRING_KEY)
        return key_id_for(retiring)

    def gateway_session_key(self) -> str:
        """AES-256-GCM key (hex) agentgateway encrypts MCP session ids with."""
        return self.store.get_or_create("agentgateway/session_key", lambda: os.urandom(32).hex())

    def redis_password(self) -> str:
        return self.store.get_or_create("redis/password", lambda: random_string(REDIS_PASSWORD_CHARS))

    def backup_password(self) -> str:
        """The restic repository's password: the store and the repository together make a restore."""
        return self.store.get_or_create(BACKUP_PASSWORD_SECRET, random_string)

    # OAuth clients
    def client_secret(self, client_id: str) -> str:
        return self.store.get_or_create(f"clients/{client_id}.secret", random_string)

    def _kept_digest(
        self, name: str, secret: str, make: Callable[[str], str], verify: Callable[[str, str], bool]
    ) -> str:
        """A salted digest of ``secret``, kept in the store so rendering is byte-identical run after
        run; made anew only when it no longer matches the secret.

        Verifying a digest is slow by design (argon2id, pbkdf2: ~0.25 s each); a pair once verified
        is remembered (``SecretStore.verified``) so a run that changes nothing does not pay again."""
        digest = self.store.get(name)
        if digest is not None and self.store.verified(name, secret, digest):
            return digest
        if digest is None or not verify(secret, digest):
            digest = make(secret)
            self.store.set(name, digest)
        self.store.remember_verified(name, secret, digest)
        return digest

    def client_secret_digest(self, client_id: str) -> str:
        """The pbkdf2 digest Authelia gets instead of the secret."""
        return self._kept_digest(
            f"clients/{client_id}.pbkdf2", self.client_secret(client_id), pbkdf2_sha512_digest, pbkdf2_sha512_verify
        )

    # Users
    def user_password(self, user: str) -> str:
        return self.store.get_or_create(f"users/{user}.password", lambda: random_string(USER_PASSWORD_CHARS))

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
        problem = supplied_value_problem(self.stack, name, value)
        if problem:
            raise SecretsError(
                f"damaged secret {self.store._path(f'tokens/{name}')} (the token {name}): {problem}; set it again: "
                f"mcpgate secrets set {inventory} --host {host} {name} (reads the value from stdin)"
            )
        return value.strip()

    def optional_token(self, name: str, host: str, inventory: str = "INVENTORY") -> tuple[str | None, str | None]:
        """A token needed only sometimes (the Tailscale key: only to join): ``(value, None)``,
        ``(None, None)`` when the store has none, or ``(None, problem)`` with the store's own words
        when the stored value is damaged, for the caller to report if it needs the value."""
        try:
            if self.token(name) is None:
                return None, None
            return self.require_token(name, host, inventory), None
        except SecretsError as err:
            return None, str(err)

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
            *(t for t in (self.token(n) for n in [*stack.token_secrets, *stack.backend_secrets]) if t),
            *(pem.splitlines()[1] for pem in self.oidc_signing_keys()),  # a line of each private key
            *([self.backup_password()] if stack.backup else []),
            *(t for t in (self.token(n) for n in (stack.backup.secret_names if stack.backup else [])) if t),
        ]
        return [v.strip() for v in values if len(v.strip()) >= 8]

    def settable_names(self) -> list[str]:
        return self.stack.settable_secrets

    def rotatable(self, name: str) -> Rotatable:
        """What ``secrets rotate NAME`` replaces: one of :data:`ROTATABLE`, a confidential client's
        secret (``client/<id>``: the client must be given the new one) or a person's TOTP seed
        (``totp/<user>``: their authenticator app must scan the new URI)."""
        if name in ROTATABLE:
            return ROTATABLE[name]
        kind, _, who = name.partition("/")
        stack = self.stack
        if kind == "client" and who:
            client = next((c for c in stack.clients if c.id == who), None)
            if client is None:
                known = ", ".join(f"client/{c.id}" for c in stack.clients if not c.public) or "none"
                raise SecretsError(f"the inventory has no client {who!r}; its confidential clients: {known}")
            if client.public:
                raise SecretsError(f"client {who!r} is a public client (PKCE only): it has no secret to rotate")
            return Rotatable(name, f"clients/{who}.secret", random_string, "authelia")
        if kind == "password" and who:
            if not any(u.name == who for u in stack.users):
                known = ", ".join(f"password/{u.name}" for u in stack.users) or "none"
                raise SecretsError(f"the inventory has no user {who!r}; its users' passwords: {known}")
            # The deploy sets the person's password to the new initial one, once (mcpgate.users_db).
            return Rotatable(
                name, f"users/{who}.password", lambda: random_string(USER_PASSWORD_CHARS), "nothing (it is merged)"
            )
        if kind == "totp" and who:
            if not any(u.name == who for u in stack.users):
                known = ", ".join(f"totp/{u.name}" for u in stack.users) or "none"
                raise SecretsError(f"the inventory has no user {who!r}; its users' TOTP seeds: {known}")
            # Imported into Authelia's database by the deploy (an upsert): no restart.
            return Rotatable(name, f"users/{who}.totp", _generate_totp_seed, "nothing (the seed is re-imported)")
        raise SecretsError(
            f"{name!r} cannot be rotated without locking someone out; rotatable: {', '.join(ROTATABLE)}, "
            "client/<client id>, totp/<user>, password/<user> (the signing key: mcpgate secrets rollover)"
        )

    def rotate(self, name: str) -> Rotatable:
        item = self.rotatable(name)
        self.store.set(item.path, item.factory())
        return item
