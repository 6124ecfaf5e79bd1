"""The stack's own settings blocks: images, Docker, Tailscale, service uids, session, rate limits, backups."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, PlainValidator, model_validator

from .addresses import AptSource, LoginServer
from .durations import Duration
from .fields import SecretName, ServiceUidGid, split_uid
from .image_refs import PinnedImage
from .mount_paths import host_path_danger, normalise
from .pins import PROVEN_IMAGES, AutheliaImage
from .strict import Strict, raise_all


def settings_example(field: str, value: Any) -> str:
    """The dict a settings block should be, for someone who wrote a plain value."""
    if field == "tailscale" and isinstance(value, bool):
        return f'{{"enabled": {value}}}'
    if field == "docker" and isinstance(value, str):
        return f'{{"install": "{value}"}}'
    if field == "backup" and isinstance(value, str) and value.startswith(("/", "sftp:", "s3:")):
        return f'{{"repository": "{value}"}}'
    return {
        "tailscale": '{"enabled": False}',
        "docker": '{"install": "existing"}',
        "images": '{"redis": "redis:7.4.2-alpine"}',
        "uids": '{"redis": "10379:10379"}',
        "session": '{"remember_me": "1 day"}',
        "limits": '{"memory": "256m", "cpus": 0.5, "pids": 128}',
        "backup": '{"repository": "/mnt/backup/mcpgate"}',
        "keep": '{"daily": 7, "weekly": 4, "monthly": 6}',
        "audit": '{"tool_arguments": False}',
    }[field]


class Images(Strict):
    """Pinned images for the stack's own services: by default the versions proven here (pins.py);
    another pin is allowed, and `mcpgate check` warns that it is unproven."""

    # redis, authelia, agentgateway, ingress: each an image pinned to a version (name:tag or a digest).
    redis: PinnedImage = PROVEN_IMAGES["redis"]
    authelia: AutheliaImage = PROVEN_IMAGES["authelia"]
    agentgateway: PinnedImage = PROVEN_IMAGES["agentgateway"]
    ingress: PinnedImage = PROVEN_IMAGES["ingress"]


class Docker(Strict):
    """Where the Docker engine comes from."""

    # docker-ce: Docker's apt repository; debian: the distribution's docker.io;
    # existing: a working engine is already there and is left alone.
    install: Literal["docker-ce", "debian", "existing"] = "docker-ce"


class Tailscale(Strict):
    """Tailscale node and Funnel. Off for the local demo and CI."""

    # On: the deploy installs Tailscale, joins the tailnet and serves the ingress through Funnel.
    enabled: bool = True
    # The store's secret holding the auth key the node joins with, once (mcpgate secrets set ...).
    auth_key_secret: SecretName = "tailscale-auth-key"
    # False after True turns mcpgate's Funnel off (removes its mount / of https://<hostname>:443).
    funnel: bool = True
    # The control server the node joins (tailscale up --login-server): None is Tailscale's; e.g. a
    # headscale's URL. A control server without Funnel (headscale) needs funnel = False.
    login_server: LoginServer | None = None
    # Where the tailscale package comes from: None is Tailscale's own apt repository (signed with
    # their key, downloaded by the deploy); otherwise one apt source line, e.g. a mirror or a local
    # repository, which carries its own trust (signed-by=... or trusted=yes).
    apt_source: AptSource | None = None


class ServiceUids(Strict):
    """uid:gid each stack service runs as; config and secret files on the host are owned by it."""

    # redis, authelia, agentgateway, ingress: uid:gid, a different uid each.
    redis: ServiceUidGid = "10379:10379"
    authelia: ServiceUidGid = "10091:10091"
    agentgateway: ServiceUidGid = "10300:10300"
    ingress: ServiceUidGid = "10080:10080"

    @model_validator(mode="after")
    def _one_uid_each(self) -> ServiceUids:
        # Each service's secrets are 0600 files owned by its uid: a shared uid lets one read the other's.
        raise_all(
            [
                f"{' and '.join(f'uids.{f}' for f in fields)} are both uid {uid}: each service's secret "
                "files are readable by its uid alone, so a shared uid lets one read the other's "
                "(e.g. Authelia's signing key); give each service its own uid"
                for uid, fields in self.by_uid().items()
                if len(fields) > 1
            ]
        )
        return self

    def by_uid(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for field in ServiceUids.model_fields:
            out.setdefault(split_uid(getattr(self, field))[0], []).append(field)
        return out


class Session(Strict):
    """Authelia's sign-in session: the cookie that keeps a browser signed in on the sign-in pages."""

    # How long "remember me" keeps a browser signed in (Authelia's own default is a month). People
    # sign in here only to connect a client or when a refresh token runs out, so a long cookie buys
    # little, while anyone at that browser could approve a new client without password and TOTP for
    # as long as it lasts. A day covers an afternoon of connecting clients.
    remember_me: Duration = "1 day"


def _disk_size(value: Any) -> str:
    text = str(value).strip() if isinstance(value, str) else ""
    match = re.fullmatch(r"([0-9]+)([KMGT])", text)
    if not match or int(match[1]) * 1024 ** "KMGT".index(match[2]) < 64 * 1024:
        raise ValueError(
            f"max_disk {value!r} is no size for the journal: write a whole number and K, M, G or T (base 1024) "
            'as journald reads it, at least "64M", e.g. "2G"'
        )
    return text


# journald's SystemMaxUse= (a size in K, M, G or T).
DiskSize = Annotated[str, PlainValidator(_disk_size)]


class Audit(Strict):
    """What the gateway's access log records besides who called which tool, through which client,
    and with what outcome (README: "The audit trail")."""

    # The arguments of each tool call (a note's whole text, a search query): off, because they are
    # what people wrote, and the log is kept longer and read more widely than the notes' own folder.
    tool_arguments: bool = False
    # Where the containers' logs (the trail among them) are kept. "journald": the host's systemd
    # journal, which outlives a container's recreation and the host's reboots, for `keep` and in at
    # most `max_disk` (these are the whole journal's limits: journald has one for all its logs).
    # "docker": Docker's own files, 3 x 10 MiB per container, gone with the container; for a host
    # without systemd (the local demo, the tests' machine).
    logs: Literal["journald", "docker"] = "journald"
    keep: Duration = "90 days"
    max_disk: DiskSize = "2G"

    @model_validator(mode="after")
    def _limits_are_journald_s(self) -> Audit:
        extra = [f for f in ("keep", "max_disk") if self._explicit(f)]
        if extra and self.logs != "journald":
            raise ValueError(
                f"{' and '.join(extra)} {'is' if len(extra) == 1 else 'are'} the journal's limits, and logs is "
                f"{self.logs!r} (Docker keeps 3 x 10 MiB per container, until the container is recreated); "
                'set logs to "journald" or remove them'
            )
        return self


class RateLimits(Strict):
    """How much one client may ask for. The ingress hands Authelia each Funnel client's own address
    (trusting X-Forwarded-For only from tailscaled's side of the published port), so these count
    per client address, except the MCP bucket."""

    # Authelia's regulation, per client address (not per user: one address could otherwise keep a
    # user locked out): this many failed sign-ins within sign_in_window ban the address for
    # sign_in_ban. TOTP codes have Authelia's own per-address limit besides.
    sign_in_failures: int = Field(default=5, ge=1, le=100)
    sign_in_window: Duration = "10 minutes"
    sign_in_ban: Duration = "15 minutes"
    # agentgateway's token bucket for /mcp. agentgateway 1.4 keeps local buckets per route, not per
    # client, so this caps all clients together: a flood cannot reach the backends.
    mcp_requests_per_second: int = Field(default=20, ge=1, le=100000)
    # How many requests above that rate the bucket lets through at once.
    mcp_burst: int = Field(default=200, ge=1, le=1000000)


# --- backups -------------------------------------------------------------------------------------

_REPOSITORY_FORMS = (
    'a folder on the host (e.g. "/mnt/backup/mcpgate" on a USB disk), "sftp:user@host:/path" or '
    '"s3:https://s3.example.com/bucket/mcpgate"'
)
# Rendered into a shell-quoted environment file; none of these belongs in a repository location.
_REPOSITORY_BAD_CHARS = set("'\"\\`$;&|<>(){}*?![]#") | {"\n", "\r", "\t", " "}
_SFTP = re.compile(r"^sftp:(//[^/\s]+/.+|[^/:\s]+:.+)$")
_S3 = re.compile(r"^s3:(https?://)?[a-zA-Z0-9.-]+(:[0-9]+)?/[a-z0-9][a-z0-9.-]{1,62}(/.*)?$")


def _repository(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"repository {value!r} is no restic repository: give {_REPOSITORY_FORMS}")
    text = value.strip()
    bad = sorted(set(text) & _REPOSITORY_BAD_CHARS)
    if bad:
        raise ValueError(f"repository {text!r} contains {' '.join(repr(c) for c in bad)}: give {_REPOSITORY_FORMS}")
    if text.startswith("/"):
        path = normalise(text)
        danger = "is the root of the filesystem" if path == "/" else host_path_danger(path)
        if danger or path.startswith(("/tmp/", "/var/tmp/", "/proc/", "/sys/")) or path in ("/tmp", "/var/tmp"):
            raise ValueError(
                f"repository {text!r} {danger or 'is emptied by the system'}: put the repository on a disk of its "
                'own, e.g. "/mnt/backup/mcpgate"'
            )
        return path
    if text.startswith("sftp:"):
        if not _SFTP.match(text):
            raise ValueError(f'repository {text!r}: write an SFTP repository as "sftp:user@host:/path"')
        return text
    if text.startswith("s3:"):
        if not _S3.match(text):
            raise ValueError(
                f'repository {text!r}: write an S3 repository as "s3:https://<endpoint>/<bucket>[/<folder>]" '
                '(e.g. "s3:https://s3.eu-central-1.amazonaws.com/my-bucket/mcpgate")'
            )
        return text
    raise ValueError(f"repository {text!r} is no repository mcpgate sets up: give {_REPOSITORY_FORMS}")


# A restic repository: a folder on the host, sftp:... or s3:...
BackupRepository = Annotated[str, PlainValidator(_repository)]

# systemd's OnCalendar= (systemd.time(7)): "daily", "*-*-* 03:00:00", "Mon..Fri 02:30"... The host's
# systemd parses it when the timer starts; here only what cannot be one is refused.
_CALENDAR = re.compile(r"^[A-Za-z0-9*:,./~+ -]+$")


def _calendar(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or not _CALENDAR.match(value.strip()):
        raise ValueError(
            f"schedule {value!r} is no systemd calendar event: write it as OnCalendar= takes it, e.g. "
            '"daily", "*-*-* 03:00:00" or "Mon..Sun 02:30" (systemd.time(7); check with systemd-analyze calendar)'
        )
    return value.strip()


CalendarEvent = Annotated[str, PlainValidator(_calendar)]


class Retention(Strict):
    """How many snapshots restic keeps (``restic forget --keep-*``): the newest of each of the last
    N days, weeks, months and years; every other snapshot of this stack is removed after a backup."""

    # daily, weekly, monthly, yearly: how many of each kind restic keeps (0: none of that kind).
    daily: int = Field(default=7, ge=0, le=3660)
    weekly: int = Field(default=4, ge=0, le=520)
    monthly: int = Field(default=6, ge=0, le=1200)
    yearly: int = Field(default=0, ge=0, le=100)

    @model_validator(mode="after")
    def _keeps_something(self) -> Retention:
        if not (self.daily or self.weekly or self.monthly or self.yearly):
            raise ValueError(
                "keeps no snapshot at all: after each backup every snapshot would be removed; "
                'keep at least one, e.g. {"daily": 7, "weekly": 4, "monthly": 6}'
            )
        return self


def _keep_is_a_dict(value: Any) -> Any:
    if not isinstance(value, dict | BaseModel):
        raise ValueError(f"keep is a dict of settings, not {value!r}: write {settings_example('keep', value)}")
    return value


class Backup(Strict):
    """Backups of the host's state with restic (see the README's "Backups and restore")."""

    # Where the snapshots go: a folder on the host (a USB disk), sftp:user@host:/path, or s3:...
    repository: BackupRepository
    # When the timer backs up (OnCalendar=), each run delayed by up to randomized_delay.
    schedule: CalendarEvent = "daily"
    randomized_delay: Duration = "1h"
    keep: Annotated[Retention, BeforeValidator(_keep_is_a_dict)] = Field(default_factory=Retention)
    # The host checks fail when the newest snapshot is older than this.
    max_age: Duration = "2 days"
    # For an s3: repository: the store's secrets holding the access key id (s3_access_key_secret)
    # and the secret key (s3_secret_key_secret).
    s3_access_key_secret: SecretName = "backup-s3-access-key-id"
    s3_secret_key_secret: SecretName = "backup-s3-secret-access-key"

    @model_validator(mode="after")
    def _s3_only(self) -> Backup:
        extra = [f for f in ("s3_access_key_secret", "s3_secret_key_secret") if self._explicit(f)]
        if extra and self.kind != "s3":
            verb, it = ("applies", "it") if len(extra) == 1 else ("apply", "them")
            raise ValueError(f"{' and '.join(extra)} {verb} only to an s3: repository; remove {it}")
        return self

    @property
    def kind(self) -> Literal["local", "sftp", "s3"]:
        return "local" if self.repository.startswith("/") else "sftp" if self.repository.startswith("sftp:") else "s3"

    @property
    def secret_names(self) -> list[str]:
        """The store's secrets a person sets for this repository (the S3 keys)."""
        return [self.s3_access_key_secret, self.s3_secret_key_secret] if self.kind == "s3" else []
