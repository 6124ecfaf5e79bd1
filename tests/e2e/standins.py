"""What the deploy relies on in each official image, and how the local stand-in mirrors it.

The test machines cannot pull an image, so the suite runs stand-ins built from Debian packages
(tests/harness). A stand-in that lacks a property of its official image hides a deploy that breaks on
a user's host (the official caddy's file capability once did), so every property is listed here once,
with the upstream file it comes from; ``tests/e2e/test_standins.py`` asserts each on the stand-in, and
``tests/harness/README.md`` carries the same table (a test keeps them equal).
"""

from __future__ import annotations

from dataclasses import dataclass

from mcpgate.model import AUTHELIA_VERSION

# Upstream sources, read at the pinned tags.
CADDY_SRC = "caddyserver/caddy-docker@645721b 2.8/alpine/Dockerfile"
REDIS_SRC = "redis/docker-library-redis 7.4/alpine/Dockerfile (7.4.1 e5650da / 7.4.3 0642e86)"
REDIS_ENTRY_SRC = "redis/docker-library-redis 7.4/alpine/docker-entrypoint.sh"
AUTHELIA_SRC = f"authelia/authelia@v{AUTHELIA_VERSION} Dockerfile"
AUTHELIA_ENTRY_SRC = f"authelia/authelia@v{AUTHELIA_VERSION} entrypoint.sh"
AUTHELIA_HC_SRC = f"authelia/authelia@v{AUTHELIA_VERSION} healthcheck.sh, internal/middlewares/startup.go:128-160"
AUTHELIA_BASE_SRC = "authelia/baseimage@494f0cd Dockerfile:12-21"
GATEWAY_SRC = "agentgateway/agentgateway@v1.4.1 Dockerfile"
PYTHON_SRC = "docker-library/python@f2c5d1b 3.12/slim-bookworm/Dockerfile"


@dataclass(frozen=True)
class Property:
    """One fact about an official image. ``check`` is what the test asserts on the stand-in:

    - ``("entrypoint", [...])``, ``("cmd", [...])``, ``("user", "")``, ``("workdir", "/data")``,
      ``("env", "NAME=value")``, ``("volume", "/data")``: the image's config;
    - ``("file", path, mode)``: a regular file (or a symlink to one) with that mode (None: any);
    - ``("dir", path, "uid:gid")``: a folder owned so;
    - ``("absent", path)``: no such path (a tool the image lacks);
    - ``("fcap", path, "cap_net_bind_service=+ep")``: the file capability;
    - ``("passwd", "redis:999:1000")``: a user with that uid and gid.
    """

    image: str  # official reference, as inventory/home.py pins it
    what: str
    upstream: str
    check: tuple


CADDY = "caddy:2.8.4-alpine"
REDIS = "redis:7.4.2-alpine"
AUTHELIA = f"authelia/authelia:{AUTHELIA_VERSION}"
GATEWAY = "cr.agentgateway.dev/agentgateway:v1.4.1"
PYTHON = "python:3.12.14-slim-bookworm"

PROPERTIES: tuple[Property, ...] = (
    # The ingress runs `caddy run --config /etc/caddy/Caddyfile` as uid 10080, --cap-drop ALL, read-only root.
    Property(CADDY, "/usr/bin/caddy carries cap_net_bind_service=+ep", f"{CADDY_SRC}:37",
             ("fcap", "/usr/bin/caddy", "cap_net_bind_service=+ep")),
    Property(CADDY, "wget for the healthcheck (busybox)", f"{CADDY_SRC}:15-16", ("file", "/usr/bin/wget", None)),
    Property(CADDY, "no curl", f"{CADDY_SRC}:3-6", ("absent", "/usr/bin/curl")),
    Property(CADDY, "a /bin/sh for CMD-SHELL healthchecks", "alpine base (busybox)", ("file", "/bin/sh", None)),
    Property(CADDY, "XDG_CONFIG_HOME=/config (root-owned)", f"{CADDY_SRC}:42", ("env", "XDG_CONFIG_HOME=/config")),
    Property(CADDY, "XDG_DATA_HOME=/data (root-owned)", f"{CADDY_SRC}:43", ("env", "XDG_DATA_HOME=/data")),
    Property(CADDY, "/config owned by root", f"{CADDY_SRC}:8-14", ("dir", "/config", "0:0")),
    Property(CADDY, "/etc/caddy exists", f"{CADDY_SRC}:8-14", ("dir", "/etc/caddy", "0:0")),
    Property(CADDY, "runs as root unless told", f"{CADDY_SRC} (no USER)", ("user", "")),
    Property(CADDY, "no ENTRYPOINT", f"{CADDY_SRC} (none)", ("entrypoint", None)),
    Property(CADDY, "CMD caddy run --config /etc/caddy/Caddyfile --adapter caddyfile", f"{CADDY_SRC}:61",
             ("cmd", ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"])),
    Property(CADDY, "WORKDIR /srv", f"{CADDY_SRC}:59", ("workdir", "/srv")),
    # Redis runs `redis-server /config/redis.conf` as uid 10379 with the entrypoint bypassed.
    Property(REDIS, "redis-server in /usr/local/bin", f"{REDIS_SRC}:106-117",
             ("file", "/usr/local/bin/redis-server", None)),
    Property(REDIS, "redis-cli in /usr/local/bin (healthcheck)", f"{REDIS_SRC}:106-117",
             ("file", "/usr/local/bin/redis-cli", None)),
    Property(REDIS, "/bin/sh and grep (healthcheck)", "alpine base (busybox)", ("file", "/bin/grep", None)),
    Property(REDIS, "user redis is uid 999, gid 1000", f"{REDIS_SRC}:12-13", ("passwd", "redis:999:1000")),
    Property(REDIS, "/data owned by redis", f"{REDIS_SRC}:133", ("dir", "/data", "999:1000")),
    Property(REDIS, "VOLUME /data", f"{REDIS_SRC}:134", ("volume", "/data")),
    Property(REDIS, "WORKDIR /data", f"{REDIS_SRC}:135", ("workdir", "/data")),
    Property(REDIS, "ENTRYPOINT docker-entrypoint.sh (chowns and drops to redis as root)",
             f"{REDIS_SRC}:137-138, {REDIS_ENTRY_SRC}:11-14", ("entrypoint", ["docker-entrypoint.sh"])),
    Property(REDIS, "CMD redis-server", f"{REDIS_SRC}:141", ("cmd", ["redis-server"])),
    Property(REDIS, "runs as root unless told", f"{REDIS_SRC} (no USER)", ("user", "")),
    # Authelia runs `/app/authelia --config /config/configuration.yml` as uid 10091, read-only root.
    Property(AUTHELIA, "binary /app/authelia", f"{AUTHELIA_SRC}:20", ("file", "/app/authelia", 0o755)),
    Property(AUTHELIA, "ENTRYPOINT /app/entrypoint.sh (chowns /config as root)",
             f"{AUTHELIA_SRC}:26, {AUTHELIA_ENTRY_SRC}:10-11", ("entrypoint", ["/app/entrypoint.sh"])),
    Property(AUTHELIA, "no CMD", f"{AUTHELIA_SRC}:26", ("cmd", None)),
    Property(AUTHELIA, "/app/.healthcheck.env mode 0666, rewritten at start unless disable_healthcheck",
             f"{AUTHELIA_SRC}:22, {AUTHELIA_HC_SRC}", ("file", "/app/.healthcheck.env", 0o666)),
    Property(AUTHELIA, "/app/healthcheck.sh", f"{AUTHELIA_SRC}:20,27", ("file", "/app/healthcheck.sh", 0o755)),
    Property(AUTHELIA, "wget for healthchecks", AUTHELIA_BASE_SRC, ("file", "/usr/bin/wget", None)),
    Property(AUTHELIA, "a /bin/sh for CMD-SHELL healthchecks", AUTHELIA_BASE_SRC, ("file", "/bin/sh", None)),
    Property(AUTHELIA, "WORKDIR /app", f"{AUTHELIA_SRC}:12", ("workdir", "/app")),
    Property(AUTHELIA, "X_AUTHELIA_CONFIG=/config/configuration.yml", f"{AUTHELIA_SRC}:14-18",
             ("env", "X_AUTHELIA_CONFIG=/config/configuration.yml")),
    Property(AUTHELIA, "PUID=0", f"{AUTHELIA_SRC}:14-18", ("env", "PUID=0")),
    Property(AUTHELIA, "runs as root unless told", f"{AUTHELIA_SRC} (no USER)", ("user", "")),
    # The notes vault's Dockerfile builds FROM the Python base.
    Property(PYTHON, "python3 in /usr/local/bin, first on PATH", f"{PYTHON_SRC}:10,148-154",
             ("file", "/usr/local/bin/python3", None)),
    Property(PYTHON, "LANG=C.UTF-8", f"{PYTHON_SRC}:15", ("env", "LANG=C.UTF-8")),
    Property(PYTHON, "groupadd/useradd (Debian userland)", f"{PYTHON_SRC}:7 (debian:bookworm-slim)",
             ("file", "/usr/sbin/useradd", None)),
    Property(PYTHON, "CMD python3", f"{PYTHON_SRC}:156", ("cmd", ["python3"])),
    Property(PYTHON, "runs as root unless told", f"{PYTHON_SRC} (no USER)", ("user", "")),
    # agentgateway runs `-f /config/config.yaml` as uid 10300; no shell, so it gets no healthcheck.
    Property(GATEWAY, "binary /app/agentgateway", f"{GATEWAY_SRC}:104", ("file", "/app/agentgateway", None)),
    Property(GATEWAY, "ENTRYPOINT /app/agentgateway", f"{GATEWAY_SRC}:109", ("entrypoint", ["/app/agentgateway"])),
    Property(GATEWAY, "no shell (chainguard glibc-dynamic)", f"{GATEWAY_SRC}:96", ("absent", "/bin/sh")),
)  # fmt: skip


def readme_table() -> str:
    """The table tests/harness/README.md carries under "Stand-ins"."""
    rows = ["| official image | property the deploy relies on | upstream source |", "|---|---|---|"]
    rows += [f"| `{p.image}` | {p.what} | {p.upstream} |" for p in PROPERTIES]
    return "\n".join(rows)
