"""What Authelia's data volume and its CLI say: markers and files at the volume's root, and the
subjects in its database. Pyinfra facts, no operation; :mod:`mcpgate.hostops.authelia_cli` decides
from them.
"""

from __future__ import annotations

import hashlib
from shlex import quote as _q

from ..identity import parse_identifiers_export
from .docker_facts import EngineFact


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


class VolumeFile(EngineFact):
    """A file at the root of a named volume: ``{"sha256": of its bytes, "content": its text}`` (an
    absent file reads as empty). Read without following a symlink, as :class:`VolumeMarker`."""

    def command(self, volume: str, file: str) -> str:
        read = f'dd if="$mp"/{_q(file)} iflag=nofollow status=none 2>/dev/null'
        return (
            f"mp=$(docker volume inspect --format '{{{{.Mountpoint}}}}' {_q(volume)} 2>/dev/null); "
            f"{read} | sha256sum | cut -c1-64; {read}; true"
        )

    def process(self, output: list[str]) -> dict[str, str]:
        return {"sha256": output[0].strip() if output else "", "content": "\n".join(output[1:])}

    def default(self) -> dict[str, str]:
        # No engine yet (a new host's Docker is installed by this deploy): no volume, so no file,
        # which the host will also find when the merged file is moved into place.
        return {"sha256": hashlib.sha256(b"").hexdigest(), "content": ""}


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
