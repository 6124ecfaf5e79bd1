"""The secrets store: generated credentials, kept on the machine that runs pyinfra.

One folder per host (default ``secrets/<host>/``), folders 0700 and files 0600 from the moment
they exist. A secret is generated on first use and never regenerated, so rebuilding a host from
scratch gives it the same credentials; Claude's connector keeps working only if Authelia's database
comes back too (a backup restored, see mcpgate.backup_plan), since its refresh tokens live there.
This module holds the files (reading, writing, modes, locking); what each file holds is the
catalogue's (:mod:`mcpgate.secret_catalogue`), and :class:`mcpgate.secrets.StackSecrets` is how a
stack asks for its values.

Example::

    store = SecretStore.for_host(Path("secrets"), "gateway.lan")
    store.get_or_create("redis/password", make)   # created once, then read back
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import hmac
import os
import re
import secrets as pysecrets
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import SecretsError
from .secret_catalogue import entry_for

FILE_MODE = 0o600
DIR_MODE = 0o700
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*$")


def _warn(message: str) -> None:
    print(f"mcpgate: WARNING: {message}", file=sys.stderr, flush=True)


class SecretStore:
    """Named secrets in one host's folder; each file written once, atomically, 0600.

    Every value read from disk is checked against the form its catalogue row gives
    (:data:`mcpgate.secret_catalogue.CATALOGUE`); a damaged one is refused with its path and the way
    to repair it. A file or folder found with a looser mode is reported on stderr and tightened.

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
        kind = entry_for(name)
        what = kind.what.format(who=kind.who(name)) if kind else "secret"
        repair = (
            kind.repair_for(self.inventory, self.host, name, path)
            if kind
            else f"restore {path} from your backup of the store"
        )
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
        kind = entry_for(name)
        problem = kind.form(value) if kind else None
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
