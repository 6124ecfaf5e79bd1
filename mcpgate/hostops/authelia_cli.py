"""Authelia's state in its data volume: its users database, with the inventory's people merged in
(passwords stay Authelia's); and its database, through its CLI in the running container: users'
TOTP seeds imported from the store and each user's OIDC subject pinned, so a rebuilt host keeps
authenticator apps and token subjects. Markers at the root of the volume say what was applied last."""

from __future__ import annotations

import hashlib
import json
import posixpath
from shlex import quote as _q
from typing import Any

from pyinfra import host
from pyinfra.api import OperationError, operation

from ..errors import MCPGateError
from ..layout import AUTHELIA_USERS, PASSWORDS_MARKER, STATE_DIR, SUBJECTS_MARKER, TOTP_MARKER
from ..users_db import merge_users
from . import snapshot
from .authelia_facts import AutheliaIdentifiers, VolumeFile, VolumeMarker
from .docker_facts import volume_mountpoint
from .messages import noop_when_unchanged, say
from .shell import shell_command
from .snapshot import read_fact
from .upload import finish_private_upload, prepare_private_uploads, private_upload, staging_dir


@operation()
@snapshot.changes_host("marker", "volfile")
@noop_when_unchanged("Authelia's users database in {volume} lists the inventory's people as it says")
def authelia_users(volume: str, owner: str, base_dir: str, users: dict[str, dict[str, Any]]):
    """
    Merge the inventory's people into Authelia's users database at the root of its data volume
    (``mcpgate.users_db``): add the new (with their initial password's digest), remove the gone, set
    display names, e-mails and groups. A password a person changed in the portal is never touched,
    unless the operator reset it (a new initial password in the store, which a marker beside the
    file tells from the one last applied).

    The file is written only when its meaning differs, staged privately and renamed into place; the
    rename is refused when the file changed since it was read (a person changed their password
    during the deploy): the next run merges again. Authelia watches the file and reloads it.

    **Example:**

    .. code:: python

        authelia_users(
            name="Authelia's users",
            volume="mcpgate-authelia-data",
            owner="10091:10091",
            base_dir="/opt/mcpgate",
            users={"alice": {"displayname": "Alice", "email": "a@example.org", "groups": [],
                             "password": "$argon2id$..."}},
        )
    """
    seen = read_fact(
        VolumeFile,
        f"volfile:{volume}:{AUTHELIA_USERS}",
        lambda q: (volume, AUTHELIA_USERS) in q.volume_files,
        volume=volume,
        file=AUTHELIA_USERS,
    )
    applied = _marker(volume, PASSWORDS_MARKER)
    try:
        merged = merge_users(seen["content"], users, applied, where=f"{AUTHELIA_USERS} in volume {volume}")
    except MCPGateError as err:
        raise OperationError(str(err)) from None
    if merged.content is not None:
        for verb, names in (
            ("adds", merged.added), ("removes", merged.removed), ("updates", merged.updated),
            ("resets the password of", merged.reset),
        ):  # fmt: skip
            if names:
                say(f"Authelia's users database: {verb} {', '.join(names)}")
        staging = staging_dir(base_dir)
        staged = posixpath.join(base_dir, STATE_DIR, f"authelia-{AUTHELIA_USERS}.new")
        yield f"install -d -m 700 {_q(posixpath.dirname(staged))}"
        yield prepare_private_uploads(staging, [staged])
        yield private_upload(merged.content, staged, staging)
        yield finish_private_upload(staging, staged)
        yield _place_users_file(volume, staged, owner, seen["sha256"])
    # After the file: interrupted in between, the next run applies a reset again (never misses one).
    if merged.applied != applied:
        yield _write_marker(volume, PASSWORDS_MARKER, merged.applied, owner)


def _place_users_file(volume: str, staged: str, owner: str, seen_sha256: str) -> str:
    """Move the merged file into the volume, as :func:`_write_marker` does, unless the file there is
    no longer the one the merge read."""
    target = f'"$mp"/{_q(AUTHELIA_USERS)}'
    near = f'"$(dirname "$mp")"/{_q(AUTHELIA_USERS)}.new'
    changed = (
        f"{AUTHELIA_USERS} in volume {volume} changed while the deploy ran (a person changed their password?); "
        "nothing was written: run the deploy again"
    )
    return (
        f"mp={volume_mountpoint(volume)} && "
        f"now=$(dd if={target} iflag=nofollow status=none 2>/dev/null | sha256sum | cut -c1-64) && "
        f'{{ [ "$now" = {_q(seen_sha256)} ] || {{ rm -f {_q(staged)}; echo {_q(changed)} >&2; exit 1; }}; }} && '
        f"rm -f {near} && (umask 077 && cp {_q(staged)} {near}) && rm -f {_q(staged)} && "
        f"chown {owner} {near} && chmod 600 {near} && mv -fT {near} {target}"
    )


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
