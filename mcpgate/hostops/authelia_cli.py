"""Authelia's database, through its CLI in the running container: users' TOTP seeds imported from the
store and each user's OIDC subject pinned, so a rebuilt host keeps authenticator apps and token
subjects. Markers at the root of Authelia's data volume say what was applied last."""

from __future__ import annotations

import hashlib
import json
from shlex import quote as _q

from pyinfra import host
from pyinfra.api import operation

from ..identity import parse_identifiers_export
from ..layout import SUBJECTS_MARKER, TOTP_MARKER
from . import snapshot
from .engine import EngineFact, volume_mountpoint
from .messages import noop_when_unchanged
from .snapshot import read_fact
from .upload import shell_command


class VolumeMarker(EngineFact):
    """The content of a marker file at the root of a named volume ('' when absent, or not a file).

    The volume's root belongs to the service's uid: a symlink put there is not followed (``dd``
    with ``nofollow``), so the deploy never reads a host file through it.
    """

    def command(self, volume: str, marker: str) -> str:
        return (
            f"mp=$(docker volume inspect --format '{{{{.Mountpoint}}}}' {_q(volume)} 2>/dev/null) "
            f'&& dd if="$mp"/{_q(marker)} iflag=nofollow status=none 2>/dev/null; true'
        )

    def process(self, output: list[str]) -> str:
        return "\n".join(output).strip()

    def default(self) -> str:
        return ""


class AutheliaIdentifiers(EngineFact):
    """user -> OIDC subject as Authelia's database has it (empty when Authelia is not running)."""

    def command(self, container: str, config: str) -> str:
        c, tmp = _q(container), "/tmp/mcpgate-identifiers.yml"
        return (
            f"if docker exec {c} authelia storage user identifiers export --config {_q(config)} "
            f"--file {tmp} >/dev/null 2>&1; then docker exec {c} cat {tmp}; docker exec {c} rm -f {tmp}; fi; true"
        )

    def process(self, output: list[str]) -> dict[str, str]:
        return parse_identifiers_export("\n".join(output))

    def default(self) -> dict[str, str]:
        return {}


def _marker(volume: str, marker: str) -> str:
    """:class:`VolumeMarker`, from the deploy's snapshot where it covers it."""
    covered = lambda q: (volume, marker) in q.markers  # noqa: E731
    return read_fact(VolumeMarker, f"marker:{volume}:{marker}", covered, volume=volume, marker=marker)


@operation()
@snapshot.changes_host("marker")
@noop_when_unchanged("the users' TOTP seeds and subjects in {container} are the store's")
def authelia_identity(
    container: str,
    volume: str,
    owner: str,
    config: str,
    totp_file: str,
    totp_digest: str,
    subjects: dict[str, str],
):
    """
    Seed each user's TOTP from the store (file import, never on a command line) and pin each
    user's OIDC ``sub``, so a rebuilt host keeps authenticator apps and token subjects.

    The TOTP import runs when the marker in Authelia's data volume does not name the current
    import file: after the volume was created, or when a user or seed changed. Subjects are read
    from Authelia (slow: an exec of its CLI) only when a second marker does not name the current
    set of them.

    **Example:**

    .. code:: python

        authelia_identity(
            name="users' TOTP seeds and OIDC subjects",
            container="mcpgate-authelia",
            volume="mcpgate-authelia-data",
            owner="10091:10091",
            config="/config/configuration.yml",
            totp_file="/identity/totp.yml",
            totp_digest="9f2c...",
            subjects={"alice": "6c1b..."},
        )
    """
    if _marker(volume, TOTP_MARKER) != totp_digest:
        yield shell_command("docker", "exec", container, "authelia", "storage", "user", "totp", "import",
                            "--config", config, totp_file)  # fmt: skip
        yield _write_marker(volume, TOTP_MARKER, totp_digest, owner)
    # Asking Authelia for its identifiers takes a second: the marker says they were pinned already.
    pinned = hashlib.sha256(json.dumps(subjects, sort_keys=True).encode()).hexdigest()
    if _marker(volume, SUBJECTS_MARKER) == pinned:
        return
    have = host.get_fact(AutheliaIdentifiers, container=container, config=config)
    for user, subject in subjects.items():
        if user not in have:
            yield shell_command("docker", "exec", container, "authelia", "storage", "user", "identifiers", "add",
                                user, "--identifier", subject, "--service", "openid", "--config", config)  # fmt: skip
        elif have[user] != subject:
            raise ValueError(
                f"Authelia's database gives {user} the subject {have[user]}, not the stored {subject}; "
                "tokens would change owner. Remove the authelia data volume to re-seed, or put that "
                "subject into the secrets store (users/<name>.sub)"
            )
    yield _write_marker(volume, SUBJECTS_MARKER, pinned, owner)


def _write_marker(volume: str, marker: str, content: str, owner: str) -> str:
    """Root writes the marker into a folder the service's uid owns, so never through a path there:
    the file is made in the volume's own root-only folder (the parent of its mountpoint, on the same
    file system) and renamed into place, which replaces whatever entry the name had (a symlink
    included) without following it."""
    staged = f'"$(dirname "$mp")"/{_q(marker)}.new'
    return (
        f"mp={volume_mountpoint(volume)} && (umask 077 && printf %s {_q(content)} > {staged}) "
        f'&& chown {owner} {staged} && chmod 600 {staged} && mv -fT {staged} "$mp"/{_q(marker)}'
    )
