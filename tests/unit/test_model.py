"""The inventory model: what it accepts, what it derives, and every mistake it refuses by name."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from mcpgate.errors import InventoryError
from mcpgate.model import _DURATION, PROVEN_IMAGES, duration_seconds, load_stack, pin_warnings
from mcpgate.render import render_stack
from mcpgate.secrets import SecretStore, StackSecrets
from mcpgate.validate import authelia_config, reference_dir, validate_rendered
from tests.conftest import BASE_STACK

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """A mutation that sets data[path]; path is dotted, list items by number: "backends.0.tools"."""

    def apply(d: dict[str, Any]) -> None:
        node: Any = d
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        last = parts[-1]
        node[int(last) if last.isdigit() else last] = value

    return apply


def _delete(path: str) -> Mutation:
    def apply(d: dict[str, Any]) -> None:
        node: Any = d
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[int(parts[-1]) if parts[-1].isdigit() else parts[-1]]

    return apply


def _append(path: str, value: Any) -> Mutation:
    def apply(d: dict[str, Any]) -> None:
        d[path].append(copy.deepcopy(value))

    return apply


def _both(*mutations: Mutation) -> Mutation:
    def apply(d: dict[str, Any]) -> None:
        for m in mutations:
            m(d)

    return apply


NOTES = BASE_STACK["backends"][0]
HA = BASE_STACK["backends"][1]
CLIENT = BASE_STACK["clients"][0]
INSPECTOR = {
    "id": "mcp-inspector",
    "name": "MCP Inspector",
    "redirect_uris": ["http://localhost:6274/oauth/callback"],
    "auth_method": "none",
}


def _source(path: str) -> Mutation:
    """The notes backend mounts the host path ``path``."""
    return _set("backends.0.volumes", [{"source": path, "target": "/vault"}])


def _target(path: str) -> Mutation:
    """The notes backend mounts its data folder at ``path`` in the container."""
    return _set("backends.0.volumes", [{"source": "/srv/notes", "target": path}])


def _secrets(*secrets: dict[str, Any]) -> Mutation:
    return _set("backends.0.secrets", list(secrets))


# (id, mutation, substrings the message must contain)
BAD_INPUTS: list[tuple[str, Mutation, list[str]]] = [
    (
        "unknown-scope-on-tool",
        _set("backends.0.tools", {"notes:read": ["search"], "notes:wirte": ["write"]}),
        ["backends[0] (notes).tools['notes:wirte']", "unknown scope 'notes:wirte'", "declare it under scopes"],
    ),
    (
        "unknown-whole-target-scope",
        _set("backends.1.scope", "home:contrl"),
        ["backends[1] (home-assistant).scope", "unknown scope 'home:contrl'"],
    ),
    ("duplicate-backend", _append("backends", NOTES), ["backend 'notes' is declared twice"]),
    (
        "duplicate-tool-across-scopes",
        _set("backends.0.tools", {"notes:read": ["search", "read"], "notes:write": ["read", "delete"]}),
        ["tool 'read' is listed under both 'notes:read' and 'notes:write'"],
    ),
    (
        "duplicate-tool-same-scope",
        _set("backends.0.tools", {"notes:read": ["search", "search"], "notes:write": ["write"]}),
        ["tool 'search' is listed twice"],
    ),
    ("target-with-underscore", _set("backends.0.name", "notes_vault"), ["backends[0].name", "contains '_'"]),
    ("backend-reserved-name", _set("backends.0.name", "redis"), ["backend name 'redis' is taken"]),
    ("backend-uppercase", _set("backends.0.name", "Notes"), ["backends[0].name", "a DNS label"]),
    ("hostname-invalid-label", _set("hostname", "mcp_gw.example-tailnet.ts.net"), ["hostname", "not a valid DNS"]),
    ("hostname-public-suffix", _set("hostname", "ts.net"), ["hostname", "public suffix"]),
    ("hostname-uppercase", _set("hostname", "MCP.example-tailnet.ts.net"), ["hostname", "lower case"]),
    ("hostname-single-label", _set("hostname", "gateway"), ["hostname", "fully qualified"]),
    (
        "hostname-not-funnel-name",
        _set("hostname", "mcp.example.org"),
        ["hostname", "<node>.<tailnet>.ts.net", "tailscale.enabled = False"],
    ),
    (
        "hostname-tailnet-only",
        _set("hostname", "example-tailnet.ts.net"),
        ["hostname", "MagicDNS name <node>.<tailnet>.ts.net"],
    ),
    (
        "redirect-not-https",
        _set("clients.0.redirect_uris", ["http://claude.example/cb"]),
        ["clients[0].redirect_uris", "absolute https://", "loopback"],
    ),
    (
        "redirect-relative",
        _set("clients.0.redirect_uris", ["/callback"]),
        ["clients[0].redirect_uris", "absolute https://"],
    ),
    (
        "redirect-fragment",
        _set("clients.0.redirect_uris", ["https://app.example/cb#x"]),
        ["clients[0].redirect_uris", "#fragment"],
    ),
    (
        "claude-wrong-auth-method",
        _set("clients.0.auth_method", "client_secret_basic"),
        ["clients[0]", "client_secret_post", "client_secret_basic"],
    ),
    ("no-user", _set("users", []), ["users: is empty", "add who may sign in", '"name": "alice"']),
    ("users-missing", _delete("users"), ["users: is required"]),
    ("duplicate-user", _append("users", BASE_STACK["users"][0]), ["user 'alice' is declared twice"]),
    ("bad-user-name", _set("users.0.name", "Alice Smith"), ["users[0].name", "lower case"]),
    ("bad-email", _set("users.0.email", "alice"), ["users[0].email", "not an e-mail address"]),
    ("duplicate-client", _append("clients", CLIENT), ["client 'claude-ai' is declared twice"]),
    (
        "port-clash-gateway-admin",
        _set("gateway_port", 15021),
        ["gateway_port: 15021 clashes with agentgateway's own readiness port"],
    ),
    ("ingress-port-privileged", _set("ingress_port", 80), ["ingress_port", "greater than or equal to 1024"]),
    ("image-unpinned", _set("images", {"redis": "redis"}), ["images.redis", "has no tag", "pin an exact version"]),
    ("image-latest", _set("images", {"ingress": "caddy:latest"}), ["images.ingress", "'latest'"]),
    (
        "backend-image-unpinned",
        _set("backends.0", {**NOTES, "build": None, "image": "ghcr.io/x/notes"}),
        ["backends[0].image", "has no tag"],
    ),
    (
        "authelia-known-bad-4.39.22",
        _set("images", {"authelia": "authelia/authelia:4.39.22"}),
        ["images.authelia", "Authelia 4.39.22 breaks this stack", "RFC 8707", "authelia#12970", "authelia#12973"],
    ),
    (
        "authelia-known-bad-4.39.21",
        _set("images", {"authelia": "authelia/authelia:v4.39.21"}),
        ["images.authelia", "4.39.21 breaks", "exact strings (authelia#12984, fixed by authelia#12992)"],
    ),
    (
        "authelia-not-4.39",
        _set("images", {"authelia": "authelia/authelia:4.38.17"}),
        ["images.authelia", "written for Authelia 4.39", "authelia/authelia:4.39.20"],
    ),
    (
        "authelia-floating-minor",
        _set("images", {"authelia": "authelia/authelia:4.39"}),
        ["images.authelia", "pin a 4.39 patch release"],
    ),
    (
        "backend-image-and-url",
        _set("backends.1.image", "ghcr.io/x/ha:1.0"),
        ["exactly one of image, build or url"],
    ),
    (
        "backend-tools-and-scope",
        _set("backends.0.scope", "notes:read"),
        ["exactly one of tools", "or scope"],
    ),
    ("backend-no-port", _set("backends.0.port", None), ["set port"]),
    ("url-backend-with-volumes", _set("backends.1.volumes", [{"source": "/srv", "target": "/x"}]), ["remote url"]),
    ("url-not-absolute", _set("backends.1.url", "homeassistant:8123/api/mcp"), ["absolute http(s) URL"]),
    (
        "volume-docker-socket",
        _set("backends.0.volumes", [{"source": "/var/run/docker.sock", "target": "/var/run/docker.sock"}]),
        [
            "backends[0].volumes[0].source",
            "is the Docker socket",
            "root on the host",
            "would hand the backend the host",
        ],
    ),
    ("volume-relative-target", _set("backends.0.volumes", [{"source": "/srv/n", "target": "vault"}]), ["target"]),
    ("empty-tools", _set("backends.0.tools", {}), ["tools is empty"]),
    ("standard-scope-redeclared", _set("scopes", {**BASE_STACK["scopes"], "openid": "x"}), ["standard OpenID scope"]),
    ("scope-bad-name", _set("scopes", {**BASE_STACK["scopes"], "Notes Read": "x"}), ["must look like 'notes.read'"]),
    ("scope-unused", _set("scopes", {**BASE_STACK["scopes"], "extra:thing": "x"}), ["'extra:thing' is declared but"]),
    ("client-unknown-scope", _set("clients.0.scopes", ["notes:reed"]), ["clients[0] (claude-ai).scopes", "notes:reed"]),
    (
        "no-enabled-backend",
        _both(_set("backends.0.enabled", False), _set("backends.1.enabled", False)),
        ["none is enabled"],
    ),
    ("typo-field", _set("backends.0.tool", {"notes:read": ["x"]}), ["backends[0].tool", "unknown field"]),
    ("base-dir-relative", _set("base_dir", "opt/mcpgate"), ["base_dir", "absolute path"]),
    ("base-dir-root", _set("base_dir", "/"), ["base_dir"]),
    ("env-bad-name", _set("backends.0.env", {"MY-VAR": "1"}), ["environment variable name 'MY-VAR'"]),
    ("user-not-numeric", _set("backends.0.user", "notes"), ["numeric uid:gid"]),
    ("memory-limit", _set("backends.0.limits", {"memory": "lots"}), ["memory limit 'lots'"]),
    ("service-uid-root", _set("uids", {"authelia": "0:0"}), ["uids.authelia", "non-root"]),
    # --- backend volumes: nothing that hands a backend the host (issue 12) ---
    (
        "volume-source-base-dir",
        _source("/opt/mcpgate"),
        ["backends[0] (notes).volumes[0].source", "'/opt/mcpgate' is the stack's own folder", "Authelia's secrets"],
    ),
    (
        "volume-source-authelia-secrets",
        _source("/opt/mcpgate/authelia/secrets"),
        ["volumes[0].source", "is inside the stack's own folder base_dir (/opt/mcpgate", "mount a folder outside it"],
    ),
    (
        "volume-source-signing-key",
        _source("/opt/mcpgate/authelia/secrets/oidc_jwks_rs256.pem"),
        ["is inside the stack's own folder", "the token-signing key"],
    ),
    ("volume-source-holds-base-dir", _source("/opt"), ["'/opt' holds the stack's own folder"]),
    (
        "volume-source-under-own-base-dir",
        _both(_set("base_dir", "/srv/mcpgate"), _source("/srv/mcpgate/redis")),
        ["'/srv/mcpgate/redis' is inside the stack's own folder base_dir (/srv/mcpgate"],
    ),
    ("volume-run-docker-socket", _source("/run/docker.sock"), ["'/run/docker.sock' is the Docker socket"]),
    (
        "volume-docker-data-root",
        _source("/var/lib/docker"),
        ["is /var/lib/docker, the Docker engine's data root", "would hand the backend the host"],
    ),
    (
        "volume-under-docker-data-root",
        _source("/var/lib/docker/volumes/x/_data"),
        ["is under /var/lib/docker, the Docker engine's data root"],
    ),
    ("volume-host-root", _source("/"), ["'/' is the host's whole filesystem"]),
    ("volume-root-home", _source("/root"), ["is /root, root's home"]),
    ("volume-root-ssh", _source("/root/.ssh"), ["'/root/.ssh' holds SSH keys"]),
    ("volume-home-ssh", _source("/home/alice/.ssh"), ["'/home/alice/.ssh' holds SSH keys"]),
    ("volume-whole-home", _source("/home/alice/"), ["'/home/alice/' is a person's whole home"]),
    ("volume-all-homes", _source("/home"), ["'/home' holds every person's home"]),
    ("volume-etc", _source("/etc"), ["'/etc' is /etc, the host's configuration"]),
    ("volume-etc-shadow", _source("/etc/shadow"), ["'/etc/shadow' is under /etc", "password hashes"]),
    ("volume-etc-dotdot", _source("/etc/../etc"), ["'/etc/../etc' is /etc"]),
    ("volume-etc-trailing-slash", _source("/etc/"), ["'/etc/' is /etc"]),
    ("volume-etc-double-slash", _source("//etc"), ["'//etc' is /etc"]),
    ("volume-etc-via-srv", _source("/srv/../etc/ssh"), ["'/srv/../etc/ssh' is under /etc"]),
    ("volume-proc", _source("/proc/1/root"), ["is under /proc, the kernel's view of every process"]),
    ("volume-sys", _source("/sys"), ["is /sys, the kernel's devices and settings"]),
    ("volume-boot", _source("/boot"), ["is /boot, the host's kernel"]),
    ("volume-var-run", _source("/var/run"), ["is /var/run, the host's runtime sockets"]),
    ("volume-run", _source("/run"), ["is /run, the host's runtime sockets"]),
    ("volume-var", _source("/var"), ["'/var' holds /var/run"]),
    ("volume-usr-bin", _source("/usr/bin"), ["is under /usr, the host's programs"]),
    ("volume-dev", _source("/dev/sda"), ["is under /dev, the host's devices"]),
    ("volume-source-dotdot", _source("/srv/notes/../music"), ["has a '..' component", "(/srv/music)"]),
    ("volume-source-comma", _source("/srv/notes,readonly"), ["contains ','", "--mount option string"]),
    ("volume-source-equals", _source("/srv/a=b"), ["contains '='", "--mount option string"]),
    (
        "volume-source-relative",
        _source("srv/notes"),
        ["volumes[0].source", "absolute host path (e.g. /srv/notes) or a volume name"],
    ),
    ("volume-target-comma", _target("/vault,ro"), ["volumes[0].target", "contains ','"]),
    ("volume-target-equals", _target("/data=x"), ["volumes[0].target", "contains '='"]),
    (
        "volume-target-tmp",
        _target("/tmp"),
        ["volumes[0].target", "'/tmp' is /tmp, the container's own small noexec tmpfs"],
    ),
    ("volume-target-under-tmp", _target("/tmp/cache"), ["'/tmp/cache' is under /tmp"]),
    ("volume-target-root", _target("/"), ["volumes[0].target", "container's root"]),
    ("volume-target-root-double-slash", _target("//"), ["container's root"]),
    ("volume-target-proc", _target("/proc"), ["'/proc' is /proc, where the runtime mounts the kernel's process view"]),
    ("volume-target-sys", _target("/sys/fs"), ["is under /sys"]),
    ("volume-target-dev", _target("/dev"), ["'/dev' is /dev, where the runtime sets up the container's devices"]),
    ("volume-target-dotdot", _target("/data/../vault"), ["target", "has a '..' component", "(/vault)"]),
    (
        "volume-same-target-after-normalising",
        _set(
            "backends.0.volumes",
            [{"source": "/srv/a", "target": "/data"}, {"source": "/srv/b", "target": "/data/"}],
        ),
        ["mounts two volumes at the same target"],
    ),
    (
        "volume-as-docker-v-string",
        _set("backends.0.volumes", ["/srv/notes:/vault"]),
        ["backends[0].volumes", 'write {"source": "/srv/notes", "target": "/vault"}'],
    ),
    # --- base_dir: a dedicated folder ---
    ("base-dir-etc", _set("base_dir", "/etc"), ["base_dir", "system folder", "dedicated folder such as /opt/mcpgate"]),
    ("base-dir-var-lib", _set("base_dir", "/var/lib"), ["base_dir", "'/var/lib' is a system folder"]),
    ("base-dir-opt", _set("base_dir", "/opt"), ["'/opt' is a system folder", "/opt/mcpgate"]),
    ("base-dir-opt-trailing-slash", _set("base_dir", "/opt/"), ["'/opt/' is a system folder"]),
    ("base-dir-home", _set("base_dir", "/home"), ["'/home' is a system folder", "0755 root:root"]),
    ("base-dir-usr-local", _set("base_dir", "/usr/local"), ["'/usr/local' is a system folder"]),
    ("base-dir-srv", _set("base_dir", "/srv"), ["'/srv' is a system folder"]),
    ("base-dir-root-home", _set("base_dir", "/root"), ["'/root' is a system folder"]),
    (
        "base-dir-tmp",
        _set("base_dir", "/tmp/mcpgate"),
        ["'/tmp/mcpgate' is under /tmp (shared with every user and emptied at boot)"],
    ),
    ("base-dir-run", _set("base_dir", "/run/mcpgate"), ["is under /run (memory, emptied at every boot)"]),
    ("base-dir-proc", _set("base_dir", "/proc"), ["'/proc' is /proc (the kernel's process view"]),
    ("base-dir-docker-root", _set("base_dir", "/var/lib/docker/mcpgate"), ["is under /var/lib/docker"]),
    ("base-dir-lib64", _set("base_dir", "/lib64"), ["'/lib64' is /lib64 (libraries the package manager owns)"]),
    ("base-dir-comma", _set("base_dir", "/opt/mcp,gate"), ["base_dir", "contains ','"]),
    ("base-dir-dotdot", _set("base_dir", "/opt/mcpgate/../../etc"), ["base_dir", "system folder"]),
    ("base-dir-space", _set("base_dir", "/opt/mcp gate"), ["base_dir", "white space"]),
    # --- secrets do not go in env ---
    ("env-api-key", _set("backends.0.env", {"API_KEY": "x"}), ["backends[0].env", "'API_KEY' looks like a secret"]),
    (
        "env-token-lower-case",
        _set("backends.0.env", {"github_token": "x"}),
        ["'github_token' looks like a secret (its name contains TOKEN)", '"env": "GITHUB_TOKEN"'],
    ),
    (
        "env-password",
        _set("backends.0.env", {"DB_PASSWORD": "x"}),
        ["contains PASSWORD", "mcpgate secrets set INVENTORY db-password", '"name": "db-password"'],
    ),
    ("env-secret", _set("backends.0.env", {"CLIENT_SECRET": "x"}), ["'CLIENT_SECRET' looks like a secret"]),
    ("env-passwd", _set("backends.0.env", {"SMTP_PASSWD": "x"}), ["contains PASSWD", "secrets:"]),
    # --- redirect URIs ---
    (
        "redirect-wildcard-host",
        _set("clients.0.redirect_uris", ["https://*.example.org/cb"]),
        ["clients[0].redirect_uris", "wildcard '*'", "list each callback in full"],
    ),
    ("redirect-wildcard-path", _set("clients.0.redirect_uris", ["https://app.example/cb/*"]), ["wildcard '*'"]),
    ("redirect-empty-fragment", _set("clients.0.redirect_uris", ["https://app.example/cb#"]), ["#fragment"]),
    (
        "redirect-userinfo",
        _set("clients.0.redirect_uris", ["https://user:pw@app.example/cb"]),
        ["must not carry user:password@"],
    ),
    (
        "redirect-none",
        _set("clients.0.redirect_uris", []),
        ["clients[0].redirect_uris", "no redirect URI", "claude.ai/api/mcp/auth_callback"],
    ),
    # --- uids ---
    (
        "uids-shared",
        _set("uids", {"redis": "10091:10091", "authelia": "10091:10091"}),
        ["uids.redis and uids.authelia are both uid 10091", "own uid"],
    ),
    (
        "backend-user-is-a-service",
        _set("backends.0.user", "10091:10091"),
        ["backends[0] (notes).user: uid 10091 is also uids.authelia"],
    ),
    ("service-uid-zero-padded", _set("uids", {"redis": "00:10379"}), ["uids.redis", "non-root"]),
    ("service-gid-root", _set("uids", {"ingress": "10080:0"}), ["uids.ingress", "neither 0"]),
    ("uid-too-large", _set("backends.0.user", "4294967295:1000"), ["backends[0].user", "at most 4294967294"]),
    # --- container settings on a remote url ---
    (
        "url-backend-with-limits",
        _set("backends.1.limits", {"memory": "256m"}),
        ["backends[1]", "remote url; limits applies only to containers", "remove it"],
    ),
    ("url-backend-with-path", _set("backends.1.path", "/api/mcp"), ["remote url; path applies only"]),
    ("url-backend-read-only-rootfs", _set("backends.1.read_only_rootfs", False), ["remote url; read_only_rootfs"]),
    ("url-backend-with-egress", _set("backends.1.egress", True), ["remote url; egress"]),
    ("url-backend-with-secrets", _set("backends.1.secrets", [{"name": "ha-x", "env": "X"}]), ["remote url; secrets"]),
    ("url-backend-with-user", _set("backends.1.user", "1000:1000"), ["remote url; user"]),
    # --- durations ---
    (
        "access-token-forever",
        _set("access_token_lifespan", "forever"),
        ["access_token_lifespan: 'forever' is not a duration", '"1h"', '"1 week"', "whole seconds"],
    ),
    (
        "refresh-token-fortnight",
        _set("refresh_token_lifespan", "1 fortnight"),
        ["refresh_token_lifespan", "not a duration"],
    ),
    (
        "duration-upper-case-unit",
        _set("access_token_lifespan", "1H"),
        ["access_token_lifespan: '1H' is not a duration"],
    ),
    ("duration-zero", _set("access_token_lifespan", "0s"), ["access_token_lifespan", "lasts no time at all"]),
    ("duration-negative", _set("refresh_token_lifespan", -5), ["refresh_token_lifespan", "lasts no time at all"]),
    ("duration-float", _set("access_token_lifespan", 1.5), ["access_token_lifespan: 1.5 is not a duration"]),
    ("duration-bool", _set("access_token_lifespan", True), ["access_token_lifespan: True is not a duration"]),
    (
        "client-access-token-forever",
        _set("clients.0.access_token_lifespan", "forever"),
        ["clients[0].access_token_lifespan: 'forever' is not a duration", '"1h"', "whole seconds"],
    ),
    (
        "client-refresh-token-zero",
        _set("clients.0.refresh_token_lifespan", 0),
        ["clients[0].refresh_token_lifespan: 0 seconds lasts no time at all"],
    ),
    (
        "client-access-outlives-refresh",
        _set("clients.0.access_token_lifespan", "40d"),
        ["clients[0] (claude-ai): the access tokens of client 'claude-ai' would live '40d'", "refresh tokens ('30d')"],
    ),
    (
        "stack-access-outlives-refresh",
        _both(_set("access_token_lifespan", "2 weeks"), _set("refresh_token_lifespan", "1 week")),
        ["access_token_lifespan: the access tokens of client 'claude-ai' would live '2 weeks'", "('1 week')"],
    ),
    (
        "consent-duration-words",
        _set("clients.0.consent_duration", "a week"),
        ["clients[0].consent_duration", "'a week'"],
    ),
    ("remember-me-always", _set("session", {"remember_me": "always"}), ["session.remember_me: 'always'"]),
    ("session-typo", _set("session", {"remember": "1d"}), ["session.remember", "unknown field"]),
    # --- clearer messages for mistakes refused before ---
    (
        "client-id-capital",
        _set("clients.0.id", "Claude-AI"),
        ["clients[0].id", "'Claude-AI' must be 3-64 characters of a-z", "e.g. 'claude-ai'"],
    ),
    ("client-id-space", _set("clients.0.id", "my client"), ["clients[0].id", "e.g. 'my-client'"]),
    (
        "image-digest-cut-short",
        _set("images", {"redis": "redis:7.4.2-alpine@sha256:4f9a8b7c6d5e"}),
        ["images.redis", "a sha256 digest is 64 hex characters, this one has 12", "imagetools inspect"],
    ),
    (
        "image-digest-after-colon",
        _set("images", {"redis": "redis:sha256:" + "a" * 64}),
        ["images.redis", "a digest follows '@', not ':'", "write redis@sha256:aaaa", "or redis:<tag>@sha256:"],
    ),
    ("image-digest-upper-case", _set("images", {"redis": "redis:7.4.2@sha256:" + "A" * 64}), ["in lower case"]),
    ("image-upper-case-repository", _set("images", {"ingress": "Caddy:2.8.4"}), ["images.ingress", "lower case"]),
    (
        "hostname-url",
        _set("hostname", "https://mcp-gateway.example-tailnet.ts.net/"),
        ["hostname", "is a URL, not a name", "drop the scheme 'https://'", "'mcp-gateway.example-tailnet.ts.net'"],
    ),
    (
        "hostname-with-path",
        _set("hostname", "mcp-gateway.example-tailnet.ts.net/mcp"),
        ["hostname", "drop the path '/mcp'"],
    ),
    ("hostname-with-port", _set("hostname", "mcp-gateway.example-tailnet.ts.net:443"), ["drop the port ':443'"]),
    (
        "tailscale-false",
        _set("tailscale", False),
        ["tailscale: is a dict of settings", '"tailscale": {"enabled": False}'],
    ),
    (
        "docker-string",
        _set("docker", "existing"),
        ["docker: is a dict of settings", '"docker": {"install": "existing"}'],
    ),
    ("limits-string", _set("backends.0.limits", "256m"), ["backends[0].limits", '"memory": "256m"']),
    (
        "token-secret-is-tailscale-key",
        _set("backends.1.token_secret", "tailscale-auth-key"),
        ["backends[1] (home-assistant).token_secret", "also tailscale.auth_key_secret", "must never reach a backend"],
    ),
    (
        "token-secret-twice",
        _append("backends", {**HA, "name": "ha2"}),
        ["backends[1] (home-assistant).token_secret: secret 'home-assistant-token' is also backends[2] (ha2)"],
    ),
    ("token-secret-bad-name", _set("backends.1.token_secret", "HA_Token"), ["backends[1].token_secret", "a-z, 0-9"]),
    ("empty-backends", _set("backends", []), ["backends: is empty", '"name": "notes"']),
    ("empty-clients", _set("clients", []), ["clients: is empty", '"id": "claude-ai"']),
    ("empty-scopes", _set("scopes", {}), ["scopes: is empty", '"notes:read"']),
    # --- backend secrets ---
    (
        "secret-file-and-env",
        _secrets({"name": "api-key", "file": "/run/secrets/api-key", "env": "API_KEY"}),
        ["backends[0].secrets[0]", "exactly one of file", "or env", "it has both"],
    ),
    ("secret-neither", _secrets({"name": "api-key"}), ["secrets[0]", "it has neither", "/run/secrets/api-key"]),
    (
        "secret-name-twice",
        _secrets({"name": "api-key", "env": "A"}, {"name": "api-key", "env": "B"}),
        ["backends[0] (notes).secrets[0].name: secret 'api-key' is also backends[0] (notes).secrets[1].name"],
    ),
    (
        "secret-file-twice",
        _secrets({"name": "a", "file": "/run/secrets/k"}, {"name": "b", "file": "/run/secrets/k/"}),
        ["two secrets are mounted at the same file /run/secrets/k"],
    ),
    (
        "secret-env-twice",
        _secrets({"name": "a", "env": "API_KEY"}, {"name": "b", "env": "API_KEY"}),
        ["two secrets set the same variable API_KEY"],
    ),
    (
        "secret-env-also-in-env",
        _both(_set("backends.0.env", {"NOTES_URL": "x"}), _secrets({"name": "a", "env": "NOTES_URL"})),
        ["NOTES_URL is set both in env and by secrets"],
    ),
    (
        "secret-file-is-volume-target",
        _secrets({"name": "a", "file": "/vault"}),
        ["secret file /vault is the target of volume target /vault"],
    ),
    ("secret-file-in-volume", _secrets({"name": "a", "file": "/vault/.key"}), ["/vault/.key is inside volume target"]),
    ("secret-file-under-tmp", _secrets({"name": "a", "file": "/tmp/key"}), ["secrets[0].file", "is under /tmp"]),
    ("secret-file-relative", _secrets({"name": "a", "file": "key"}), ["secrets[0].file", "absolute path"]),
    ("secret-file-comma", _secrets({"name": "a", "file": "/run/secrets/a,b"}), ["secrets[0].file", "contains ','"]),
    ("command-empty", _set("backends.0.command", []), ["backends[0].command", "non-empty list"]),
    ("command-empty-argument", _set("backends.0.command", ["http", ""]), ["non-empty arguments"]),
    ("url-backend-with-command", _set("backends.1.command", ["http"]), ["remote url", "command"]),
    (
        "env-path-to-a-secret-that-is-no-path",
        _set("backends.0.env", {"APP_KEY_FILE": "sk-live-123"}),
        ["'APP_KEY_FILE' looks like a secret"],
    ),
    (
        "secret-file-without-user",
        _both(
            _delete("backends.0.user"),
            _set("backends.0.volumes", []),
            _secrets({"name": "a", "file": "/run/secrets/a"}),
        ),
        ["backend 'notes' mounts a secret file", "set user (uid:gid"],
    ),
    ("secret-bad-name", _secrets({"name": "API_KEY", "env": "API_KEY"}), ["secrets[0].name", "secret name 'API_KEY'"]),
    ("secret-env-lower-case", _secrets({"name": "a", "env": "api_key"}), ["secrets[0].env", "e.g. 'API_KEY'"]),
    (
        "secret-is-tailscale-key",
        _secrets({"name": "tailscale-auth-key", "env": "TS"}),
        ["secret 'tailscale-auth-key' is also tailscale.auth_key_secret"],
    ),
    (
        "secret-is-a-token-secret",
        _secrets({"name": "home-assistant-token", "env": "HA"}),
        ["secret 'home-assistant-token' is also backends[1] (home-assistant).token_secret"],
    ),
    ("secret-as-string", _set("backends.0.secrets", ["api-key"]), ['write {"name": "api-key", "env": "API_KEY"}']),
    # --- consent ---
    (
        "public-client-pre-configured",
        _append("clients", {**INSPECTOR, "consent": "pre-configured"}),
        ["clients[1]", "'mcp-inspector' is public", "RFC 8252 section 8.6", "use consent: explicit"],
    ),
    ("public-client-implicit", _append("clients", {**INSPECTOR, "consent": "implicit"}), ["consent 'implicit'"]),
    # --- backups ---
    (
        "backup-as-string",
        _set("backup", "/mnt/usb"),
        ["backup: is a dict", 'write "backup": {"repository": "/mnt/usb"}'],
    ),
    ("backup-without-repository", _set("backup", {}), ["backup.repository: is required"]),
    ("backup-repository-relative", _set("backup", {"repository": "backups"}), ["'backups' is no repository mcpgate"]),
    ("backup-repository-root", _set("backup", {"repository": "/"}), ["'/' is the root of the filesystem"]),
    ("backup-repository-in-etc", _set("backup", {"repository": "/etc/restic"}), ["is under /etc"]),
    ("backup-repository-in-tmp", _set("backup", {"repository": "/tmp/restic"}), ["is emptied by the system"]),
    ("backup-repository-unknown-kind", _set("backup", {"repository": "b2:bucket:path"}), ["is no repository"]),
    ("backup-repository-shell", _set("backup", {"repository": "/mnt/usb/$(reboot)"}), ["contains '$'"]),
    ("backup-repository-space", _set("backup", {"repository": "/mnt/my usb"}), ["contains ' '"]),
    ("backup-sftp-malformed", _set("backup", {"repository": "sftp:/nohost"}), ['"sftp:user@host:/path"']),
    ("backup-s3-without-bucket", _set("backup", {"repository": "s3:https://s3.example.com"}), ["<bucket>"]),
    (
        "backup-repository-in-base-dir",
        _set("backup", {"repository": "/opt/mcpgate/backups"}),
        ["overlaps the stack's own folder base_dir"],
    ),
    (
        "backup-repository-in-a-backed-up-folder",
        _set("backup", {"repository": "/srv/notes/.restic"}),
        ["overlaps backends[0] (notes).volumes[0].source", "each backup would hold the repository itself"],
    ),
    (
        "backup-keeps-nothing",
        _set("backup", {"repository": "/mnt/usb", "keep": {"daily": 0, "weekly": 0, "monthly": 0}}),
        ["backup.keep: keeps no snapshot at all"],
    ),
    ("backup-keep-negative", _set("backup", {"repository": "/mnt/usb", "keep": {"daily": -1}}), ["backup.keep.daily"]),
    ("backup-keep-as-number", _set("backup", {"repository": "/mnt/usb", "keep": 7}), ["keep is a dict of settings"]),
    ("backup-keep-typo", _set("backup", {"repository": "/mnt/usb", "keep": {"dayly": 7}}), ["keep.dayly: unknown"]),
    (
        "backup-schedule-injection",
        _set("backup", {"repository": "/mnt/usb", "schedule": "daily\nExecStartPre=/bin/sh"}),
        ["backup.schedule", "no systemd calendar event"],
    ),
    ("backup-delay-bad", _set("backup", {"repository": "/mnt/usb", "randomized_delay": "soon"}), ["not a duration"]),
    ("backup-max-age-zero", _set("backup", {"repository": "/mnt/usb", "max_age": 0}), ["backup.max_age"]),
    (
        "backup-s3-keys-on-a-folder",
        _set("backup", {"repository": "/mnt/usb", "s3_secret_key_secret": "k"}),
        ["s3_secret_key_secret applies only to an s3: repository"],
    ),
    (
        "backup-s3-key-is-a-backend-secret",
        _both(
            _set(
                "backup",
                {"repository": "s3:https://s3.example.com/bucket", "s3_access_key_secret": "home-assistant-token"},
            ),
        ),
        ["secret 'home-assistant-token' is also backup.s3_access_key_secret"],
    ),
    ("backup-volume-flag-not-bool", _set("backends.0.volumes.0.backup", "sometimes"), ["volumes[0].backup"]),
    (
        "consent-duration-without-pre-configured",
        _append("clients", {**INSPECTOR, "consent_duration": "1 day"}),
        ["clients[1]", "consent_duration applies only with consent: pre-configured"],
    ),
    # --- somebody may use something: else the gateway gets no rule to load ---
    (
        "no-client-may-use-any-scope",
        _set("clients.0.scopes", []),
        ["no client may use any enabled backend's scope for any person", "claude-ai may use no scope"],
    ),
    (
        "only-a-disabled-backends-scope-is-usable",
        _both(
            _set("clients.0.scopes", ["home:control"]),
            _set("backends.1.enabled", False),
        ),
        ["enabled backends need notes:read, notes:write", "claude-ai may use home:control"],
    ),
    (
        "client-and-people-granted-different-scopes",
        _both(
            _set("clients.0.scopes", ["notes:write"]),
            _set("groups", {"family": ["notes:read"]}),
            _set("users.0.groups", ["family"]),
        ),
        ["no client may use any enabled backend's scope for any person", "give a client and a person one"],
    ),
    # --- a backend's token in clear ---
    (
        "plain-http-token-without-opt-in",
        _delete("backends.1.allow_plain_http"),
        ["backend 'home-assistant': url is plain http:// and token_secret is set", '"allow_plain_http": True'],
    ),
    (
        "allow-plain-http-on-a-container",
        _set("backends.0.allow_plain_http", True),
        ["backend 'notes': allow_plain_http applies only to a remote url"],
    ),
    # --- what a backend may mount, and as whom ---
    (
        "mount-tailscale-state",
        _source("/var/lib/tailscale"),
        ["'/var/lib/tailscale' is /var/lib/tailscale", "node key"],
    ),
    ("mount-crontabs", _source("/var/spool/cron/crontabs"), ["is under /var/spool/cron", "crontab"]),
    ("mount-dpkg", _source("/var/lib/dpkg"), ["is /var/lib/dpkg", "package database"]),
    ("mount-var-lib", _source("/var/lib"), ["holds /var/lib/docker"]),
    (
        "mount-authelias-volume",
        _set("backends.0.volumes", [{"source": "mcpgate-authelia-data", "target": "/data"}]),
        ["volumes[0].source: 'mcpgate-authelia-data' is the stack's own authelia data volume", "never mount it"],
    ),
    (
        "mount-redis-volume-of-a-named-stack",
        _both(_set("name", "home"), _set("backends.0.volumes", [{"source": "home-redis-data", "target": "/data"}])),
        ["'home-redis-data' is the stack's own redis data volume"],
    ),
    (
        "writable-host-folder-as-the-images-user",
        _delete("backends.0.user"),
        ["backends[0] (notes).user", "writes to the host folder /srv/notes", "as the image's user", "setuid root"],
    ),
    (
        "writable-host-folder-as-root",
        _set("backends.0.user", "0:1000"),
        ["backends[0] (notes).user", "runs as root", "set user to the folder's owner"],
    ),
    # --- egress: the private destinations an egress backend may reach ---
    (
        "egress-allow-without-egress",
        _set("backends.0.egress_allow", ["192.168.1.50:8123"]),
        ["backend 'notes': egress_allow", 'only a backend with "egress": true'],
    ),
    (
        "egress-allow-public-address",
        _set("backends.0", {**NOTES, "egress": True, "egress_allow": ["8.8.8.8:53"]}),
        ["egress_allow entry '8.8.8.8:53'", "public address", "reaches already"],
    ),
    (
        "egress-allow-no-port",
        _set("backends.0", {**NOTES, "egress": True, "egress_allow": ["192.168.1.50"]}),
        ["egress_allow entry '192.168.1.50' is not address:port"],
    ),
    (
        "egress-allow-a-name",
        _set("backends.0", {**NOTES, "egress": True, "egress_allow": ["homeassistant.lan:8123"]}),
        ["'homeassistant.lan' is not an IPv4 address", "names are not resolved"],
    ),
    (
        "egress-allow-loopback",
        _set("backends.0", {**NOTES, "egress": True, "egress_allow": ["127.0.0.1:8123"]}),
        ["127.0.0.1 is loopback, never a destination"],
    ),
    (
        "egress-allow-twice",
        _set("backends.0", {**NOTES, "egress": True, "egress_allow": ["10.0.0.5:80", "10.0.0.5:080"]}),
        ["egress_allow lists 10.0.0.5:80 twice"],
    ),
    (
        "egress-allow-on-a-url",
        _set("backends.1.egress_allow", ["192.168.1.50:8123"]),
        ["backend 'home-assistant' is a remote url; egress_allow applies only"],
    ),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [(m, e) for _, m, e in BAD_INPUTS], ids=[i for i, _, _ in BAD_INPUTS]
)
def test_bad_input_is_refused_with_a_message_naming_the_problem(
    stack_data: dict[str, Any], mutation: Mutation, expected: list[str]
) -> None:
    mutation(stack_data)
    with pytest.raises(InventoryError) as info:
        load_stack("gateway.lan", stack_data)
    message = str(info.value)
    assert "gateway.lan" in message
    for part in expected:
        assert part in message, f"{part!r} not in:\n{message}"


def test_the_table_covers_at_least_100_distinct_mistakes() -> None:
    ids = [i for i, _, _ in BAD_INPUTS]
    assert len(set(ids)) == len(ids) >= 100


def test_every_problem_is_reported_at_once(stack_data: dict[str, Any]) -> None:
    stack_data["backends"][0]["tools"] = {"notes:read": ["search"], "nope:x": ["write"]}
    stack_data["scopes"]["spare:scope"] = "never used"
    with pytest.raises(InventoryError) as info:
        load_stack("gateway.lan", stack_data)
    assert len(info.value.problems) >= 2


def test_missing_or_wrong_type_data_is_named() -> None:
    with pytest.raises(InventoryError, match="no 'mcpgate' data"):
        load_stack("h", None)
    with pytest.raises(InventoryError, match="must be a dict, not list"):
        load_stack("h", [])


def test_derived_urls(stack_data: dict[str, Any]) -> None:
    stack = load_stack("gateway.lan", stack_data)
    assert stack.issuer == "https://mcp-gateway.example-tailnet.ts.net/auth"
    assert stack.resource == "https://mcp-gateway.example-tailnet.ts.net/mcp"
    # MCP 2026-07-28: offline_access is not advertised by the resource server (clients add it from
    # Authelia's metadata), though every client may still ask for it.
    assert stack.scopes_supported == ["notes:read", "notes:write", "home:control"]
    assert "offline_access" in stack.registered_scopes


def test_disabled_backend_scopes_are_not_advertised(stack_data: dict[str, Any]) -> None:
    stack_data["backends"][1]["enabled"] = False
    stack = load_stack("gateway.lan", stack_data)
    assert "home:control" not in stack.scopes_supported
    assert [b.name for b in stack.enabled_backends] == ["notes"]
    assert stack.token_secrets == []


def test_loopback_redirects_and_public_clients_are_allowed(stack_data: dict[str, Any]) -> None:
    stack_data["clients"].append(
        {
            "id": "claude-code",
            "name": "Claude Code",
            "redirect_uris": ["http://localhost:33418/callback", "http://127.0.0.1:6274/oauth/callback"],
            "auth_method": "none",
            "scopes": ["notes:read"],
        }
    )
    stack = load_stack("gateway.lan", stack_data)
    client = stack.clients[1]
    assert client.public
    assert stack.client_tool_scopes(client) == ["notes:read"]
    # Authelia lets every client ask for every scope; the gateway enforces the limit.
    assert set(stack.registered_scopes) >= {"openid", "offline_access", "profile", "groups", *stack.scopes}


def test_a_new_backend_is_only_data(stack_data: dict[str, Any]) -> None:
    stack_data["scopes"]["calendar:read"] = "Read the calendar"
    stack_data["backends"].append(
        {"name": "calendar", "image": "ghcr.io/example/cal-mcp:2.1.0", "port": 9000, "tools": {"calendar:read": ["x"]}}
    )
    stack = load_stack("gateway.lan", stack_data)
    assert stack.enabled_backends[-1].target_url == "http://calendar:9000/mcp"


def test_local_hostname_without_tailscale(stack_data: dict[str, Any]) -> None:
    stack_data["hostname"] = "mcp-gateway.home.test"
    stack_data["tailscale"] = {"enabled": False}
    assert load_stack("local", stack_data).issuer == "https://mcp-gateway.home.test/auth"


def test_digest_pinned_images_are_accepted(stack_data: dict[str, Any]) -> None:
    stack_data["images"] = {"redis": "redis@sha256:" + "a" * 64}
    assert load_stack("h", stack_data).images.redis.endswith("a" * 64)


DIGEST = "@sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("field", "image"),
    [
        ("redis", f"redis:7.4.2-alpine{DIGEST}"),
        ("ingress", f"caddy:2.8.4-alpine{DIGEST}"),
        ("authelia", f"authelia/authelia:4.39.20{DIGEST}"),
        ("agentgateway", f"cr.agentgateway.dev/agentgateway:v1.4.1{DIGEST}"),
        ("redis", f"registry.example:5000/redis:7.4.2{DIGEST}"),
    ],
)
def test_a_tag_may_carry_its_digest(stack_data: dict[str, Any], field: str, image: str) -> None:
    stack_data["images"] = {field: image}
    assert getattr(load_stack("h", stack_data).images, field) == image


def test_images_default_to_the_proven_versions_and_warn_about_none(stack_data: dict[str, Any]) -> None:
    images = load_stack("h", stack_data).images
    assert images.model_dump() == PROVEN_IMAGES
    assert pin_warnings(images) == []
    stack_data["images"] = {"agentgateway": f"cr.agentgateway.dev/agentgateway:v1.4.1{DIGEST}"}
    assert pin_warnings(load_stack("h", stack_data).images) == []  # the proven tag, its bytes pinned too


@pytest.mark.parametrize(
    ("field", "image", "says", "not_says"),
    [
        ("redis", "redis:7.4.3-alpine", ["images.redis", "(7.4.2-alpine): unproven"], ["re-check"]),
        ("authelia", "authelia/authelia:4.39.28", ["(4.39.20): unproven", "#12973, #12992"], []),
        ("authelia", "authelia/authelia:4.39.19", ["(4.39.20): unproven"], ["re-check"]),
        ("agentgateway", "ghcr.io/agentgateway/agentgateway:v1.5.2", ["agentgateway#2993"], ["nbf"]),
        ("agentgateway", f"cr.agentgateway.dev/agentgateway:v1.6.0{DIGEST}", ["#2993", "nbf with 60 s"], []),
        ("ingress", "caddy:2.10.0-alpine", ["images.ingress", "unproven", "day-one test"], []),
    ],
)
def test_another_pin_is_allowed_and_warned_about(
    stack_data: dict[str, Any], field: str, image: str, says: list[str], not_says: list[str]
) -> None:
    stack_data["images"] = {field: image}
    (warning,) = pin_warnings(load_stack("h", stack_data).images)
    assert image in warning and "re-run the e2e suite" in warning, warning
    assert all(s in warning for s in says), warning
    assert not any(s in warning for s in not_says), warning


def test_a_build_base_may_carry_its_digest(stack_data: dict[str, Any]) -> None:
    stack_data["backends"][0]["base_image"] = f"python:3.12.14-slim-bookworm{DIGEST}"
    assert load_stack("h", stack_data).backends[0].base_image.endswith(DIGEST)


@pytest.mark.parametrize(
    ("field", "image", "message"),
    [
        ("redis", "redis:7.4.2@sha256:abc", "64 hex characters, this one has 3"),
        ("redis", f"redis:latest{DIGEST}", "not 'latest'"),
        ("authelia", f"authelia/authelia:4.39.22{DIGEST}", "breaks this stack"),
        ("authelia", f"authelia/authelia{DIGEST}", "pin a 4.39 patch release by its tag"),
    ],
)
def test_bad_digest_pins_are_refused(stack_data: dict[str, Any], field: str, image: str, message: str) -> None:
    stack_data["images"] = {field: image}
    with pytest.raises(InventoryError) as err:
        load_stack("h", stack_data)
    assert f"images.{field}" in str(err.value) and message in str(err.value)


def test_group_grants_are_checked(stack_data: dict[str, Any]) -> None:
    stack_data["users"][0]["groups"] = ["family"]
    stack_data["groups"] = {"family": ["notes:read", "notes:wrtie"], "Bad Group": []}
    with pytest.raises(InventoryError) as err:
        load_stack("h", stack_data)
    text = str(err.value)
    assert "groups['family']: unknown scope 'notes:wrtie'" in text
    assert "group name 'Bad Group'" in text


def test_a_person_granted_nothing_is_refused(stack_data: dict[str, Any]) -> None:
    stack_data["groups"] = {"family": ["notes:read"]}
    with pytest.raises(InventoryError) as err:
        load_stack("h", stack_data)
    assert "users[0] (alice): is in no group that groups grants scopes to" in str(err.value)


def test_user_scopes_are_checked(stack_data: dict[str, Any]) -> None:
    stack_data["users"][0]["scopes"] = ["notes:raed"]
    with pytest.raises(InventoryError) as err:
        load_stack("h", stack_data)
    assert "users[0] (alice).scopes: unknown scope 'notes:raed'" in str(err.value)


def test_the_consent_screen_names_a_clients_limit(stack_data: dict[str, Any]) -> None:
    stack_data["clients"][0]["scopes"] = ["notes:read"]
    stack = load_stack("h", stack_data)
    assert stack.consent_name(stack.clients[0]) == "Claude.ai (tools limited to: notes:read)"


# --- what the new rules accept --------------------------------------------------------------------


def test_paths_are_normalised(stack_data: dict[str, Any]) -> None:
    stack_data["base_dir"] = "/srv//mcpgate/"
    stack_data["backends"][0]["volumes"] = [
        {"source": "/home/alice/notes/", "target": "/vault/"},
        {"source": "notes-cache", "target": "/var/cache/notes"},
    ]
    stack = load_stack("h", stack_data)
    assert stack.base_dir == "/srv/mcpgate"
    assert [(v.source, v.target) for v in stack.backends[0].volumes] == [
        ("/home/alice/notes", "/vault"),
        ("notes-cache", "/var/cache/notes"),
    ]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1h", 3600),
        ("30d", 30 * 86400),
        ("1 week", 7 * 86400),
        ("2 weeks", 14 * 86400),
        ("90 minutes", 5400),
        ("1 hour and 30 minutes", 5400),
        ("1h30m", 5400),
        ("1M", 30 * 86400),
        ("1y", 365 * 86400),
        ("500ms", 0.5),
        (3600, 3600),
        ("3600", 3600),
    ],
)
def test_durations_in_authelias_syntax_are_accepted(stack_data: dict[str, Any], value: Any, seconds: float) -> None:
    stack_data["access_token_lifespan"] = value
    stack_data["refresh_token_lifespan"] = "2y"  # a refresh token outlives the access token it renews
    lifespan = load_stack("h", stack_data).access_token_lifespan
    assert duration_seconds(lifespan) == seconds
    # A bare number becomes whole seconds, which Authelia's schema takes as an integer.
    assert lifespan == (int(value) if str(value).isdigit() else value)


def test_token_lifespans_per_client(stack_data: dict[str, Any]) -> None:
    """A client's own lifespans win; otherwise the stack's, except that Claude's client (it refreshes
    late) gets an access token of at least 8 hours."""
    stack_data["clients"].append(dict(INSPECTOR))
    stack = load_stack("h", stack_data)
    claude, inspector = stack.clients
    assert stack.client_lifespans(claude) == ("8h", "30d")
    assert stack.client_lifespans(inspector) == ("1h", "30d")
    assert stack.longest_access_token_lifespan == "8h"

    stack_data["access_token_lifespan"] = "12h"  # the stack's, longer than Claude's default: kept
    stack_data["clients"][1]["access_token_lifespan"] = "2 days"
    stack_data["clients"][1]["refresh_token_lifespan"] = 3 * 86400
    stack = load_stack("h", stack_data)
    claude, inspector = stack.clients
    assert stack.client_lifespans(claude) == ("12h", "30d")
    assert stack.client_lifespans(inspector) == ("2 days", 3 * 86400)
    assert stack.longest_access_token_lifespan == "2 days"

    stack_data["clients"][0]["access_token_lifespan"] = "30 minutes"  # Claude's, set: as given
    assert load_stack("h", stack_data).client_lifespans(load_stack("h", stack_data).clients[0])[0] == "30 minutes"


def test_the_duration_pattern_is_authelias() -> None:
    ref = reference_dir()
    if ref is None:
        pytest.skip(
            "upstream reference folder not found (MCPGATE_REFERENCE_DIR): cannot compare with Authelia's schema"
        )
    schema = json.loads((ref / "authelia-4.39" / "configuration.schema.json").read_text())
    remember_me = schema["$defs"]["Session"]["properties"]["remember_me"]["oneOf"]
    patterns = {alt["pattern"] for alt in remember_me if "pattern" in alt}
    assert patterns == {_DURATION.pattern}


def test_consent_defaults_follow_the_client_type(stack_data: dict[str, Any]) -> None:
    stack_data["clients"].append(dict(INSPECTOR))
    stack_data["clients"].append(
        {"id": "ci-bot", "name": "CI", "redirect_uris": ["https://ci.example.org/cb"], "consent": "explicit"}
    )
    claude, inspector, bot = load_stack("h", stack_data).clients
    assert (claude.consent, claude.consent_duration) == ("pre-configured", "1 week")
    assert inspector.public and inspector.consent == "explicit"
    assert bot.consent == "explicit"


def test_cors_only_for_browser_based_public_clients(stack_data: dict[str, Any]) -> None:
    assert load_stack("h", stack_data).cors_origins == []  # Claude.ai calls the token endpoint from its servers
    stack_data["clients"].append(dict(INSPECTOR))  # a loopback (native) client: no page, no CORS
    assert load_stack("h", stack_data).cors_endpoints == []
    stack_data["clients"].append(
        {
            "id": "web-app",
            "name": "Web app",
            "auth_method": "none",
            "redirect_uris": [
                "https://app.example.org/callback",
                "https://app.example.org/other",
                "https://app.example.org:8443/cb",
                "https://localhost:3000/cb",
            ],
        }
    )
    stack = load_stack("h", stack_data)
    assert stack.cors_origins == ["https://app.example.org", "https://app.example.org:8443"]
    assert stack.cors_endpoints == ["token", "revocation", "userinfo"]


def test_backend_secrets_and_egress(stack_data: dict[str, Any]) -> None:
    stack_data["scopes"]["calendar:read"] = "Read the calendar"
    stack_data["backends"][0]["secrets"] = [{"name": "vault-key", "file": "/run/secrets/vault-key/"}]
    stack_data["backends"][0]["user"] = "10001:10001"
    stack_data["backends"].append(
        {
            "name": "calendar",
            "image": "ghcr.io/example/cal-mcp:2.1.0",
            "port": 9000,
            "egress": True,
            "env": {"TZ": "Europe/Berlin"},
            "secrets": [{"name": "calendar-api-key", "env": "CALENDAR_API_KEY"}],
            "tools": {"calendar:read": ["list_events"]},
        }
    )
    stack_data["backends"].append(
        {**stack_data["backends"][-1], "name": "old", "enabled": False, "secrets": [{"name": "old-key", "env": "K"}]}
    )
    stack = load_stack("h", stack_data)
    notes, _, calendar, _ = stack.backends
    assert notes.secrets[0].file == "/run/secrets/vault-key" and notes.secrets[0].env is None
    assert not notes.egress and calendar.egress
    assert calendar.secret_names == ["calendar-api-key"]
    assert stack.backend_secrets == ["vault-key", "calendar-api-key"]
    assert stack.token_secrets == ["home-assistant-token"]  # the gateway's only: backend secrets never go there
    assert stack.settable_secrets == [
        "vault-key",
        "home-assistant-token",
        "calendar-api-key",
        "old-key",
        "tailscale-auth-key",
    ]


def test_session_remember_me(stack_data: dict[str, Any]) -> None:
    assert load_stack("h", stack_data).session.remember_me == "1 day"
    stack_data["session"] = {"remember_me": "12h"}
    assert load_stack("h", stack_data).session.remember_me == "12h"


# --- what the Authelia template makes of them -------------------------------------------------------


def _authelia(stack_data: dict[str, Any], store: SecretStore) -> dict[str, Any]:
    stack = load_stack("gateway.lan", stack_data)
    rendered = render_stack(stack, StackSecrets(store, stack))
    if reference_dir() is not None:
        assert validate_rendered(rendered, reference_dir()) == []
    return authelia_config(rendered)


def test_authelia_gets_remember_me_consent_and_no_cors(stack_data: dict[str, Any], filled_store: SecretStore) -> None:
    stack_data["clients"].append(dict(INSPECTOR))
    config = _authelia(stack_data, filled_store)
    assert config["session"]["remember_me"] == "1 day"
    oidc = config["identity_providers"]["oidc"]
    assert "cors" not in oidc
    claude, inspector = oidc["clients"]
    assert claude["consent_mode"] == "pre-configured" and claude["pre_configured_consent_duration"] == "1 week"
    assert inspector["consent_mode"] == "explicit" and "pre_configured_consent_duration" not in inspector


def test_authelia_cors_names_only_browser_public_client_origins(
    stack_data: dict[str, Any], filled_store: SecretStore
) -> None:
    stack_data["clients"].append(
        {"id": "web-app", "name": "Web app", "auth_method": "none", "redirect_uris": ["https://app.example.org/cb"]}
    )
    stack_data["session"] = {"remember_me": 7200}
    config = _authelia(stack_data, filled_store)
    assert config["session"]["remember_me"] == 7200
    assert config["identity_providers"]["oidc"]["cors"] == {
        "endpoints": ["token", "revocation", "userinfo"],
        "allowed_origins": ["https://app.example.org"],
    }


def _everything(data: dict[str, Any]) -> dict[str, Any]:
    """The base stack with every new setting in use."""
    data["scopes"]["calendar:read"] = "Read the calendar"
    data["backends"].append(
        {
            "name": "calendar",
            "image": "ghcr.io/example/cal-mcp:2.1.0",
            "port": 9000,
            "egress": True,
            "user": "1000:1000",
            "volumes": [{"source": "/srv/calendar/", "target": "/data"}],
            "secrets": [{"name": "calendar-api-key", "env": "CALENDAR_API_KEY"}, {"name": "cal-ca", "file": "/ca"}],
            "tools": {"calendar:read": ["list_events"]},
        }
    )
    data["clients"].append(dict(INSPECTOR))
    data["clients"].append({**CLIENT, "id": "other", "consent": "explicit"})
    data["session"] = {"remember_me": 7200}
    data["refresh_token_lifespan"] = "2 weeks"
    data["backup"] = {
        "repository": "s3:https://s3.example.com/bucket/mcpgate",
        "s3_access_key_secret": "my-s3-key-id",
        "keep": {"daily": 3, "yearly": 2},
        "schedule": "*-*-* 03:30:00",
        "randomized_delay": "15 minutes",
    }
    data["backends"][0]["volumes"].append({"source": "notes-cache", "target": "/cache", "backup": False})
    return data


@pytest.mark.parametrize("build", [lambda d: d, _everything], ids=["base", "every-new-setting"])
def test_what_describe_writes_loads_back_the_same(stack_data: dict[str, Any], build: Mutation) -> None:
    # `mcpgate describe` dumps every field, defaults included, and the host tests load that back.
    stack = load_stack("h", build(stack_data) or stack_data)
    again = load_stack("h", json.loads(stack.model_dump_json()))
    assert again == stack


def test_a_variable_naming_where_a_secret_file_is_is_no_secret(stack_data: dict[str, Any]) -> None:
    stack_data["backends"][0]["env"] = {"GITHUB_APP_PRIVATE_KEY_PATH": "/run/secrets/app.pem"}
    stack_data["backends"][0]["command"] = ["http", "--port", "8082"]
    backend = load_stack("h", stack_data).backends[0]
    assert backend.env == {"GITHUB_APP_PRIVATE_KEY_PATH": "/run/secrets/app.pem"}
    assert backend.command == ["http", "--port", "8082"]


def test_the_harness_builds_the_authelia_version_the_model_pins() -> None:
    """One Authelia version: the harness scripts' default is the model's."""
    from pathlib import Path

    from mcpgate.model import AUTHELIA_VERSION

    for script in ("image.sh", "build.sh"):
        text = (Path(__file__).parents[1] / "harness" / "authelia" / script).read_text()
        assert f'AUTHELIA_VERSION="${{AUTHELIA_VERSION:-{AUTHELIA_VERSION}}}"' in text, script


@pytest.mark.parametrize("text", ["Read {{name}}", "Read $t(x)", "a }} b"])
def test_a_scope_description_the_consent_page_would_rewrite_is_refused(stack_data: dict[str, Any], text: str) -> None:
    stack_data["scopes"]["notes:read"] = text
    with pytest.raises(InventoryError, match="may not contain"):
        load_stack("gateway.lan", stack_data)


def test_backups_are_off_unless_the_inventory_names_a_repository(stack_data: dict[str, Any]) -> None:
    assert load_stack("h", stack_data).backup is None
    stack_data["backup"] = {"repository": "/mnt/backup//mcpgate/"}
    backup = load_stack("h", stack_data).backup
    assert backup is not None
    assert backup.repository == "/mnt/backup/mcpgate"  # normalised
    assert (backup.kind, backup.schedule, backup.randomized_delay, backup.max_age) == ("local", "daily", "1h", "2 days")
    assert (backup.keep.daily, backup.keep.weekly, backup.keep.monthly, backup.keep.yearly) == (7, 4, 6, 0)
    assert backup.secret_names == []


@pytest.mark.parametrize(
    ("repository", "kind"),
    [
        ("sftp:backup@nas.lan:/srv/restic/mcpgate", "sftp"),
        ("sftp://backup@nas.lan:2222//srv/restic", "sftp"),
        ("s3:https://s3.eu-central-1.amazonaws.com/my-bucket/mcpgate", "s3"),
        ("s3:minio.lan:9000/restic", "s3"),
        ("/media/usb/restic", "local"),
    ],
)
def test_repositories_restic_reaches(stack_data: dict[str, Any], repository: str, kind: str) -> None:
    stack_data["backup"] = {"repository": repository}
    assert load_stack("h", stack_data).backup.kind == kind  # type: ignore[union-attr]


def test_an_s3_repository_needs_its_keys_from_the_store(stack_data: dict[str, Any]) -> None:
    stack_data["backup"] = {"repository": "s3:https://s3.example.com/bucket", "s3_secret_key_secret": "s3-secret"}
    stack = load_stack("h", stack_data)
    assert stack.settable_secrets[-2:] == ["backup-s3-access-key-id", "s3-secret"]
