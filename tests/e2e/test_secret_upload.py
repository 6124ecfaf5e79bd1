"""The Tailscale auth key on its way to the host is never readable by anyone but root (issue 11).

The real ``tailscale_up`` operation runs over the real SSH target: as root, and as the harness's
non-root user through sudo; through the harness's sshd (umask 077), and through the same sshd run by
the test under umask 022, as a stock sshd started by systemd runs. Meanwhile an inotify watcher on
the target (this machine) records every file that appears or changes in /tmp, /var/tmp, /run,
/dev/shm, the SSH user's home and the test's own folder (the stack's base folder and its upload
staging included), with its mode each time it is seen. Every path that ever holds the key must have
been 0600 from its creation on: a file readable by others even while empty can be opened then and
read once the key is in it.

tailscaled cannot join a tailnet here, so ``tailscale`` is a stand-in that answers ``status`` with a
logged-out node and, for ``up``, records its arguments and the mode, owner and sha256 of the file it
was given (never the key itself).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import pwd
import secrets
import select
import stat
import struct
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.e2e.sshops import HARNESS, deploy_user, run_operations, sshd_with_umask, target_folder

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x2, 0x4, 0x8, 0x80, 0x100
IN_Q_OVERFLOW, IN_ISDIR = 0x4000, 0x40000000
MASK = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE
EVENT = struct.Struct("iIII")


class SecretWatcher:
    """Every regular file created or changed in the watched folders (and, below ``tree``, in every
    folder created later): each mode it was seen with since its creation, and whether it held
    ``secret``."""

    def __init__(self, secret: bytes, folders: list[Path], tree: Path) -> None:
        self.secret = secret
        self.tree = str(tree)
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        self.folders: dict[int, str] = {}
        self.seen: dict[str, list[tuple[int, int, bool]]] = {}  # path -> [(mode, uid, held the secret)]
        self.held: dict[str, list[tuple[int, int]]] = {}  # path -> [(mode, uid)] whenever it held the secret
        self.overflow = False
        for folder in folders:
            self._watch(str(folder))
        self._watch_new_tree(self.tree)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _watch(self, folder: str) -> None:
        wd = self.libc.inotify_add_watch(self.fd, folder.encode(), MASK)
        if wd >= 0:
            self.folders[wd] = folder

    def _watch_new_tree(self, folder: str) -> None:
        """Watch a folder just created, and what was made in it before the watch was in place."""
        self._watch(folder)
        for root, dirs, files in os.walk(folder):
            for d in dirs:
                self._watch(os.path.join(root, d))
            for f in files:
                self._look(os.path.join(root, f), created=True)

    def _look(self, path: str, created: bool) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISREG(st.st_mode):
            return
        held = False
        if st.st_size == len(self.secret):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                return
            try:
                held = os.read(fd, len(self.secret) + 1) == self.secret
            finally:
                os.close(fd)
        history = self.seen.setdefault(path, [])
        if created:
            history.clear()
        mode = stat.S_IMODE(st.st_mode)
        history.append((mode, st.st_uid, held))
        if held:
            self.held.setdefault(path, [])
            # Every mode this file had since it was created counts: it could have been opened then.
            self.held[path].extend((m, u) for m, u, _ in history)

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                continue
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = EVENT.unpack_from(data, offset)
                name = data[offset + EVENT.size : offset + EVENT.size + length].rstrip(b"\0").decode()
                offset += EVENT.size + length
                if mask & IN_Q_OVERFLOW:
                    self.overflow = True
                    continue
                folder = self.folders.get(wd)
                if folder is None or not name:
                    continue
                path = os.path.join(folder, name)
                if mask & IN_ISDIR:
                    if mask & (IN_CREATE | IN_MOVED_TO) and path.startswith(self.tree + "/"):
                        self._watch_new_tree(path)
                    continue
                self._look(path, created=bool(mask & IN_CREATE))

    def __enter__(self) -> SecretWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self.fd)


FAKE_TAILSCALE = """#!/bin/sh
# Stand-in for tailscale: a logged-out node; `up` records its arguments and the key file's mode,
# owner and sha256 (never the key).
case "$1" in
  status) echo '{"BackendState": "NeedsLogin", "Self": {"DNSName": ""}}' ;;
  up)
    printf '%s\\n' "$@" > @LOG@/argv
    for a in "$@"; do
      case "$a" in --auth-key=file:*)
        f=${a#--auth-key=file:}
        stat -c '%a %U' "$f" > @LOG@/keyfile
        sha256sum < "$f" | cut -d' ' -f1 >> @LOG@/keyfile ;;
      esac
    done ;;
  *) exit 0 ;;
esac
"""

OPERATIONS = """
import os
from mcpgate.hostops.tailnet import tailscale_up

tailscale_up(
    name="tailscale up (once)",
    auth_key=os.environ["MCPGATE_TEST_TS_KEY"],
    hostname="gateway.example-tailnet.ts.net",
    base_dir=os.environ["MCPGATE_TEST_BASE_DIR"],
    _env={"PATH": os.environ["MCPGATE_TEST_PATH"]},
)
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Path]:
    with target_folder("tskey") as root:
        yield root


@pytest.mark.parametrize("umask", ["022", "077"])
@pytest.mark.parametrize("user", ["root", "deploy-user"])
def test_the_auth_key_is_never_readable_by_others_and_never_on_a_command_line(
    workspace: Path, tmp_path: Path, user: str, umask: str
) -> None:
    ssh_user = "root" if user == "root" else deploy_user()
    key = f"tskey-auth-k{secrets.token_hex(8)}-{secrets.token_urlsafe(32)}"
    base_dir = workspace / "stack"
    bin_dir, log = workspace / "bin", workspace / "log"
    bin_dir.mkdir()
    log.mkdir()
    fake = bin_dir / "tailscale"
    fake.write_text(FAKE_TAILSCALE.replace("@LOG@", str(log)))
    fake.chmod(0o755)
    home = Path(pwd.getpwnam(ssh_user).pw_dir)
    watched = [Path(p) for p in ("/tmp", "/var/tmp", "/run", "/dev/shm", home) if Path(p).is_dir()]

    # umask 077 is the harness's own sshd; 022 the same sshd run by this test as systemd would.
    with ExitStack() as stack:
        target = HARNESS if umask == "077" else stack.enter_context(sshd_with_umask(workspace / "sshd", umask))
        watcher = stack.enter_context(SecretWatcher(key.encode(), watched, workspace))
        result = run_operations(
            tmp_path,
            OPERATIONS,
            user=ssh_user,
            target=target,
            verbose=2,  # pyinfra prints every command it runs
            env={
                "MCPGATE_TEST_TS_KEY": key,
                "MCPGATE_TEST_BASE_DIR": str(base_dir),
                "MCPGATE_TEST_PATH": f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            },
        )
    assert result.returncode == 0, result.output[-4000:]
    assert result.changed_ops == ["tailscale up (once)"], result.output[-4000:]
    assert not watcher.overflow, "the watcher lost events; the run proves nothing"

    # The stand-in read the key from a root-only file, and only its path was on the command line.
    argv = (log / "argv").read_text().splitlines()
    key_args = [a for a in argv if a.startswith("--auth-key")]
    assert len(key_args) == 1 and key_args[0].startswith("--auth-key=file:/"), argv
    mode_owner, digest = (log / "keyfile").read_text().splitlines()
    assert mode_owner == "600 root"
    assert digest == hashlib.sha256(key.encode()).hexdigest()
    assert key not in "\n".join(argv)
    assert key not in result.output  # every command pyinfra ran, with -vv
    assert key_args[0] in result.output

    # Every path that held the key, and each mode it had from its creation on.
    assert watcher.held, "the watcher never saw the key (it was not uploaded where watched?)"
    loose = {path: sorted(set(modes)) for path, modes in watcher.held.items() if any(m != 0o600 for m, _ in modes)}
    assert not loose, "the key was in files readable by others: " + ", ".join(
        f"{path} (modes {', '.join(f'{m:04o}' for m, _ in modes)})" for path, modes in loose.items()
    )
    # With sudo it was staged in the stack's private upload folder (and the watcher saw it there).
    if ssh_user != "root":
        assert any("/.upload/" in path for path in watcher.held), sorted(watcher.held)
    # Only root and the SSH user ever owned it.
    owners = {uid for modes in watcher.held.values() for _, uid in modes}
    assert owners <= {0, pwd.getpwnam(ssh_user).pw_uid}, owners
    # Nothing is left behind: not the key file, not the staged copy.
    for path in watcher.held:
        assert not Path(path).exists(), f"{path} is still there"
